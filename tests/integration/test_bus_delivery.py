"""The bus through a real Redis: ack after success, redelivery, reclaim, dead-letter, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal

import redis
import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import DeadLetter, Signal

KEYS = Keys("bus-test")


def signal_msg(i: int, *, symbol: str = "BTCUSDT") -> Signal:
    return Signal(
        signal_id=f"s{i}", symbol=symbol, side="BUY", confidence=0.8, model="m", model_version="1",
        price=100.0 + i, atr=1.0, regime="trend", rl_gate_pass=True, ts=1_700_000_000_000 + i,
    )


async def run_consumer(
    bus: Bus, *, consumer: str, handler, stop: asyncio.Event, min_idle_ms: int = 30_000, max_deliveries: int = 5
) -> None:
    await bus.consume(
        stream=KEYS.ai_signal, group="g", consumer=consumer, message_type=Signal, handler=handler, stop=stop,
        count=50, block_ms=50, min_idle_ms=min_idle_ms, max_deliveries=max_deliveries,
    )


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_published_entries_are_handled_once_and_acked(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in range(120)])
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(bus, consumer="c1", handler=handler, stop=stop))
    await wait_for(lambda: len(seen) >= 120)
    stop.set()
    await task
    assert sorted(seen) == sorted(f"s{i}" for i in range(120))
    assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 0
    await client.aclose()


async def test_failing_handler_is_retried_then_dead_lettered_without_blocking_others(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.publish_many([(KEYS.ai_signal, signal_msg(i, symbol="BAD" if i == 3 else "OK")) for i in range(6)])
    handled: list[str] = []
    deliveries: dict[str, set[int]] = {}

    async def handler(batch: list[Parsed[Signal]]) -> None:
        for p in batch:
            deliveries.setdefault(p.message.signal_id, set()).add(p.deliveries)
            if p.message.symbol == "BAD":
                raise RuntimeError("poison")
        handled.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(bus, consumer="c1", handler=handler, stop=stop, max_deliveries=3))
    await wait_for(lambda: len(handled) == 5)

    async def dead() -> list:
        return await client.xrange(KEYS.deadletter)

    for _ in range(200):
        if await dead():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    letters = [DeadLetter.from_fields(f) for _, f in await dead()]
    assert len(letters) == 1
    assert letters[0].reason.startswith("max_deliveries_exceeded")
    assert letters[0].raw["signal_id"] == "s3"
    assert deliveries["s3"] == {1, 2, 3}
    assert sorted(handled) == ["s0", "s1", "s2", "s4", "s5"]
    assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 0
    await client.aclose()


async def test_malformed_entry_goes_to_deadletter_with_reason_and_raw_fields(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    good = signal_msg(1).to_fields()
    await client.xadd(KEYS.ai_signal, {**good, "confidence": "1.7"})
    await client.xadd(KEYS.ai_signal, {"garbage": "x"})
    await bus.publish(KEYS.ai_signal, signal_msg(2))
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(bus, consumer="c1", handler=handler, stop=stop))
    await wait_for(lambda: seen == ["s2"])
    stop.set()
    await task
    letters = [DeadLetter.from_fields(f) for _, f in await client.xrange(KEYS.deadletter)]
    assert [letter.source_stream for letter in letters] == [KEYS.ai_signal] * 2
    assert "confidence" in letters[0].reason and letters[0].raw["confidence"] == "1.7"
    assert "required field missing" in letters[1].reason and letters[1].raw == {"garbage": "x"}
    await client.aclose()


def _crashing_consumer(url: str, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Reads entries and never acks them: then it is killed with SIGKILL."""
    client = redis.Redis.from_url(url, decode_responses=True)
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create(KEYS.ai_signal, "g", id="0", mkstream=True)
    client.xreadgroup("g", "doomed", {KEYS.ai_signal: ">"}, count=1000)
    ready.set()
    signal.pause()


async def test_entries_of_a_killed_consumer_are_reclaimed_by_another(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in range(40)])
    ready = mp.get_context("fork").Event()
    proc = mp.get_context("fork").Process(target=_crashing_consumer, args=(redis_url, ready))
    proc.start()
    assert ready.wait(10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 40

    seen: list[tuple[str, int]] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend((p.message.signal_id, p.deliveries) for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(bus, consumer="survivor", handler=handler, stop=stop, min_idle_ms=200))
    await wait_for(lambda: len(seen) >= 40)
    stop.set()
    await task
    assert sorted(s for s, _ in seen) == sorted(f"s{i}" for i in range(40))
    assert all(d == 2 for _, d in seen)  # delivered to the dead consumer once, then to us
    assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 0
    await client.aclose()


async def test_consumer_survives_redis_restart_without_losing_acknowledged_entries() -> None:
    server = EmbeddedRedis().start()
    try:
        client = aredis.Redis.from_url(server.url, decode_responses=True)
        bus = Bus(client, keys=KEYS)
        seen: list[str] = []

        async def handler(batch: list[Parsed[Signal]]) -> None:
            seen.extend(p.message.signal_id for p in batch)

        stop = asyncio.Event()
        task = asyncio.create_task(run_consumer(bus, consumer="c1", handler=handler, stop=stop))
        await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in range(50)])
        await wait_for(lambda: len(seen) >= 50)
        await asyncio.sleep(1.1)  # let appendfsync everysec persist the acks
        await asyncio.to_thread(server.restart, down_s=0.5)
        await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in range(50, 100)])
        await wait_for(lambda: len(seen) >= 100, timeout=20)
        stop.set()
        await task
        assert sorted(set(seen)) == sorted(f"s{i}" for i in range(100))
        assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 0
        assert await client.xlen(KEYS.ai_signal) == 100
        await client.aclose()
    finally:
        server.stop()


async def test_publish_once_publishes_a_ledgered_message_exactly_once(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    results = [
        await bus.publish_once(KEYS.gate_decision, signal_msg(1), ledger=KEYS.decided_intents, ledger_field="i1")
        for _ in range(3)
    ]
    assert results == [True, False, False]
    assert await client.xlen(KEYS.gate_decision) == 1
    assert await client.hget(KEYS.decided_intents, "i1") == "1"
    await client.aclose()
