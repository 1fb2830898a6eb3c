"""The bus through a real Redis: ack after success, redelivery, reclaim, dead-letter, reconnect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing as mp
import os
import signal

import pytest
import redis
import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import DeadLetter, PolicyAudit, Signal

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


# -- poison: whatever bytes a writer puts in an entry, the consumer lives and the rest flows -------

POISON: dict[str, dict[bytes, bytes]] = {
    "non_utf8_value": {b"regime": b"tr\xffend"},
    "non_utf8_field_name": {b"\xfe\xfeextra": b"x"},
    "nul_and_escape_bytes_in_id": {b"signal_id": b"s\x00\x1b[31m\r\n"},  # valid UTF-8: must pass
    "negative_zero_ts": {b"ts": b"-0.0"},
    "nan_price": {b"price": b"NaN"},
    "inf_price": {b"price": b"inf"},
    "non_ascii_digits_ts": {b"ts": "١٧٠٠".encode()},
    "padded_number": {b"ts": b" 2 "},
    "bool_yes": {b"rl_gate_pass": b"yes"},
    "bool_upper_true": {b"rl_gate_pass": b"TRUE"},
    "bool_one": {b"rl_gate_pass": b"1"},
    "huge_int": {b"ts": b"9" * 5000},
}


def _raw_signal(i: int, overrides: dict[bytes, bytes]) -> dict[bytes, bytes]:
    fields = {k.encode(): v.encode() for k, v in signal_msg(i).to_fields().items()}
    fields.update(overrides)
    return fields


@pytest.mark.parametrize("kind", sorted(POISON))
async def test_poison_entry_is_dead_lettered_and_valid_entries_in_the_same_batch_are_processed(
    redis_url: str, kind: str
) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)  # the workers' client: decodes replies
    raw_client = aredis.Redis.from_url(redis_url)
    bus = Bus(client, keys=KEYS)
    await bus.publish(KEYS.ai_signal, signal_msg(1))
    await raw_client.xadd(KEYS.ai_signal, _raw_signal(2, POISON[kind]))  # type: ignore[arg-type]
    await bus.publish(KEYS.ai_signal, signal_msg(3))
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(bus, consumer="c1", handler=handler, stop=stop))
    passes = kind == "nul_and_escape_bytes_in_id"
    await wait_for(lambda: len(seen) == (3 if passes else 2))
    stop.set()
    await task
    assert not task.exception()
    assert (await client.xpending(KEYS.ai_signal, "g"))["pending"] == 0
    rows = await raw_client.xrange(KEYS.deadletter)
    if passes:
        assert seen == ["s1", "s\x00\x1b[31m\r\n", "s3"] and rows == []
        return
    assert seen == ["s1", "s3"]
    assert len(rows) == 1
    letter = DeadLetter.from_fields(rows[0][1])
    assert letter.source_stream == KEYS.ai_signal and letter.group == "g" and letter.consumer == "c1"
    assert letter.code in ("malformed", "non_utf8")
    (field, value), = POISON[kind].items()
    if letter.code == "non_utf8":
        key = field.decode() if field.isascii() else "base64:" + base64.b64encode(field).decode()
        assert key in letter.raw_base64 or key.startswith("base64:")
        stored = letter.raw[key]
        assert (base64.b64decode(stored) if key in letter.raw_base64 else stored.encode()) == value
    else:
        assert letter.raw[field.decode()] == value.decode()
        assert field.decode() in letter.reason
    await client.aclose()
    await raw_client.aclose()


async def test_poison_entries_do_not_break_read_range_or_reclaim_of_the_decoding_client(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    await client.xadd(KEYS.ai_signal, {"x": "1"})
    await client.execute_command("XADD", KEYS.ai_signal, "*", b"regime", b"\xff\xfe")
    await bus.ensure_group(KEYS.ai_signal, "g")
    read = await bus.read(KEYS.ai_signal, "g", "dead", count=10, block_ms=None)
    assert [e.fields for e in read][1] == {b"regime": b"\xff\xfe"}
    assert len(await bus.range(KEYS.ai_signal)) == 2
    assert [e.fields for e in await bus.range(KEYS.ai_signal, reverse=True, count=1)] == [{b"regime": b"\xff\xfe"}]
    claimed = await bus.reclaim(KEYS.ai_signal, "g", "alive", min_idle_ms=0)
    assert len(claimed) == 2 and all(e.deliveries == 2 for e in claimed)
    await client.aclose()


async def test_entry_whose_parsing_raises_anything_is_dead_lettered_not_fatal(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    deep = "[" * 100_000 + "]" * 100_000  # a JSON field nested deep enough to blow the parser's stack
    await client.xadd(KEYS.policy_audit, {"v": "1", "ts": "1", "symbols": deep})
    await bus.publish(KEYS.policy_audit, PolicyAudit(
        version="1", generator="g", features_window="15m", universe_hash="h", universe_count=0, symbols=[],
        valid_until=1, funnel={}, ts=2))
    seen: list[int] = []

    async def handler(batch: list[Parsed[PolicyAudit]]) -> None:
        seen.extend(p.message.ts for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(
        stream=KEYS.policy_audit, group="g", consumer="c1", message_type=PolicyAudit, handler=handler, stop=stop,
        block_ms=50))
    await wait_for(lambda: seen == [2])
    stop.set()
    await task
    assert await client.xlen(KEYS.deadletter) == 1
    await client.aclose()
