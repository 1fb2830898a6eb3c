"""Operations, pure parts: resume rules, flatten plans that close whole, trades joined with their closes."""

from __future__ import annotations

import csv
import io
import json

from quantum_trader.core.messages import ExecutionResult, PositionEvent
from quantum_trader.executor.core import Filters, SizeLimits, plan_execution
from quantum_trader.executor.state import Position
from quantum_trader.ops import core

NOW = 1_700_000_000_000


def pos(symbol: str = "BTCUSDT", side: str = "BUY", qty: float = 0.013, entry: float = 60_000.0) -> Position:
    return Position(symbol, side, qty, entry, 0.0, 0.0, NOW - 60_000, "PAPER-1", leverage=2.0)  # type: ignore[arg-type]


def test_resume_lifts_a_pause_set_by_qt_only() -> None:
    mine = core.pause_flag(actor="ann@box", reason="maintenance", now_ms=NOW)
    assert json.loads(mine)["by"] == "qt"
    assert core.plan_resume(spec_paused=False, flag=mine)[:2] == (True, "none")
    assert core.plan_resume(spec_paused=False, flag=None)[:2] == (False, "not_paused")
    assert core.plan_resume(spec_paused=True, flag=mine)[:2] == (False, "paused_by_spec")
    operator = json.dumps({"by": "quantum-operator", "reason": "spec.paused", "ts": NOW})
    ok, reason, message = core.plan_resume(spec_paused=False, flag=operator)
    assert (ok, reason) == (False, "paused_by_operator") and "quantum-operator" in message
    assert core.plan_resume(spec_paused=False, flag="1")[:2] == (True, "none")  # a hand-set flag: anyone may lift


def test_flatten_plans_one_opposite_reduce_only_intent_per_position_that_the_executor_closes_whole() -> None:
    positions = {"BTCUSDT": pos(), "ETHUSDT": pos("ETHUSDT", "SELL", 0.5, 3000.0)}
    intents, refused = core.flatten_intents(positions, {"BTCUSDT": 61_000.0}, now_ms=NOW)
    assert refused == {}
    assert [(i.symbol, i.side, i.reduce_only) for i in intents] == [("BTCUSDT", "SELL", True), ("ETHUSDT", "BUY", True)]
    filters = Filters(tick_size=0.1, step_size=0.001, min_notional=5.0, min_qty=0.001, max_qty=1000.0)
    for intent in intents:
        mark = 61_000.0 if intent.symbol == "BTCUSDT" else 3000.0  # ETH has no mark: its entry price is used
        plan = plan_execution(intent, position=positions[intent.symbol], mark_price=mark, mark_ts_ms=NOW,
                              filters=filters, no_new_positions=True, max_price_age_ms=30_000, now_ms=NOW,
                              sizing=SizeLimits(max_position_usd=0.0, exposure_room_usd=0.0,
                                                maintenance_margin_rate=0.005))
        assert plan.kind == "reduce" and plan.close_all, (intent.symbol, plan)


def test_flatten_of_a_symbol_without_a_position_is_refused_with_its_reason() -> None:
    intents, refused = core.flatten_intents({"BTCUSDT": pos()}, {}, now_ms=NOW, symbol="SOLUSDT")
    assert intents == [] and refused == {"SOLUSDT": "no_position"}


def test_positions_show_unrealised_pnl_at_the_mark_and_none_without_one() -> None:
    rows = core.position_rows({"BTCUSDT": pos(), "ETHUSDT": pos("ETHUSDT", "SELL", 0.5, 3000.0)},
                              {"ETHUSDT": 2900.0}, ages_ms={"BTCUSDT": 60_000})
    by = {r.symbol: r for r in rows}
    assert by["ETHUSDT"].unrealized_pnl_usd == 50.0  # short 0.5 from 3000 to 2900
    assert by["BTCUSDT"].unrealized_pnl_usd is None and by["BTCUSDT"].mark_price is None
    assert by["BTCUSDT"].age_ms == 60_000


def fill(order: str, side: str, price: float, ts: int) -> ExecutionResult:
    return ExecutionResult(order_id=order, intent_id=f"i-{order}", decision_id="d", symbol="BTCUSDT", side=side,  # type: ignore[arg-type]
                           qty=0.01, price=price, notional_usd=price * 0.01, slippage_bps=1.5, fee_usd=0.24,
                           status="FILLED", reason="none", mode="paper", ts=ts)


def test_trades_are_position_events_with_their_fills_and_export_as_csv() -> None:
    fills = [fill("B", "SELL", 61_000.0, NOW), fill("A", "BUY", 60_000.0, NOW - 3_600_000),
             ExecutionResult(order_id="", intent_id="x", decision_id="d", symbol="BTCUSDT", side="BUY", qty=0,
                             price=0, notional_usd=0, slippage_bps=0, fee_usd=0, status="REJECTED",
                             reason="min_notional", mode="paper", ts=NOW)]
    opened = dict(symbol="BTCUSDT", side="BUY", qty=0.01, entry_price=60_000.0, order_id="A")
    events = [  # newest first: a stop loss by the monitor (no fill), a take profit by a reduce-only fill, the open
        PositionEvent(event="CLOSED", exit_price=59_000.0, pnl_usd=-10.5, close_reason="stop_loss",
                      ts=NOW + 60_000, **opened),  # type: ignore[arg-type]
        PositionEvent(event="CLOSED", exit_price=61_000.0, pnl_usd=9.52, close_reason="take_profit", ts=NOW,
                      **opened),  # type: ignore[arg-type]
        PositionEvent(event="OPENED", exit_price=0.0, pnl_usd=0.0, close_reason="none", ts=NOW - 3_600_000,
                      **opened),  # type: ignore[arg-type]
    ]
    rows = core.trades(events, fills, mode="paper")
    assert [(t.side, t.event, t.price, t.realized_pnl_usd, t.close_reason, t.order_id, t.fee_usd) for t in rows] == [
        ("SELL", "CLOSED", 59_000.0, -10.5, "stop_loss", "A", None),
        ("SELL", "CLOSED", 61_000.0, 9.52, "take_profit", "B", 0.24),
        ("BUY", "OPENED", 60_000.0, None, "", "A", 0.24)]
    table = list(csv.DictReader(io.StringIO(core.trades_csv(rows))))
    assert table[1]["time_utc"] == "2023-11-14T22:13:20.000Z" and table[1]["realized_pnl_usd"] == "9.52"
    assert table[0]["fee_usd"] == "" and table[2]["realized_pnl_usd"] == ""
    assert list(table[0])[:3] == ["time_utc", "ts", "symbol"]
