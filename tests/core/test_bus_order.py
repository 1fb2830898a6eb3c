"""Per-symbol order between live consumers does not depend on when the group was last looked at.

A consumer may join the group at any moment: a new replica, or one back from a stall (starved of
CPU past its liveness TTL, its entries claimed and itself removed from the group by a sweeper).
Whatever it then takes, a consumer that reads a later entry of the same symbol must see it at
once — not at its next sweep of the group (every ``SWEEP_INTERVAL_S``), or it handles the later
entry first. Here the sweep never comes again, so only the read itself can tell. Real Redis.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis
from quantum_trader.core import consumers as cons
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Signal

KEYS = Keys("order-test")
STREAM = KEYS.ai_signal


def sig(sid: str, symbol: str) -> Signal:
    return Signal(signal_id=sid, symbol=symbol, side="BUY", confidence=0.8, model="m", model_version="1",
                  price=100.0, atr=1.0, regime="trend", rl_gate_pass=True, ts=1_700_000_000_000)


async def _until(pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_consumer_joining_after_the_last_sweep_with_an_earlier_entry_holds_back_the_later_one(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cons, "SWEEP_INTERVAL_S", 3600.0)  # one sweep at start-up, alone, then never again
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.ensure_group(STREAM, "g")
    seen: list[str] = []
    in_handler, go_on = asyncio.Event(), asyncio.Event()

    async def handler(batch: list[Parsed[Signal]]) -> None:
        in_handler.set()
        await go_on.wait()
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    b = asyncio.create_task(bus.consume(stream=STREAM, group="g", consumer="b", message_type=Signal, handler=handler,
                                        stop=stop, count=10, block_ms=50, min_idle_ms=60_000))
    await bus.publish(STREAM, sig("warm-Y", "YUSDT"))
    await asyncio.wait_for(in_handler.wait(), 5)  # b swept (alone), read, and is busy: it reads nothing now
    await bus.publish(STREAM, sig("first-X", "XUSDT"))
    await bus.keep_alive("g", "a")  # "a" joins now and is alive: nothing of it may be claimed
    assert [e.id for e in await bus.read(STREAM, "g", "a", count=10, block_ms=None)]  # a holds first-X
    await bus.publish(STREAM, sig("second-X", "XUSDT"))
    go_on.set()
    await _until(lambda: "warm-Y" in seen, timeout=5)
    await asyncio.sleep(0.5)  # b has read second-X meanwhile
    assert "second-X" not in seen  # held: first-X waits at a
    first = await bus.read(STREAM, "g", "a", count=10, block_ms=None, pending=True)
    seen.append("first-X")  # a handles it, then acks
    await bus.ack(STREAM, "g", [e.id for e in first])
    await _until(lambda: "second-X" in seen, timeout=5)
    stop.set()
    await b
    assert seen == ["warm-Y", "first-X", "second-X"]
    await client.aclose()
