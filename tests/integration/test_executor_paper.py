"""Paper executor through real Redis: exactly-once fills, atomic state, SL/TP closes with PnL, start-up."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aredis
from quantum_trader.core.clock import WallClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import ExecutionResult, GateDecision, PositionEvent
from quantum_trader.core.service import WorkerContext, worker_main
from quantum_trader.executor.batch import limits_from
from quantum_trader.executor.core import filters_by_symbol
from quantum_trader.executor.paper import PaperVenue
from quantum_trader.executor.state import Position, RiskState
from quantum_trader.executor.worker import Executor
from quantum_trader.gate.core import decision_id_for
from quantum_trader.gate.worker import intent_json

from tests.executor.fixtures import SYMBOLS, StaticExchange, make_intent, market, profile, snapshot_mapping

KEYS = Keys("gx")


def now_ms() -> int:
    return int(time.time() * 1000)


def executor(client: aredis.Redis, **spec: object) -> Executor:
    prof = profile(**spec)  # type: ignore[arg-type]
    filters = filters_by_symbol([market(s) for s in SYMBOLS[:10]])
    return Executor(
        redis=client, keys=KEYS, settings=prof.spec.executor, limits=limits_from(prof.spec.gate, prof.spec.ai),
        venue=PaperVenue(settings=prof.spec.executor, filters=filters, spread_bps=prof.spec.universe.spread_bps), filters=filters,
        log=EventLog(worker="executor", profile="gx"),
    )


async def decide(client: aredis.Redis, intent: object, *, execute: bool = True) -> GateDecision:
    """What the gate writes for an EXECUTE: the decision and the pending intent."""
    i = intent
    d = GateDecision(decision_id=decision_id_for(i.intent_id), intent_id=i.intent_id, symbol=i.symbol,  # type: ignore[attr-defined]
                     side=i.side, decision="EXECUTE" if execute else "BLOCKED", reason="none" if execute else "paused",  # type: ignore[attr-defined]
                     kill_score=0.0, ts=now_ms())
    if execute:
        await client.hset(KEYS.pending_intents, i.intent_id, intent_json(i))  # type: ignore[arg-type, attr-defined]
    return d


async def results(client: aredis.Redis) -> list[ExecutionResult]:
    return [ExecutionResult.from_fields(f) for _, f in await client.xrange(KEYS.execution_result)]


async def events(client: aredis.Redis) -> list[PositionEvent]:
    return [PositionEvent.from_fields(f) for _, f in await client.xrange(KEYS.position_event)]


async def seed(client: aredis.Redis, symbol: str, price: float) -> None:
    await client.hset(KEYS.position_snapshot(symbol), mapping=snapshot_mapping(price, now_ms()))


async def test_duplicate_delivery_of_an_execute_fills_once(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    d = await decide(aredis_client, make_intent("dup-1", sl=90.0, tp=120.0))
    await ex.handle([d, d], now_ms=now_ms())  # twice in one batch
    await ex.handle([d], now_ms=now_ms())  # and redelivered later
    res = await results(aredis_client)
    assert len(res) == 1 and res[0].status == "FILLED" and res[0].order_id.startswith("PAPER-")
    assert res[0].qty == 0.2 and 0.0 <= res[0].slippage_bps <= 10.0
    assert [e.event for e in await events(aredis_client)] == ["OPENED"]
    assert await aredis_client.get(KEYS.open_orders) == b"1"
    pos = Position.from_json((await aredis_client.hget(KEYS.positions, "T000USDT")) or b"")
    assert (pos.qty, pos.stop_loss, pos.take_profit, pos.order_id) == (0.2, 90.0, 120.0, res[0].order_id)
    assert await aredis_client.hget(KEYS.executed_intents, "dup-1") == res[0].order_id.encode()
    assert await aredis_client.hlen(KEYS.pending_intents) == 0
    notional = float(await aredis_client.hget(KEYS.risk_state, "open_notional_usd") or 0)
    assert notional == pytest.approx(pos.qty * pos.entry_price)


async def test_below_min_notional_is_raised_to_the_minimum_and_blocked_decisions_are_ignored(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    small = await decide(aredis_client, make_intent("small", size=2.0, leverage=2.0))  # 4 USD < 5: raised to 5
    blocked = await decide(aredis_client, make_intent("blk", "T001USDT"), execute=False)
    await ex.handle([small, blocked], now_ms=now_ms())
    res = await results(aredis_client)
    assert [(r.intent_id, r.status, r.qty) for r in res] == [("small", "FILLED", 0.05)]
    assert await aredis_client.get(KEYS.open_orders) == b"1"


async def test_a_raise_the_exposure_room_in_state_risk_cannot_hold_is_refused_with_its_numbers(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client, gate={"maxExposureUsd": 1000})
    await seed(aredis_client, "T000USDT", 100.0)
    await aredis_client.hset(KEYS.risk_state, "open_notional_usd", "998")  # 2 USD of room, the minimum is 5
    small = await decide(aredis_client, make_intent("small", size=2.0, leverage=2.0))
    await ex.handle([small], now_ms=now_ms())
    res = await results(aredis_client)
    assert [(r.intent_id, r.status, r.reason) for r in res] == [
        ("small", "REJECTED", "below_min_notional:need_usd=5.00,max_usd=2.00")]
    assert await aredis_client.hlen(KEYS.positions) == 0
    risk = RiskState.from_hash(await aredis_client.hgetall(KEYS.risk_state))
    assert risk.error_rate == 0.0 and risk.executions == 1  # policy rejection is not a venue error


async def test_no_new_positions_flag_rejects_opens_but_not_reduce_only(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    await ex.handle([await decide(aredis_client, make_intent("o1"))], now_ms=now_ms())
    await aredis_client.set(KEYS.control_no_new_positions, "1")
    await seed(aredis_client, "T001USDT", 100.0)
    opening = await decide(aredis_client, make_intent("o2", "T001USDT"))
    closing = await decide(aredis_client, make_intent("c1", side="SELL", reduce_only=True, size=1000.0))
    await ex.handle([opening, closing], now_ms=now_ms())
    res = {r.intent_id: r for r in await results(aredis_client)}
    assert (res["o2"].status, res["o2"].reason) == ("REJECTED", "no_new_positions")
    assert res["c1"].status == "FILLED"
    assert await aredis_client.hlen(KEYS.positions) == 0 and await aredis_client.get(KEYS.open_orders) == b"0"
    closed = [e for e in await events(aredis_client) if e.event == "CLOSED"]
    assert len(closed) == 1 and closed[0].close_reason == "signal"


async def test_unknown_intent_is_rejected_with_reason(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client)
    d = GateDecision(decision_id="GD-x", intent_id="ghost", symbol="T000USDT", side="BUY", decision="EXECUTE",
                     reason="none", kill_score=0.0, ts=now_ms())
    await ex.handle([d], now_ms=now_ms())
    assert [(r.status, r.reason) for r in await results(aredis_client)] == [("REJECTED", "intent_unknown")]


@pytest.mark.parametrize(
    ("side", "mark", "reason"),
    [("BUY", 94.0, "stop_loss"), ("BUY", 111.0, "take_profit"), ("SELL", 106.0, "stop_loss"),
     ("SELL", 89.0, "take_profit")],
)
async def test_monitor_closes_on_sl_tp_with_correct_pnl_risk_and_cooldown(
    aredis_client: aredis.Redis, side: str, mark: float, reason: str
) -> None:
    ex = executor(aredis_client, gate={"cooldown": "5m"})
    await seed(aredis_client, "T000USDT", 100.0)
    sl, tp = (95.0, 110.0) if side == "BUY" else (105.0, 90.0)
    await ex.handle([await decide(aredis_client, make_intent("m1", side=side, sl=sl, tp=tp))], now_ms=now_ms())
    opened = (await results(aredis_client))[0]
    assert await ex.monitor_once(now_ms=now_ms()) == 0  # mark 100: nothing crossed
    await seed(aredis_client, "T000USDT", mark)
    t = now_ms()
    assert await ex.monitor_once(now_ms=t) == 1
    assert await ex.monitor_once(now_ms=t) == 0  # already closed: nothing twice
    closed = [e for e in await events(aredis_client) if e.event == "CLOSED"]
    assert len(closed) == 1 and closed[0].close_reason == reason
    c = closed[0]
    direction = 1 if side == "BUY" else -1
    assert 0 <= (c.exit_price / mark - 1) * -direction * 1e4 <= 10.0 + 1e-6  # adverse exit slippage, bounded
    exit_fee = c.qty * c.exit_price * 4 / 10_000
    want = (c.exit_price - opened.price) * c.qty * direction - opened.fee_usd - exit_fee
    assert c.pnl_usd == pytest.approx(want, abs=1e-6)
    assert await aredis_client.hlen(KEYS.positions) == 0 and await aredis_client.get(KEYS.open_orders) == b"0"
    assert float(await aredis_client.hget(KEYS.risk_state, "open_notional_usd") or 0) == pytest.approx(0.0, abs=1e-9)
    risk = RiskState.from_hash(await aredis_client.hgetall(KEYS.risk_state))
    assert risk.realized_pnl_total == pytest.approx(want, abs=1e-6)
    assert risk.loss_streak == (1 if want < 0 else 0)
    assert risk.equity_peak == pytest.approx(max(0.0, want), abs=1e-6)
    assert int(await aredis_client.hget(KEYS.cooldowns, "T000USDT") or 0) == t + 300_000


async def test_executor_start_initialises_open_orders_from_positions(redis_url: str, aredis_client: aredis.Redis) -> None:
    p = Position("T000USDT", "BUY", 0.1, 100.0, 0.0, 0.0, now_ms(), "PAPER-000000000001")
    await aredis_client.hset(KEYS.positions, mapping={"T000USDT": p.to_json(), "T001USDT": p.to_json()})
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    stop = asyncio.Event()
    ctx = WorkerContext(name="executor", profile=profile(), redis=client, clock=WallClock(), stop=stop,
                        exchange_factory=StaticExchange, consumer="ex-test")
    task = asyncio.create_task(worker_main("executor", profile())(ctx))
    for _ in range(200):
        if await aredis_client.get(KEYS.open_orders) is not None:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    await client.aclose()
    assert await aredis_client.get(KEYS.open_orders) == b"2"


async def test_gate_and_executor_in_process_turn_intents_into_fills(redis_url: str, aredis_client: aredis.Redis) -> None:
    for s in SYMBOLS[:5]:
        await seed(aredis_client, s, 50.0)
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    stop = asyncio.Event()
    prof = profile()
    ctxs = [WorkerContext(name=n, profile=prof, redis=client, clock=WallClock(), stop=stop,
                          exchange_factory=StaticExchange, consumer=f"{n}-t") for n in ("gate", "executor")]
    tasks = [asyncio.create_task(worker_main(c.name, prof)(c)) for c in ctxs]
    for n in range(10):
        await aredis_client.xadd(KEYS.trade_intent, make_intent(f"e{n}", SYMBOLS[n % 5], ts=now_ms()).to_fields())
    for _ in range(300):
        if await aredis_client.xlen(KEYS.execution_result) >= 5 and await aredis_client.xlen(KEYS.gate_decision) >= 10:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    await client.aclose()
    res = await results(aredis_client)
    assert sorted(r.intent_id for r in res) == [f"e{n}" for n in range(5)]
    assert all(r.status == "FILLED" and r.mode == "paper" for r in res)
    assert await aredis_client.get(KEYS.open_orders) == b"5"
    assert json.loads(await aredis_client.hget(KEYS.positions, SYMBOLS[0]) or b"{}")["side"] == "BUY"


async def test_execution_failing_on_its_last_delivery_is_answered_rejected_and_in_flight_released(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client)
    i = make_intent("poison")
    d = await decide(aredis_client, i)
    await aredis_client.hset(KEYS.pending_summary, mapping={"T000USDT:BUY": "1", "_notional": "20.0"})
    await ex.reject_failed(d, error="RuntimeError: boom", now_ms=now_ms())
    await ex.reject_failed(d, error="RuntimeError: boom", now_ms=now_ms())  # idempotent
    assert [(r.status, r.reason) for r in await results(aredis_client)] == [("REJECTED", "executor_error")]
    assert await aredis_client.hlen(KEYS.pending_intents) == 0
    summary = await aredis_client.hgetall(KEYS.pending_summary)
    assert b"T000USDT:BUY" not in summary and abs(float(summary[b"_notional"])) < 1e-9
    risk = RiskState.from_hash(await aredis_client.hgetall(KEYS.risk_state))
    assert risk.error_rate > 0  # counted as an execution error (kill score input)


async def test_position_changed_under_a_batch_fails_the_guard_and_retries_on_fresh_state(
    aredis_client: aredis.Redis,
) -> None:
    from quantum_trader.executor.worker import GuardFailed

    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    other = Position("T000USDT", "SELL", 1.0, 100.0, 0.0, 0.0, now_ms(), "PAPER-OTHER0000000")

    real_run = ex._read

    async def read_then_race(*args: object, **kwargs: object) -> object:
        res = await real_run(*args, **kwargs)  # type: ignore[operator]
        await aredis_client.hset(KEYS.positions, "T000USDT", other.to_json())  # someone opened it meanwhile
        return res

    ex._read = read_then_race  # type: ignore[assignment]
    d = await decide(aredis_client, make_intent("race"))
    with pytest.raises(GuardFailed):
        await ex.handle([d], now_ms=now_ms())
    assert await results(aredis_client) == []  # nothing written for the raced intent
    ex._read = real_run
    await ex.handle([d], now_ms=now_ms())  # the retry sees the position
    assert [(r.status, r.reason) for r in await results(aredis_client)] == [("REJECTED", "position_exists")]


async def test_monitor_close_planned_on_a_record_reduced_meanwhile_is_refused(aredis_client: aredis.Redis) -> None:
    from dataclasses import replace

    from quantum_trader.executor.core import close_position
    from quantum_trader.executor.scripts import GUARD_FAILED

    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    await ex.handle([await decide(aredis_client, make_intent("big", size=50.0))], now_ms=now_ms())  # qty 1.0
    seen_raw = (await aredis_client.hget(KEYS.positions, "T000USDT") or b"").decode()
    seen = Position.from_json(seen_raw)
    # the handler reduces the position between the monitor's read and its write
    await ex.handle([await decide(aredis_client, make_intent("cut", side="SELL", reduce_only=True, size=25.0))],
                    now_ms=now_ms())
    stale = close_position(seen, qty=seen.qty, exit_price=99.0, exit_fee=0.0, reason="stop_loss", cooldown_ms=0,
                           now_ms=now_ms())
    assert await ex.applier.apply_many([replace(stale, expected=seen_raw)], now_ms=now_ms()) == [GUARD_FAILED]
    left = Position.from_json(await aredis_client.hget(KEYS.positions, "T000USDT") or b"")
    assert left.qty == pytest.approx(0.5) and left.order_id == seen.order_id  # untouched by the stale close


async def test_pending_intent_whose_decision_was_lost_is_answered_after_two_idle_sweeps(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client)
    await aredis_client.xgroup_create(KEYS.gate_decision, "executor", id="$", mkstream=True)
    old = make_intent("lost", ts=now_ms() - 900_000)  # decided 15 min ago, decision never arrived
    fresh = make_intent("fresh", "T001USDT", ts=now_ms())
    for i in (old, fresh):
        await aredis_client.hset(KEYS.pending_intents, i.intent_id, intent_json(i))
    await aredis_client.hset(KEYS.pending_summary, mapping={"T000USDT:BUY": "1", "T001USDT:BUY": "1",
                                                            "_notional": "40.0"})
    assert await ex.sweep_lost(now_ms=now_ms()) == 0  # first sight: only a candidate
    assert await ex.sweep_lost(now_ms=now_ms()) == 1
    assert [(r.intent_id, r.status, r.reason) for r in await results(aredis_client)] == [
        ("lost", "REJECTED", "decision_lost")]
    assert await aredis_client.hkeys(KEYS.pending_intents) == [b"fresh"]
    summary = await aredis_client.hgetall(KEYS.pending_summary)
    assert b"T000USDT:BUY" not in summary and float(summary[b"_notional"]) == pytest.approx(20.0)


async def test_lost_decision_sweep_waits_while_decisions_are_unread(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client)
    await aredis_client.xgroup_create(KEYS.gate_decision, "executor", id="$", mkstream=True)
    old = make_intent("slow", ts=now_ms() - 900_000)
    await aredis_client.hset(KEYS.pending_intents, old.intent_id, intent_json(old))
    d = await decide(aredis_client, old)
    await aredis_client.xadd(KEYS.gate_decision, d.to_fields())  # its decision is still unread
    assert await ex.sweep_lost(now_ms=now_ms()) == 0
    assert await ex.sweep_lost(now_ms=now_ms()) == 0
    assert await aredis_client.hlen(KEYS.pending_intents) == 1


async def test_paper_monitor_corrects_a_wrong_open_orders_count(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    await ex.handle([await decide(aredis_client, make_intent("one"))], now_ms=now_ms())
    await aredis_client.set(KEYS.open_orders, "7")  # e.g. edited by hand
    await ex.monitor_once(now_ms=now_ms())
    assert await aredis_client.get(KEYS.open_orders) == b"1"


async def test_a_snapshot_with_bid_and_ask_fills_the_paper_buy_at_the_ask_and_the_exit_crosses_the_spread(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client, executor={"maxSlippageBps": 0})
    await aredis_client.hset(KEYS.position_snapshot("T000USDT"),
                             mapping={**snapshot_mapping(100.0, now_ms()), "bid": "99.8", "ask": "100.2"})
    await ex.handle([await decide(aredis_client, make_intent("q-1", sl=90.0))], now_ms=now_ms())
    (res,) = await results(aredis_client)
    assert (res.status, res.price) == ("FILLED", 100.2)  # the ask, not the mark
    await aredis_client.hset(KEYS.position_snapshot("T000USDT"), mapping=snapshot_mapping(89.0, now_ms()))
    assert await ex.monitor_once(now_ms=now_ms()) == 1
    closed = [e for e in await events(aredis_client) if e.event == "CLOSED"]
    spread = profile().spec.universe.spread_bps  # no quote on the monitor's mark: the profile's spread
    assert closed[0].close_reason == "stop_loss" and closed[0].exit_price == pytest.approx(89.0 * (1 - spread / 2e4))
