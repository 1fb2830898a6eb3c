"""Recovery after kill -9 through a real Redis: prompt claim, per-symbol order, dead consumers removed.

The doomed consumer is a real ``Bus.consume`` loop in a forked process (it keeps its
liveness key like any worker) whose handler never returns; it is killed with SIGKILL.
"Same host": the survivor sees from the key that the process is gone and claims at once.
"Other host": the key names another host, so the survivor must wait for the key's TTL —
meanwhile later entries of the same symbol are held back, not handled out of order.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time

import pytest
import redis.asyncio as aredis
from quantum_trader.core import bus as bus_module
from quantum_trader.core import consumers as cons
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Signal

KEYS = Keys("recovery-test")
STREAM = KEYS.ai_signal


def sig(sid: str, symbol: str) -> Signal:
    return Signal(signal_id=sid, symbol=symbol, side="BUY", confidence=0.8, model="m", model_version="1",
                  price=100.0, atr=1.0, regime="trend", rl_gate_pass=True, ts=1_700_000_000_000)


def _doomed(url: str, host: str, got: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    """A consume loop that takes one batch and hangs in its handler (until SIGKILL)."""
    bus_module._HOST = host

    async def run() -> None:
        client = aredis.Redis.from_url(url, decode_responses=True)
        bus = Bus(client, keys=KEYS)

        async def handler(batch: list[Parsed[Signal]]) -> None:
            got.set()
            await asyncio.sleep(3600)

        await bus.consume(stream=STREAM, group="g", consumer="doomed", message_type=Signal, handler=handler,
                          stop=asyncio.Event(), count=10, block_ms=50)

    asyncio.run(run())


def _start_doomed(url: str, host: str) -> mp.Process:
    ctx = mp.get_context("fork")
    got = ctx.Event()
    proc = ctx.Process(target=_doomed, args=(url, host, got))
    proc.start()
    assert got.wait(15), "doomed consumer never got its batch"
    return proc


async def _survive(bus: Bus, seen: list[tuple[float, str]], stop: asyncio.Event) -> None:
    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend((time.monotonic(), p.message.signal_id) for p in batch)

    await bus.consume(stream=STREAM, group="g", consumer="survivor", message_type=Signal, handler=handler,
                      stop=stop, count=10, block_ms=50)


async def _until(pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("host", ["same", "other"])
async def test_kill_9_entries_resume_within_5s_in_symbol_order_and_dead_consumer_leaves_group(
    redis_url: str, host: str
) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.publish_many([(STREAM, sig("open-X", "XUSDT")), (STREAM, sig("open-Y", "YUSDT"))])
    proc = _start_doomed(redis_url, bus_module._HOST if host == "same" else "another-node")
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    killed = time.monotonic()
    # later entries: the close of X must wait for X's open; Z has nothing pending and goes at once
    await bus.publish_many([(STREAM, sig("close-X", "XUSDT")), (STREAM, sig("open-Z", "ZUSDT"))])
    seen: list[tuple[float, str]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_survive(bus, seen, stop))
    await _until(lambda: len(seen) == 4, timeout=10)
    stop.set()
    await task
    order = [sid for _, sid in seen]
    first_stranded = min(t for t, sid in seen if sid in ("open-X", "open-Y"))
    assert first_stranded - killed < 5.0
    assert order.index("open-X") < order.index("close-X")
    if host == "other":  # had to wait for the TTL: Z was not held back meanwhile, close-X was
        assert order.index("open-Z") < order.index("open-X")
    names = [c.name for c in await bus.group_consumers(STREAM, "g")]
    assert names == []  # the dead one removed after its entries were claimed; the survivor left cleanly
    assert (await client.xpending(STREAM, "g"))["pending"] == 0
    await client.aclose()


async def test_live_replica_holding_an_earlier_entry_of_a_symbol_holds_back_the_later_one(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.ensure_group(STREAM, "g")
    await bus.publish(STREAM, sig("first-X", "XUSDT"))
    slow_started = asyncio.Event()
    release = asyncio.Event()
    seen: list[str] = []

    async def slow(batch: list[Parsed[Signal]]) -> None:
        slow_started.set()
        await release.wait()
        seen.extend(p.message.signal_id for p in batch)

    async def fast(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    a = asyncio.create_task(bus.consume(stream=STREAM, group="g", consumer="a", message_type=Signal, handler=slow,
                                        stop=stop, count=10, block_ms=50))
    await asyncio.wait_for(slow_started.wait(), 5)
    b = asyncio.create_task(bus.consume(stream=STREAM, group="g", consumer="b", message_type=Signal, handler=fast,
                                        stop=stop, count=10, block_ms=50))
    await asyncio.sleep(0.3)  # b is registered and reading
    await bus.publish_many([(STREAM, sig("second-X", "XUSDT")), (STREAM, sig("only-Y", "YUSDT"))])
    await _until(lambda: "only-Y" in seen, timeout=5)
    await asyncio.sleep(0.5)
    assert "second-X" not in seen  # held while a still works on first-X
    release.set()
    await _until(lambda: "second-X" in seen, timeout=5)
    stop.set()
    await asyncio.gather(a, b)
    assert seen.index("first-X") < seen.index("second-X")
    await client.aclose()


async def test_busy_consumer_whose_lapsed_key_is_refreshed_right_after_is_not_claimed_but_a_dead_one_is(
    redis_url: str,
) -> None:
    """A stall (GC, CPU starvation) can let a live consumer's key lapse while it is busy in its
    handler (so Redis shows it idle); our sweep's read of the key can then overtake its refresh."""
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.ensure_group(STREAM, "g")
    entry_id = await bus.publish(STREAM, sig("busy-X", "XUSDT"))
    assert [e.id for e in await bus.read(STREAM, "g", "a", count=10, block_ms=None)] == [entry_id]
    await asyncio.sleep(cons.KEYLESS_MIN_IDLE_MS / 1000 + 0.1)  # "a" works on it: idle, key lapsed

    async def refresh_after_stall() -> None:
        await asyncio.sleep(0.02)
        await bus.keep_alive("g", "a")

    refresh = asyncio.create_task(refresh_after_stall())
    assert await bus.recover_dead(STREAM, "g", "b") == []
    assert [c.name for c in await bus.group_consumers(STREAM, "g") if c.name != "b"] == ["a"]  # kept: it refreshed
    await refresh
    await client.delete(KEYS.consumer_alive("g", "a"))  # now it really stopped refreshing
    claimed = await bus.recover_dead(STREAM, "g", "b")
    assert [e.id for e in claimed] == [entry_id]
    assert [c.name for c in await bus.group_consumers(STREAM, "g") if c.name != "b"] == []  # "a" removed
    await client.aclose()


