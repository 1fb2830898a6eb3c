"""`qt why` explanation (pure): the verdict follows the latest signal's chain of ids."""

from __future__ import annotations

import dataclasses

from quantum_trader.core.messages import (
    ExecutionResult,
    GateDecision,
    PositionEvent,
    RouterFate,
    Signal,
    TradeIntent,
)
from quantum_trader.core.profile import SnapshotSettings
from quantum_trader.inspect.why import WhyInputs, explain, render
from quantum_trader.snapshot import core as snap

from tests.inspect.test_check import NOW, universe

SYM = "GALAUSDT"


def sig(sid: str = "s1", ts: int = NOW - 60_000) -> Signal:
    return Signal(signal_id=sid, symbol=SYM, side="SELL", confidence=0.91, model="fallback-trend", model_version="0",
                  price=0.03, atr=0.001, regime="trend", rl_gate_pass=True, ts=ts)


def intent(sid: str = "s1") -> TradeIntent:
    return TradeIntent(intent_id=f"int-{sid}", signal_id=sid, symbol=SYM, side="SELL", position_size_usd=13.0,
                       leverage=2.0, entry_price=0.03, stop_loss=0.031, take_profit=0.027, confidence=0.91,
                       score=0.94, rank=1, size_boost=1.3, ts=NOW - 59_000)


def decision(reason: str = "kill_score_warning_risk_increase", sid: str = "s1") -> GateDecision:
    return GateDecision(decision_id=f"d-{sid}", intent_id=f"int-{sid}", symbol=SYM, side="SELL",
                        decision="BLOCKED" if reason != "none" else "EXECUTE", reason=reason, kill_score=0.64,
                        ts=NOW - 58_000)


def execution(status: str = "FILLED", sid: str = "s1") -> ExecutionResult:
    return ExecutionResult(order_id="PAPER-abc", intent_id=f"int-{sid}", decision_id=f"d-{sid}", symbol=SYM,
                           side="SELL", qty=400.0, price=0.03, notional_usd=12.0, slippage_bps=1.0, fee_usd=0.005,
                           status=status, reason="none" if status == "FILLED" else "min_notional", mode="paper",
                           ts=NOW - 57_000)


def inputs(**changes: object) -> WhyInputs:
    active = universe()
    base = WhyInputs(
        symbol=SYM, now_ms=NOW, funnel={"fate": "selected", "rank": 3, "score": 1.0}, funnel_present=True,
        active=active,
        allowlist=snap.resolve_allowlist(SnapshotSettings(), active=active, last_ok=None, now_ms=NOW),
        signals=(sig(),), intents=(intent(),), fates=(), decisions=(decision(),), executions=(),
        position_events=(), snapshot={"mark_price": "0.03", "position_amt": "0.0", "ts": str(NOW - 4000)},
        snapshot_ttl_ms=56_000, tradable=True, position=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_gate_block_is_the_verdict() -> None:
    report = explain(inputs())
    assert report.verdict == "GALAUSDT: not traded — gate blocked: kill_score_warning_risk_increase"
    assert not report.traded
    text = render(report)
    assert "rank 3 of 7" in text and "fallback-trend" in text and "int-s1" in text and "age 4s" in text


def test_router_drop_is_the_verdict_for_an_unrouted_signal() -> None:
    fate = RouterFate(signal_id="s2", symbol=SYM, side="SELL", confidence=0.8, reason="target_reached", ts=NOW - 1000)
    report = explain(inputs(signals=(sig("s2", NOW - 2000), sig()), fates=(fate,)))
    assert report.verdict == "GALAUSDT: not traded — router dropped the signal: target_reached"


def test_universe_drop_without_signal() -> None:
    report = explain(inputs(
        signals=(), intents=(), decisions=(), active=universe(["BTCUSDT"]),
        funnel={"fate": "dropped", "stage": "liquidity", "reason": "low_volume", "detail": "12k < 1M"},
    ))
    assert report.verdict == "GALAUSDT: not traded — universe dropped at liquidity: low_volume (12k < 1M)"


def test_unknown_symbol_without_anything() -> None:
    report = explain(inputs(signals=(), intents=(), decisions=(), active=universe(["BTCUSDT"]), funnel=None,
                            funnel_present=False, snapshot=None, tradable=None))
    assert report.verdict.startswith("GALAUSDT: not traded — not in the active universe")


def test_filled_and_closed_is_traded() -> None:
    closed = PositionEvent(event="CLOSED", symbol=SYM, side="SELL", qty=400.0, entry_price=0.03, exit_price=0.027,
                           pnl_usd=1.2, close_reason="take_profit", order_id="PAPER-abc", ts=NOW - 1000)
    report = explain(inputs(decisions=(decision("none"),), executions=(execution(),), position_events=(closed,)))
    assert report.traded
    assert report.verdict == "GALAUSDT: traded — filled (order PAPER-abc); last closed take_profit pnl +$1.20 1s ago"


def test_rejected_execution_is_the_verdict() -> None:
    report = explain(inputs(decisions=(decision("none"),), executions=(execution("REJECTED"),)))
    assert report.verdict == "GALAUSDT: not traded — execution rejected: min_notional"


def test_open_position_is_traded() -> None:
    report = explain(inputs(position={"symbol": SYM, "side": "SELL", "qty": 400.0, "entry_price": 0.03}))
    assert report.traded and report.verdict == "GALAUSDT: traded — position open SELL qty 400.0"
    assert report.to_json()["stages"]["position"]["open"] is True


def test_intent_waiting_for_gate() -> None:
    report = explain(inputs(decisions=()))
    assert report.verdict == "GALAUSDT: not traded yet — intent int-s1 has no gate decision"
