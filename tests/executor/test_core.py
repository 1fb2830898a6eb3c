"""Executor core: rounding, min notional, slippage bounds, fills, reduce/close PnL, SL/TP, paper venue."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor.core import (
    Filters,
    SizeLimits,
    apply_fill,
    close_pnl,
    close_position,
    exit_reason,
    floor_to_step,
    liquidation_price,
    paper_fill_price,
    paper_order_id,
    paper_slippage_bps,
    plan_execution,
    plan_exits,
    round_to_tick,
)
from quantum_trader.executor.paper import PaperVenue
from quantum_trader.executor.state import Position, RiskState
from quantum_trader.executor.venue import VenueFill, VenueOrder

NOW = 1_700_000_000_000
F = Filters(tick_size=0.1, step_size=0.001, min_notional=5.0, min_qty=0.001, max_qty=1000.0)
SETTINGS = ExecutorSettings()  # fee 4 bps, max slippage 10 bps
SIZING = SizeLimits(max_position_usd=100.0, exposure_room_usd=float("inf"), maintenance_margin_rate=0.005)


def intent(
    *,
    side: str = "BUY",
    size: float = 10.0,
    leverage: float = 2.0,
    reduce_only: bool = False,
    iid: str = "i-1",
    sl: float = 0.0,
    tp: float = 0.0,
) -> TradeIntent:
    return TradeIntent.model_validate(
        dict(
            intent_id=iid, signal_id="s", symbol="BTCUSDT", side=side, position_size_usd=size,
            leverage=leverage, entry_price=100.0, stop_loss=sl, take_profit=tp, confidence=0.8, score=0.8,
            rank=1, size_boost=1.0, reduce_only=reduce_only, ts=NOW,
        )
    )


def plan(i: TradeIntent, *, position: Position | None = None, mark: float = 100.0, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        position=position, mark_price=mark, mark_ts_ms=NOW - 1000, filters=F, no_new_positions=False,
        max_price_age_ms=30_000.0, now_ms=NOW, sizing=SIZING,
    )
    args.update(kw)
    return plan_execution(i, **args)  # type: ignore[arg-type]


def long(qty: float = 0.2, entry: float = 100.0, fee: float = 0.008) -> Position:
    return Position("BTCUSDT", "BUY", qty, entry, 95.0, 110.0, NOW - 5000, "PAPER-AAAAAAAAAAAA", "i-0", fee, 2.0)


def test_floor_to_step_rounds_down_and_tolerates_float_noise() -> None:
    assert floor_to_step(0.2999999, 0.001) == 0.299
    assert floor_to_step(0.3, 0.1) == 0.3  # 0.3/0.1 = 2.9999999999999996
    assert floor_to_step(7.0, 5.0) == 5.0
    assert round_to_tick(100.04, 0.1, direction="down") == 100.0
    assert round_to_tick(100.01, 0.1, direction="up") == 100.1


def test_qty_is_size_times_leverage_over_price_rounded_down_to_step() -> None:
    p = plan(intent(size=10.0, leverage=2.0), mark=3.0)  # 20 / 3 = 6.6666 → 6.666
    assert p.kind == "open" and p.order is not None
    assert p.order.qty == 6.666 and p.order.client_order_id == "i-1" and p.order.reference_price == 3.0


def test_a_size_below_the_exchange_minimum_is_raised_to_it_within_the_limits() -> None:
    p = plan(intent(size=2.0, leverage=2.0))  # 4 USD < 5 USD min notional → 0.05 at 100
    assert p.kind == "open" and p.order is not None and p.order.qty == 0.05
    big_step = Filters(0.1, 1.0, 0.0, 1.0, 1000.0)
    p = plan(intent(size=10.0, leverage=2.0), filters=big_step, mark=30.0)  # 0.66 → 0 → one step of 1.0
    assert p.order is not None and p.order.qty == 1.0
    # the BTC case: $10 × 2 at 90,000 with a 0.001 step is 0.0002 → 0; the minimum 0.001 (90 USD) is allowed at 100
    btc = Filters(0.1, 0.001, 20.0, 0.001, 1000.0)
    p = plan(intent(size=10.0, leverage=2.0), filters=btc, mark=90_000.0)
    assert p.order is not None and p.order.qty == 0.001


def test_a_raise_beyond_the_position_cap_or_the_exposure_room_is_refused_with_the_numbers() -> None:
    btc = Filters(0.1, 0.001, 100.0, 0.001, 1000.0)  # Binance: 100 USD minimum, 0.001 step at 95,000 → 0.002
    p = plan(intent(size=10.0, leverage=2.0), filters=btc, mark=95_000.0)
    assert p.kind == "reject" and p.reason == "below_min_notional:need_usd=190.00,max_usd=100.00"
    room = SizeLimits(max_position_usd=1000.0, exposure_room_usd=50.0, maintenance_margin_rate=0.005)
    assert plan(intent(size=2.0, leverage=2.0), sizing=room, mark=100.0).order is not None  # 5 USD fits 50
    tight = SizeLimits(max_position_usd=1000.0, exposure_room_usd=4.0, maintenance_margin_rate=0.005)
    assert plan(intent(size=2.0, leverage=2.0), sizing=tight).reason == "below_min_notional:need_usd=5.00,max_usd=4.00"
    assert plan(intent(size=10.0, leverage=2.0), sizing=tight).order is not None  # no raise needed: the gate's job


@pytest.mark.parametrize(
    ("side", "stop", "leverage", "refused"),
    [
        ("BUY", 95.0, 2.0, False),  # liquidation near 50.5
        ("BUY", 95.0, 20.0, True),  # liquidation 95.5: the stop would never be reached
        ("BUY", 96.0, 20.0, False),
        ("SELL", 105.0, 20.0, True),  # liquidation 104.5
        ("SELL", 104.0, 20.0, False),
        ("BUY", 0.0, 100.0, False),  # no stop: nothing to compare
    ],
)
def test_a_stop_beyond_the_liquidation_price_is_refused_at_entry(
    side: str, stop: float, leverage: float, refused: bool
) -> None:
    p = plan(intent(side=side, sl=stop, leverage=leverage, size=1.0))
    assert (p.kind == "reject") == refused
    if refused:
        assert p.reason.startswith("liquidation_before_stop:liq=") and f"stop={stop:g}" in p.reason


def test_liquidation_price_is_isolated_margin_down_to_the_maintenance_margin() -> None:
    assert liquidation_price(side="BUY", price=100.0, leverage=10.0, maintenance_margin_rate=0.005) == pytest.approx(90.5)
    assert liquidation_price(side="SELL", price=100.0, leverage=10.0, maintenance_margin_rate=0.005) == pytest.approx(109.5)
    assert liquidation_price(side="BUY", price=100.0, leverage=1.0, maintenance_margin_rate=0.005) == pytest.approx(0.5)


def test_rejections_have_reasons_in_check_order() -> None:
    i = intent()
    assert plan(i, no_new_positions=True).reason == "no_new_positions"
    assert plan(i, filters=None).reason == "unknown_symbol"
    assert plan(i, mark=None).reason == "no_price"
    assert plan(i, mark_ts_ms=NOW - 30_001).reason == "stale_price"
    assert plan(i, position=long()).reason == "position_exists"
    tiny_and_stopped_late = intent(size=0.01, leverage=50.0, sl=97.0)  # below the minimum and liquidated at 98.5
    assert plan(tiny_and_stopped_late).reason.startswith("liquidation_before_stop:")
    assert plan(tiny_and_stopped_late, position=long()).reason == "position_exists"
    tight = SizeLimits(max_position_usd=1.0, exposure_room_usd=1.0, maintenance_margin_rate=0.005)
    assert plan(intent(size=0.01, leverage=2.0), sizing=tight).reason.startswith("below_min_notional:")
    assert plan(intent(size=1e6, leverage=1.0), mark=1.0).reason == "max_qty"
    assert plan(intent(side="SELL", reduce_only=True)).reason == "no_position"
    assert plan(intent(side="BUY", reduce_only=True), position=long()).reason == "reduce_only_side_mismatch"


def test_reduce_only_ignores_no_new_positions_flag() -> None:
    p = plan(intent(side="SELL", reduce_only=True), position=long(), no_new_positions=True)
    assert p.kind == "reduce"


def test_reduce_only_partial_and_full_close() -> None:
    p = plan(intent(side="SELL", reduce_only=True, size=5.0), position=long(qty=0.2))  # 0.1 of 0.2
    assert p.order is not None and p.order.qty == 0.1 and not p.close_all
    p = plan(intent(side="SELL", reduce_only=True, size=100.0), position=long(qty=0.2))
    assert p.order is not None and p.order.qty == 0.2 and p.close_all
    p = plan(intent(side="SELL", reduce_only=True, size=8.0), position=long(qty=0.2))  # rest 0.04 → 4 USD < 5
    assert p.order is not None and p.order.qty == 0.2 and p.close_all


@pytest.mark.parametrize("iid", [f"intent-{n}" for n in range(200)])
def test_paper_slippage_is_adverse_bounded_and_deterministic(iid: str) -> None:
    s = paper_slippage_bps(iid, 10.0)
    assert 0.0 <= s <= 10.0 and s == paper_slippage_bps(iid, 10.0)
    for side in ("BUY", "SELL"):
        price, slip = paper_fill_price(side=side, reference=123.456, slippage_bps=s, tick=0.01, max_slippage_bps=10.0)  # type: ignore[arg-type]
        assert abs(slip) <= 10.0 + 1e-9
        assert (price - 123.456) * (1 if side == "BUY" else -1) >= -0.01  # adverse up to tick rounding
        assert abs(price / 123.456 - 1) * 1e4 <= 10.0 + 1e-9


def test_paper_fill_keeps_bound_when_tick_is_coarse() -> None:
    price, slip = paper_fill_price(side="BUY", reference=100.04, slippage_bps=0.5, tick=1.0, max_slippage_bps=1.0)
    assert abs(slip) <= 1.0 and abs(price / 100.04 - 1) * 1e4 <= 1.0 + 1e-9


def test_paper_order_id_format_and_determinism() -> None:
    oid = paper_order_id("abc")
    assert re.fullmatch(r"PAPER-[0-9A-F]{12}", oid) and oid == paper_order_id("abc") != paper_order_id("abd")


async def test_paper_venue_fills_at_mark_with_fee_and_is_idempotent() -> None:
    venue = PaperVenue(settings=SETTINGS, filters={"BTCUSDT": F}, spread_bps=0.0)
    p = plan(intent())
    assert p.order is not None
    a, b = await venue.submit(p.order), await venue.submit(p.order)
    assert a == b and a.status == "FILLED" and a.qty == 0.2
    assert 100.0 <= a.price <= 100.0 * 1.001
    assert a.fee_usd == pytest.approx(a.qty * a.price * 4 / 10_000)
    assert await venue.positions() is None


@pytest.mark.parametrize("iid", ["a", "b", "c", "d"])
def test_paper_venue_crosses_half_the_spread_on_each_side_before_its_slippage(iid: str) -> None:
    venue = PaperVenue(settings=SETTINGS, filters={"BTCUSDT": F}, spread_bps=20.0)  # half = 10 bps = 0.1
    buy = venue.fill(VenueOrder(iid, iid, "BTCUSDT", "BUY", 0.2, 100.0))
    sell = venue.fill(VenueOrder(iid, iid, "BTCUSDT", "SELL", 0.2, 100.0))
    assert 100.1 <= buy.price <= 100.1 * 1.001 + 1e-9 and 99.9 * 0.999 - 1e-9 <= sell.price <= 99.9
    assert buy.fee_usd == pytest.approx(0.2 * buy.price * 4 / 10_000)


def test_paper_venue_crosses_to_the_snapshot_quote_when_it_has_one() -> None:
    venue = PaperVenue(settings=ExecutorSettings(maxSlippageBps=0), filters={"BTCUSDT": F}, spread_bps=20.0)
    order = VenueOrder("q", "q", "BTCUSDT", "BUY", 0.2, 100.0, bid=99.7, ask=100.3)
    assert venue.fill(order).price == 100.3
    assert venue.fill(replace(order, side="SELL")).price == 99.7
    assert venue.fill(replace(order, bid=0.0, ask=0.0)).price == 100.1  # unknown quote: the profile's spread


def test_open_fill_builds_position_result_and_opened_event() -> None:
    i = intent(sl=95.0, tp=110.0)
    p = plan(i)
    fill = VenueFill("FILLED", "PAPER-000000000001", 0.2, 100.05, 0.008)
    t = apply_fill(i, plan=p, fill=fill, position=None, decision_id="GD-1", mode="paper", cooldown_ms=300_000,
                   time_exit_ms=3_600_000, now_ms=NOW)
    assert t.op == "set" and t.expected == "" and t.new_position is not None
    assert (t.new_position.qty, t.new_position.entry_price, t.new_position.stop_loss) == (0.2, 100.05, 95.0)
    assert t.result is not None and t.result.status == "FILLED" and t.result.slippage_bps == pytest.approx(5.0)
    assert t.event is not None and t.event.event == "OPENED" and t.ledger_value == "PAPER-000000000001"
    assert t.realized_pnl is None and t.cooldown_until_ms is None


def test_venue_rejection_becomes_rejected_result_counted_as_error() -> None:
    i = intent()
    fill = VenueFill("REJECTED", "X", 0.0, 0.0, 0.0, reason="insufficient_margin")
    t = apply_fill(i, plan=plan(i), fill=fill, position=None, decision_id="GD", mode="testnet", cooldown_ms=0, time_exit_ms=0,
                   now_ms=NOW)
    assert t.result is not None and (t.result.status, t.result.reason) == ("REJECTED", "insufficient_margin")
    assert t.venue_error is True and t.op == "none"


@pytest.mark.parametrize(
    ("side", "entry", "exit_", "qty", "fees", "want"),
    [
        ("BUY", 100.0, 110.0, 0.5, 0.0, 5.0),
        ("BUY", 100.0, 95.0, 0.5, 0.0, -2.5),
        ("SELL", 100.0, 90.0, 0.5, 0.0, 5.0),
        ("SELL", 100.0, 105.0, 2.0, 0.0, -10.0),
        ("BUY", 100.0, 110.0, 1.0, 0.1, 10.0 - 0.04 - 0.1),  # entry fee 0.04 + exit fee 0.1
    ],
)
def test_close_pnl_is_price_move_times_qty_times_direction_minus_fees(
    side: str, entry: float, exit_: float, qty: float, fees: float, want: float
) -> None:
    p = Position("X", side, qty, entry, 0.0, 0.0, NOW, "o", entry_fee_usd=0.04 if fees else 0.0)  # type: ignore[arg-type]
    assert close_pnl(p, qty=qty, exit_price=exit_, exit_fee=fees) == pytest.approx(want)


def test_partial_reduce_keeps_rest_with_pro_rata_entry_fee() -> None:
    p = long(qty=0.2, fee=0.008)
    t = close_position(p, qty=0.05, exit_price=104.0, exit_fee=0.002, reason="signal", cooldown_ms=1000, now_ms=NOW,
                       close_all=False)
    assert t.op == "set" and t.new_position is not None and t.new_position.qty == pytest.approx(0.15)
    assert t.new_position.entry_fee_usd == pytest.approx(0.006)
    assert t.realized_pnl == pytest.approx(4.0 * 0.05 - 0.002 - 0.002)
    assert t.event is not None and t.event.event == "CLOSED" and t.cooldown_until_ms == NOW + 1000


@pytest.mark.parametrize(
    ("side", "sl", "tp", "mark", "want"),
    [
        ("BUY", 95.0, 110.0, 100.0, None),
        ("BUY", 95.0, 110.0, 95.0, "stop_loss"),
        ("BUY", 95.0, 110.0, 111.0, "take_profit"),
        ("SELL", 105.0, 90.0, 105.5, "stop_loss"),
        ("SELL", 105.0, 90.0, 89.0, "take_profit"),
        ("SELL", 105.0, 90.0, 100.0, None),
        ("BUY", 0.0, 0.0, 1.0, None),  # unset levels never trigger
    ],
)
def test_exit_reason_from_mark_price(side: str, sl: float, tp: float, mark: float, want: str | None) -> None:
    p = Position("X", side, 1.0, 100.0, sl, tp, NOW, "o")  # type: ignore[arg-type]
    assert exit_reason(p, mark, now_ms=NOW) == want


def test_time_exit_closes_at_the_horizon_after_levels_and_never_without_a_deadline() -> None:
    p = Position("X", "BUY", 1.0, 100.0, 95.0, 110.0, NOW, "o", expires_ts=NOW + 3_600_000)  # type: ignore[arg-type]
    assert exit_reason(p, 100.0, now_ms=NOW + 3_599_999) is None
    assert exit_reason(p, 100.0, now_ms=NOW + 3_600_000) == "time"
    assert exit_reason(p, 94.0, now_ms=NOW + 3_600_000) == "stop_loss"  # a crossed level wins at the same mark
    assert exit_reason(replace(p, expires_ts=0), 100.0, now_ms=NOW + 10**9) is None  # adopted/old: no deadline
    exits = plan_exits({"X": p}, {"X": 100.0}, now_ms=NOW + 3_600_000)
    assert [(e.reason, e.order.side, e.order.qty, e.order.reduce_only) for e in exits] == [("time", "SELL", 1.0, True)]
    assert plan_exits({"X": p}, {}, now_ms=NOW + 3_600_000) == []  # no mark: no decision


def test_a_position_closed_on_a_reversing_signal_exits_first_with_reason_signal() -> None:
    x = Position("X", "BUY", 1.0, 100.0, 95.0, 110.0, NOW, "o")  # type: ignore[arg-type]
    y = Position("Y", "SELL", 2.0, 50.0, 55.0, 40.0, NOW, "o")  # type: ignore[arg-type]
    exits = plan_exits({"X": x, "Y": y}, {"X": 94.0, "Y": 56.0}, now_ms=NOW, signalled={"Y"})
    assert [(e.position.symbol, e.reason, e.order.side) for e in exits] == [("Y", "signal", "BUY"),
                                                                           ("X", "stop_loss", "SELL")]
    assert plan_exits({"X": x}, {}, now_ms=NOW, signalled={"X", "Z"}) == []  # no mark or no position: no decision


def test_an_opened_position_carries_its_time_exit_at_the_label_horizon() -> None:
    i = intent(sl=95.0, tp=110.0)
    fill = VenueFill("FILLED", "PAPER-000000000001", 0.2, 100.05, 0.008)
    t = apply_fill(i, plan=plan(i), fill=fill, position=None, decision_id="GD", mode="paper", cooldown_ms=0,
                   time_exit_ms=3_600_000, now_ms=NOW)
    assert t.new_position is not None and t.new_position.expires_ts == NOW + 3_600_000
    assert Position.from_json(t.new_position.to_json()) == t.new_position


def test_position_json_round_trip_and_risk_state_parsing() -> None:
    p = long()
    assert Position.from_json(p.to_json()) == p
    with pytest.raises(ValueError):
        Position.from_json("{}")
    r = RiskState.from_hash({"day": "2026-11-21", "realized_pnl_today": "-3.5", "loss_streak": "2"})
    assert r.pnl_today("2026-11-21") == -3.5 and r.pnl_today("2026-11-22") == 0.0 and r.loss_streak == 2
    with pytest.raises(ValueError):
        RiskState.from_hash({"loss_streak": "x"})


def test_fast_field_encoding_equals_the_message_encoding() -> None:
    from quantum_trader.core.messages import ExecutionResult, PositionEvent
    from quantum_trader.executor.scripts import fast_fields

    i = intent(sl=95.0, tp=110.0)
    fill = VenueFill("FILLED", "PAPER-000000000001", 0.2, 100.05, 0.008)
    t = apply_fill(i, plan=plan(i), fill=fill, position=None, decision_id="GD", mode="paper", cooldown_ms=0, time_exit_ms=0,
                   now_ms=NOW)
    assert t.result is not None and t.event is not None
    assert fast_fields(t.result) == t.result.to_fields()
    assert fast_fields(t.event) == t.event.to_fields()
    assert ExecutionResult.from_fields(fast_fields(t.result)) == t.result
    assert PositionEvent.from_fields(fast_fields(t.event)) == t.event