async def test_failed_entry_holds_back_later_entries_of_its_symbol_until_it_succeeds(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.publish_many([(STREAM, sig("x1", "XUSDT")), (STREAM, sig("y1", "YUSDT")), (STREAM, sig("x2", "XUSDT"))])
    attempts = {"x1": 0}
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        for p in batch:
            if p.message.signal_id == "x1" and attempts["x1"] < 2:
                attempts["x1"] += 1
                raise RuntimeError("transient")
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(stream=STREAM, group="g", consumer="c", message_type=Signal,
                                           handler=handler, stop=stop, count=10, block_ms=50))
    await _until(lambda: len(seen) == 3, timeout=10)
    stop.set()
    await task
    assert seen.index("x1") < seen.index("x2") and attempts["x1"] == 2
    await client.aclose()


def test_dead_or_alive_rules() -> None:
    info = cons.ConsumerInfo("c", pending=3, idle_ms=5_000)
    assert cons.is_dead(info, None, host="h", pid_alive=lambda _: True)
    assert not cons.is_dead(cons.ConsumerInfo("c", 3, 200), None, host="h", pid_alive=lambda _: True)
    assert cons.is_dead(info, cons.Liveness("h", 42), host="h", pid_alive=lambda _: False)
    assert not cons.is_dead(info, cons.Liveness("other", 42), host="h", pid_alive=lambda _: False)
    assert cons.parse_alive(b"node-1|17") == cons.Liveness("node-1", 17)
    assert cons.parse_alive("garbage") is None
    ready, held = cons.split_in_order(
        [("5-0", "X"), ("3-0", "Y"), ("10-0", "X"), ("4-0", None)], blockers={"X": (7, 0)}, stuck_keys={"Y"}
    )
    assert ready == ["4-0", "5-0"] and held == ["3-0", "10-0"]
