"""Gate worker through real Redis: one decision per intent, reasons, pending intents, dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aredis
from quantum_trader.core.clock import WallClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import GateDecision
from quantum_trader.core.service import WorkerContext, redis_client, worker_main
from quantum_trader.executor.state import Position, utc_day
from quantum_trader.gate.core import decision_id_for

from tests.executor.fixtures import (
    SYMBOLS,
    StaticExchange,
    make_intent,
    profile,
    snapshot_mapping,
    universe_json,
)


async def decisions(client: aredis.Redis, keys: Keys) -> list[GateDecision]:
    return [GateDecision.from_fields(f) for _, f in await client.xrange(keys.gate_decision)]


async def run_gate(url: str, prof_kw: dict[str, object], until: Callable[[], Awaitable[bool]]) -> None:
    prof = profile(**prof_kw)  # type: ignore[arg-type]
    client = redis_client(url)
    stop = asyncio.Event()
    ctx = WorkerContext(name="gate", profile=prof, redis=client, clock=WallClock(), stop=stop,
                        exchange_factory=StaticExchange, consumer="gate-test")
    task = asyncio.create_task(worker_main("gate", prof)(ctx))
    try:
        deadline = time.monotonic() + 10
        while not await until():
            assert time.monotonic() < deadline, "gate did not finish in time"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await client.aclose()


async def seed(client: aredis.Redis, keys: Keys, symbols: list[str], *, age_ms: int = 0) -> None:
    now = int(time.time() * 1000)
    for s in symbols:
        await client.hset(keys.position_snapshot(s), mapping=snapshot_mapping(100.0, now - age_ms))


async def publish(client: aredis.Redis, keys: Keys, intents: list[object]) -> None:
    for i in intents:
        await client.xadd(keys.trade_intent, i.to_fields())  # type: ignore[attr-defined]


async def test_redelivered_and_republished_intents_get_exactly_one_decision(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    keys = Keys("gx")
    await seed(aredis_client, keys, list(SYMBOLS[:20]))
    intents = [make_intent(f"i{n}", SYMBOLS[n % 20], ts=int(time.time() * 1000)) for n in range(60)]
    await publish(aredis_client, keys, intents + intents[:30])  # 30 published twice

    async def done() -> bool:
        info = await aredis_client.xinfo_groups(keys.trade_intent)
        return bool(info) and int(info[0]["pending"]) == 0 and int(info[0].get("lag") or 0) == 0

    await run_gate(redis_url, {}, done)
    got = await decisions(aredis_client, keys)
    assert sorted(d.intent_id for d in got) == sorted(i.intent_id for i in intents)
    assert all(d.decision_id == decision_id_for(d.intent_id) for d in got)
    by_reason = {d.reason for d in got}
    assert by_reason == {"none", "duplicate"}  # 20 symbols: first intent per symbol executes
    assert sum(d.decision == "EXECUTE" for d in got) == 20
    pending = await aredis_client.hgetall(keys.pending_intents)
    executes = {d.intent_id for d in got if d.decision == "EXECUTE"}
    assert {k.decode() for k in pending} == executes
    assert json.loads(pending[next(iter(pending))])["intent_id"] in executes
    aged = {k.decode() for k in await aredis_client.zrange(keys.ledger_age, 0, -1)}
    assert aged == {i.intent_id for i in intents}  # every ledger entry can be pruned later


async def test_control_paused_blocks_new_positions_with_reason_paused_and_lets_an_exit_through(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    keys = Keys("gx")
    await seed(aredis_client, keys, ["T000USDT"])
    await aredis_client.set(keys.control_paused, "1")
    await publish(aredis_client, keys, [make_intent("p1"), make_intent("p2", side="SELL", reduce_only=True)])

    async def done() -> bool:
        return int(await aredis_client.xlen(keys.gate_decision)) == 2

    await run_gate(redis_url, {}, done)
    assert [(d.decision, d.reason) for d in await decisions(aredis_client, keys)] == [
        ("BLOCKED", "paused"), ("EXECUTE", "none")]
    assert await aredis_client.hkeys(keys.pending_intents) == [b"p2"]  # only the exit goes on to the executor


async def test_universe_allowlist_stale_snapshot_and_loss_streak_kill_score(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    keys = Keys("gx")
    now = int(time.time() * 1000)
    await aredis_client.set(keys.universe_active, universe_json(["T000USDT", "T001USDT", "T002USDT"],
                                                                valid_until=now + 60_000))
    await seed(aredis_client, keys, ["T000USDT", "T002USDT"])
    await seed(aredis_client, keys, ["T001USDT"], age_ms=120_000)
    today = utc_day(now)
    await aredis_client.hset(keys.risk_state, mapping={"loss_streak": "3", "day": today})  # 3/6 = 0.5 < 0.6
    await publish(aredis_client, keys, [
        make_intent("a", "T009USDT"),  # not in universe
        make_intent("b", "T001USDT"),  # stale snapshot (max age 30s)
        make_intent("c", "T000USDT"),  # executes
    ])
    await aredis_client.hset(keys.cooldowns, "T002USDT", str(now + 600_000))
    await publish(aredis_client, keys, [make_intent("d", "T002USDT")])

    async def done() -> bool:
        return int(await aredis_client.xlen(keys.gate_decision)) == 4

    spec = {"snapshot": {"allowlistSource": "universe", "allowlist": []},
            "gate": {"maxSnapshotAge": "30s", "killLossStreak": 6}}
    await run_gate(redis_url, spec, done)
    got = {d.intent_id: d for d in await decisions(aredis_client, keys)}
    assert got["a"].reason == "symbol_not_in_allowlist:T009USDT"
    assert got["b"].reason == "stale_snapshot"
    assert (got["c"].decision, got["c"].kill_score) == ("EXECUTE", 0.5)
    assert got["d"].reason == "cooldown:T002USDT"

    await aredis_client.hset(keys.risk_state, mapping={"loss_streak": "6", "day": today})
    await publish(aredis_client, keys, [make_intent("e", "T000USDT", side="SELL", reduce_only=True),
                                        make_intent("f", "T002USDT", side="SELL")])

    async def done2() -> bool:
        return int(await aredis_client.xlen(keys.gate_decision)) == 6

    await aredis_client.hdel(keys.cooldowns, "T002USDT")
    await run_gate(redis_url, spec, done2)
    got = {d.intent_id: d for d in await decisions(aredis_client, keys)}
    assert (got["e"].decision, got["e"].reason) == ("EXECUTE", "none")  # reduce-only passes kill score 1
    assert got["f"].reason == "kill_score_critical"


async def test_malformed_intent_is_dead_lettered_and_the_next_one_decided(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    keys = Keys("gx")
    await seed(aredis_client, keys, ["T000USDT"])
    await aredis_client.xadd(keys.trade_intent, {"intent_id": "bad", "side": "UP"})
    await publish(aredis_client, keys, [make_intent("good")])

    async def done() -> bool:
        return int(await aredis_client.xlen(keys.gate_decision)) == 1 and int(
            await aredis_client.xlen(keys.deadletter)) == 1

    await run_gate(redis_url, {}, done)
    assert [d.intent_id for d in await decisions(aredis_client, keys)] == ["good"]


async def test_exposure_uses_open_notional_of_all_positions_plus_in_flight(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    keys = Keys("gx")
    await seed(aredis_client, keys, ["T000USDT", "T001USDT", "T002USDT"])
    held = Position("T009USDT", "BUY", 9.5, 100.0, 0.0, 0.0, 0, "PAPER-000000000009")  # 950 USD open
    await aredis_client.hset(keys.positions, "T009USDT", held.to_json())  # the gate re-syncs the total at start
    await publish(aredis_client, keys, [make_intent("x1", "T000USDT"),  # 950 + 20 = 970 ≤ 1000
                                        make_intent("x2", "T001USDT"),  # + in-flight 20 + 20 = 990
                                        make_intent("x3", "T002USDT")])  # 1010 > 1000

    async def done() -> bool:
        return int(await aredis_client.xlen(keys.gate_decision)) == 3

    await run_gate(redis_url, {"gate": {"maxExposureUsd": 1000}}, done)
    got = {d.intent_id: d.reason for d in await decisions(aredis_client, keys)}
    assert got == {"x1": "none", "x2": "none", "x3": "exposure_limit"}
    summary = await aredis_client.hgetall(keys.pending_summary)
    assert summary[b"T000USDT:BUY"] == b"1" and float(summary[b"_notional"]) == 40.0
