"""The executor's batch planner (pure): unknown intents, policy rejects, fills seen by later decisions."""

from __future__ import annotations

from quantum_trader.core.messages import GateDecision, TradeIntent
from quantum_trader.core.profile import AiSettings, ExecutorSettings, GateSettings
from quantum_trader.executor.batch import BatchPlanner, limits_from, size_limits
from quantum_trader.executor.core import Filters
from quantum_trader.executor.paper import PaperVenue
from quantum_trader.ledger.intents import intent_json
from quantum_trader.ledger.ledgers import decision_id_for
from quantum_trader.ledger.snapshots import SnapshotInfo

NOW = 1_700_000_000_000
F = {"BTCUSDT": Filters(tick_size=0.1, step_size=0.001, min_notional=5.0, min_qty=0.001, max_qty=1000.0)}
VENUE = PaperVenue(settings=ExecutorSettings(), filters=F, spread_bps=0.0)
LIMITS = limits_from(GateSettings(), AiSettings())


def intent(iid: str, *, side: str = "BUY", reduce_only: bool = False) -> TradeIntent:
    return TradeIntent.model_validate(dict(
        intent_id=iid, signal_id=f"s-{iid}", symbol="BTCUSDT", side=side, position_size_usd=50.0, leverage=2.0,
        entry_price=100.0, stop_loss=0.0, take_profit=0.0, confidence=0.8, score=0.8, rank=1, size_boost=1.0,
        reduce_only=reduce_only, ts=NOW,
    ))


def decision(i: TradeIntent) -> GateDecision:
    return GateDecision(decision_id=decision_id_for(i.intent_id), intent_id=i.intent_id, symbol=i.symbol, side=i.side,
                        decision="EXECUTE", reason="none", kill_score=0.0, ts=NOW)


def planner(**kw: object) -> BatchPlanner:
    args: dict[str, object] = dict(stored={}, positions={}, snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW)},
                                   filters=F, no_new_positions=False, limits=LIMITS, mode="paper", now_ms=NOW,
                                   sizing=size_limits(ExecutorSettings(), LIMITS, open_notional_usd=0.0))
    args.update(kw)
    return BatchPlanner(**args)  # type: ignore[arg-type]


def test_a_fill_is_seen_by_the_next_decision_of_the_same_batch() -> None:
    p = planner()
    opening, again = intent("a"), intent("b")
    first = p.plan(decision(opening), intent_json(opening))
    assert first.order is not None
    t1 = p.settle(first, VENUE.fill(first.order))
    assert t1.op == "set" and t1.expected == "" and t1.in_flight_field == "BTCUSDT:BUY"
    second = p.plan(decision(again), intent_json(again))
    assert second.order is None and second.decided is not None
    t2 = p.settle(second)
    assert t2.result is not None and t2.result.reason == "position_exists"
    close = intent("c", side="SELL", reduce_only=True)
    step = p.plan(decision(close), intent_json(close))
    assert step.order is not None
    t3 = p.settle(step, VENUE.fill(step.order))
    assert t3.op == "del" and t3.expected == t1.new_position.to_json()  # type: ignore[union-attr]
    assert t3.in_flight_field == ""  # reduce-only intents hold no in-flight slot


def test_a_missing_or_mismatched_pending_intent_is_answered_intent_unknown() -> None:
    p = planner()
    i = intent("x")
    for raw in (None, "{not json", intent_json(intent("x", side="SELL"))):
        step = p.plan(decision(i), raw)
        t = p.settle(step)
        assert step.order is None and t.result is not None and t.result.reason == "intent_unknown"
        assert t.in_flight_field == ""


def test_a_venue_error_is_an_execution_error_with_its_reason() -> None:
    p = planner()
    i = intent("v")
    step = p.plan(decision(i), intent_json(i))
    t = p.settle(step, "unavailable")
    assert t.result is not None and (t.result.status, t.result.reason, t.venue_error) == ("REJECTED", "unavailable", True)


def test_each_intent_runs_once_per_batch_and_never_after_it_executed() -> None:
    p = planner()
    d = decision(intent("once"))
    assert p.wanted(d, executed=None) and not p.wanted(d, executed=None)
    assert not planner().wanted(d, executed="PAPER-1")


def test_an_earlier_fill_of_the_batch_uses_up_the_exposure_room_a_later_raise_needs() -> None:
    small = {"BTCUSDT": F["BTCUSDT"], "ETHUSDT": Filters(0.01, 1.0, 5.0, 1.0, 1000.0)}  # ETH: 1 unit = 100 USD
    p = planner(filters=small, snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW), "ETHUSDT": SnapshotInfo(100.0, NOW)},
                sizing=size_limits(ExecutorSettings(maxPositionUsd=150), LIMITS, open_notional_usd=850.0))
    first = intent("a")  # 100 USD on BTC: the gate's job, fits 150 room
    second = TradeIntent.model_validate({**intent("b").model_dump(), "symbol": "ETHUSDT", "position_size_usd": 10.0})
    p.settle(step := p.plan(decision(first), intent_json(first)), VENUE.fill(step.order))  # type: ignore[arg-type]
    refused = p.plan(decision(second), intent_json(second))
    assert refused.plan is not None and refused.plan.reason == "below_min_notional:need_usd=100.00,max_usd=50.00"
