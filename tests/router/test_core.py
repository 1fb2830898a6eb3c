"""Router decision core: seed 001 scenarios A-D and every drop reason, without Redis."""

from __future__ import annotations

import dataclasses

import pytest
from quantum_trader.core.messages import Signal
from quantum_trader.core.profile import RouterSettings, SizeBoostSettings
from quantum_trader.router import core
from quantum_trader.router.core import BatchInput, Candidate, decide_batch

NOW = 1_700_000_000_000
# seed 001's scenario thresholds, set explicitly (the shipped defaults are 0.55 / 0.70: see test_defaults_*)
SETTINGS = RouterSettings(min_confidence=0.75, super_confidence=0.90)
ALL = frozenset({"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "LTCUSDT", "XRPUSDT"})


def sig(
    symbol: str,
    conf: float,
    *,
    side: str = "BUY",
    sid: str | None = None,
    age_ms: int = 0,
    rl: bool = False,
    regime: str = "unknown",
    atr: float = 2.0,
    price: float = 100.0,
    sizes: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Signal:
    return Signal.model_validate(
        dict(
            win_atr=sizes[0],
            loss_atr=sizes[1],
            hold_s=sizes[2],
            signal_id=sid or f"s-{symbol}-{conf}",
            symbol=symbol,
            side=side,
            confidence=conf,
            model="lgbm-1",
            model_version="1",
            price=price,
            atr=atr,
            regime=regime,
            rl_gate_pass=rl,
            ts=NOW - age_ms,
        )
    )


def batch(
    *signals: Signal,
    open_raw: str | None = "0",
    paused: bool = False,
    tradable: frozenset[str] | None = ALL,
    routed: frozenset[str] = frozenset(),
) -> BatchInput:
    return BatchInput(
        candidates=tuple(Candidate(entry_id=f"{i}-0", signal=s, received_ms=NOW) for i, s in enumerate(signals)),
        open_orders_raw=open_raw,
        paused=paused,
        tradable=tradable,
        already_routed=routed,
        now_ms=NOW,
    )


def decide(inp: BatchInput, settings: RouterSettings = SETTINGS, base: float = 100.0) -> core.BatchResult:
    return decide_batch(inp, settings=settings, base_size_usd=base)


def events(res: core.BatchResult) -> list[str]:
    return [e.event for e in res.events]


def reasons(res: core.BatchResult) -> dict[str, str]:
    return {d.signal_id: d.reason for d in res.drops}


# -- admission ---------------------------------------------------------------------------------


def test_signal_below_min_confidence_is_dropped_low_confidence() -> None:
    s = sig("LTCUSDT", 0.68, side="SELL")
    assert core.screen(s, settings=SETTINGS) == core.LOW_CONFIDENCE
    ev = core.screen_event(s, core.LOW_CONFIDENCE, settings=SETTINGS)
    assert ev.event == "LOW_CONFIDENCE_DROP"
    assert ev.fields["symbol"] == "LTCUSDT" and ev.fields["conf"] == 0.68 and ev.fields["min"] == 0.75


def test_hold_signal_is_dropped_hold() -> None:
    assert core.screen(sig("BTCUSDT", 0.99, side="HOLD"), settings=SETTINGS) == core.HOLD


def test_signal_at_min_confidence_is_admitted() -> None:
    assert core.screen(sig("BTCUSDT", 0.75), settings=SETTINGS) is None


# -- seed 001 proof scenarios ------------------------------------------------------------------


def test_scenario_a_capacity_full_publishes_nothing() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95), sig("ETHUSDT", 0.93), open_raw="10"))
    assert res.intents == ()
    assert res.outcome == "capacity_full"
    assert res.events[0].event == "CAPACITY_FULL"
    assert dict(res.events[0].fields) == {"open": 10, "max": 10}
    assert set(reasons(res).values()) == {core.CAPACITY_FULL}
    assert len(res.drops) == 2


def test_scenario_b_target_reached_publishes_nothing_without_super_signal() -> None:
    res = decide(batch(sig("BTCUSDT", 0.85), sig("ETHUSDT", 0.80), open_raw="3"))
    assert res.intents == ()
    assert res.outcome == "target_reached"
    ev = next(e for e in res.events if e.event == "TARGET_REACHED")
    assert dict(ev.fields) == {"open": 3, "target": 3}
    assert set(reasons(res).values()) == {core.TARGET_REACHED}


def test_scenario_b_super_signal_bypasses_target() -> None:
    res = decide(batch(sig("BTCUSDT", 0.92), sig("ETHUSDT", 0.85), open_raw="3"))
    assert [i.symbol for i in res.intents] == ["BTCUSDT"]
    by_event = {e.event: dict(e.fields) for e in res.events}
    assert by_event["SUPER_SIGNAL_BYPASS"] == {"open": 3, "target": 3, "count": 1}
    assert by_event["BEST_OF_PUBLISH"]["count"] == 1 and by_event["BEST_OF_PUBLISH"]["allowed"] == 1
    assert reasons(res) == {"s-ETHUSDT-0.85": core.TARGET_REACHED}


def test_scenario_c_one_open_publishes_best_two_of_four() -> None:
    res = decide(
        batch(
            sig("SOLUSDT", 0.80),
            sig("BTCUSDT", 0.95, regime="trend"),
            sig("ETHUSDT", 0.93, regime="trend"),
            sig("BNBUSDT", 0.90),
            open_raw="1",
        )
    )
    assert [(i.symbol, i.rank) for i in res.intents] == [("BTCUSDT", 1), ("ETHUSDT", 2)]
    best = next(e for e in res.events if e.event == "BEST_OF_PUBLISH")
    assert dict(best.fields) == {
        "count": 2,
        "allowed": 2,
        "open": 1,
        "slots": 9,
        # [symbol, side, score, expected value in bps]: ATR 200 bps, win 3 ATR, loss 1.5 ATR, costs 20 bps
        "top": [["BTCUSDT", "BUY", "0.960", 535.0], ["ETHUSDT", "BUY", "0.940", 517.0],
                ["BNBUSDT", "BUY", "0.900", 490.0]],
    }
    assert sorted(reasons(res).values()) == [core.NOT_SELECTED, core.NOT_SELECTED]


def test_scenario_d_log_lines_carry_seed_fields() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95, rl=True), sig("ETHUSDT", 0.93, rl=True), open_raw="1"))
    assert events(res) == ["BEST_OF_PUBLISH", "RANK_1", "SIZE_BOOST", "RANK_2", "SIZE_BOOST"]
    r1 = dict(res.events[1].fields)
    assert (r1["symbol"], r1["side"], r1["conf"], r1["score"]) == ("BTCUSDT", "BUY", 0.95, "0.970")
    b1, b2 = dict(res.events[2].fields), dict(res.events[4].fields)
    assert b1 == {"rank": 1, "conf": 0.95, "factor": "1.30", "size_from": "100", "size_to": "130"}
    assert b2 == {"rank": 2, "conf": 0.93, "factor": "1.10", "size_from": "100", "size_to": "110"}


# -- capacity fail-closed ----------------------------------------------------------------------


def test_missing_open_orders_publishes_nothing_capacity_unknown() -> None:
    res = decide(batch(sig("BTCUSDT", 0.99), open_raw=None))
    assert res.intents == () and res.outcome == "capacity_unknown"
    assert res.events[0].event == "CAPACITY_UNKNOWN" and res.events[0].fields["state"] == "missing"
    assert reasons(res) == {"s-BTCUSDT-0.99": core.CAPACITY_UNKNOWN}


def test_unparseable_open_orders_publishes_nothing() -> None:
    for raw in ("", "abc", "-1", "2.5", " "):
        res = decide(batch(sig("BTCUSDT", 0.99), open_raw=raw))
        assert res.intents == () and res.outcome == "capacity_unknown", raw


def test_burst_limit_caps_intents_per_cycle() -> None:
    settings = RouterSettings(target_open_orders=10, max_open_orders=10, max_new_per_cycle=2)
    res = decide(batch(*(sig(s, 0.8) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"))), settings)
    assert len(res.intents) == 2


def test_slots_limit_below_desired() -> None:
    settings = RouterSettings(max_open_orders=4, target_open_orders=4, max_new_per_cycle=5)
    s = core.compute_slots(3, settings=settings)
    assert (s.super_only, s.slots, s.allowed) == (False, 1, 1)
    assert core.compute_slots(4, settings=settings).super_only
    s2 = core.compute_slots(1, settings=RouterSettings(max_open_orders=2, target_open_orders=2, max_new_per_cycle=5))
    assert (s2.slots, s2.desired, s2.allowed) == (1, 1, 1)


def test_paused_publishes_nothing() -> None:
    res = decide(batch(sig("BTCUSDT", 0.99), paused=True))
    assert res.intents == () and res.outcome == "paused"
    assert reasons(res) == {"s-BTCUSDT-0.99": core.PAUSED}


# -- filters -----------------------------------------------------------------------------------


def test_stale_candidate_is_dropped() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95, age_ms=3001), sig("ETHUSDT", 0.80, age_ms=2999)))
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]
    assert reasons(res) == {"s-BTCUSDT-0.95": core.STALE}


def test_already_routed_signal_is_not_published_again() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95, sid="a"), routed=frozenset({"a"})))
    assert res.intents == () and reasons(res) == {"a": core.DUPLICATE}


def test_second_signal_for_same_symbol_is_duplicate_and_best_kept() -> None:
    res = decide(batch(sig("BTCUSDT", 0.80, sid="a"), sig("BTCUSDT", 0.90, sid="b")))
    assert [i.signal_id for i in res.intents] == ["b"]
    assert reasons(res) == {"a": core.DUPLICATE}


def test_redelivered_signal_in_same_batch_yields_one_intent() -> None:
    s = sig("BTCUSDT", 0.9, sid="a")
    res = decide(batch(s, s))
    assert len(res.intents) == 1 and res.intents[0].intent_id == "int-a"


def test_symbol_with_open_position_is_dropped_and_frees_the_slot() -> None:
    inp = dataclasses.replace(batch(sig("BTCUSDT", 0.95), sig("ETHUSDT", 0.80)), open_symbols=frozenset({"BTCUSDT"}))
    res = decide(inp, RouterSettings(max_new_per_cycle=1))
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]
    assert reasons(res) == {"s-BTCUSDT-0.95": core.POSITION_OPEN}


def test_symbol_outside_tradable_set_is_dropped_not_tradable() -> None:
    res = decide(batch(sig("GALAUSDT", 0.95), sig("BTCUSDT", 0.80), tradable=frozenset({"BTCUSDT"})))
    assert [i.symbol for i in res.intents] == ["BTCUSDT"]
    assert reasons(res) == {"s-GALAUSDT-0.95": core.NOT_TRADABLE}


def test_missing_tradable_set_drops_everything_when_filter_enabled() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95), tradable=None))
    assert res.intents == () and reasons(res) == {"s-BTCUSDT-0.95": core.NOT_TRADABLE}


def test_tradable_filter_disabled_lets_any_symbol_through() -> None:
    res = decide(batch(sig("GALAUSDT", 0.95), tradable=None), RouterSettings(filter_tradable=False))
    assert [i.symbol for i in res.intents] == ["GALAUSDT"]


def test_zero_atr_signal_is_dropped() -> None:
    res = decide(batch(sig("BTCUSDT", 0.95, atr=0.0)))
    assert res.intents == () and reasons(res) == {"s-BTCUSDT-0.95": core.INVALID_ATR}


# -- scoring, sizing, intent fields ------------------------------------------------------------


def test_score_adds_rl_gate_and_known_regime_bonus() -> None:
    assert core.score(sig("X", 0.9)) == 0.9
    assert core.score(sig("X", 0.9, rl=True)) == 0.92
    assert core.score(sig("X", 0.9, regime="trend")) == 0.91
    assert core.score(sig("X", 0.9, rl=True, regime="trend")) == 0.93


def test_higher_expected_value_wins_over_higher_score() -> None:
    res = decide(batch(sig("BTCUSDT", 0.80), sig("ETHUSDT", 0.79, rl=True), open_raw="2"))
    assert [i.symbol for i in res.intents] == ["BTCUSDT"]
    assert reasons(res) == {"s-ETHUSDT-0.79": core.NOT_SELECTED}


def test_wider_atr_wins_at_equal_confidence_because_its_edge_is_larger() -> None:
    # same p: the same multiple of ATR is won or lost, so the wider ATR clears the fixed costs by more
    res = decide(batch(sig("BTCUSDT", 0.80, atr=1.0), sig("ETHUSDT", 0.80, atr=3.0), open_raw="2"))
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]


def test_higher_score_breaks_a_tie_in_expected_value() -> None:
    res = decide(batch(sig("BTCUSDT", 0.80), sig("ETHUSDT", 0.80, rl=True), open_raw="2"))
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]


def test_size_boost_thresholds() -> None:
    b = SizeBoostSettings()
    assert core.size_boost(1, 0.90, boost=b) == 1.30
    assert core.size_boost(1, 0.89, boost=b) == 1.0
    assert core.size_boost(2, 0.85, boost=b) == 1.10
    assert core.size_boost(2, 0.84, boost=b) == 1.0
    assert core.size_boost(3, 0.99, boost=b) == 1.0


def test_size_boost_is_configurable() -> None:
    settings = RouterSettings(size_boost=SizeBoostSettings(rank1_confidence=0.8, rank1_factor=2.0))
    res = decide(batch(sig("BTCUSDT", 0.8)), settings, base=10.0)
    assert res.intents[0].position_size_usd == 20.0 and res.intents[0].size_boost == 2.0


def test_no_boost_below_threshold_logs_no_size_boost() -> None:
    res = decide(batch(sig("BTCUSDT", 0.80)))
    assert "SIZE_BOOST" not in events(res)
    assert res.intents[0].position_size_usd == 100.0


def test_buy_intent_has_stops_from_atr() -> None:
    res = decide(batch(sig("BTCUSDT", 0.8, price=100.0, atr=2.0)))
    i = res.intents[0]
    assert (i.stop_loss, i.take_profit, i.leverage, i.entry_price) == (97.0, 106.0, 2.0, 100.0)
    assert i.intent_id == "int-s-BTCUSDT-0.8" and i.ts == NOW and not i.reduce_only


def test_sell_intent_has_mirrored_stops() -> None:
    res = decide(batch(sig("BTCUSDT", 0.8, side="SELL", price=100.0, atr=2.0)))
    i = res.intents[0]
    assert (i.side, i.stop_loss, i.take_profit) == ("SELL", 103.0, 94.0)


def test_empty_batch_reads_nothing_and_publishes_nothing() -> None:
    res = decide(batch())
    assert res.outcome == "empty" and res.events == () and res.drops == ()


def test_batch_due_by_size_or_window() -> None:
    assert not core.due(buffered=0, oldest_buffered_ms=None, now_ms=NOW, settings=SETTINGS)
    assert core.due(buffered=10, oldest_buffered_ms=NOW, now_ms=NOW, settings=SETTINGS)
    assert not core.due(buffered=3, oldest_buffered_ms=NOW - 2999, now_ms=NOW, settings=SETTINGS)
    assert core.due(buffered=3, oldest_buffered_ms=NOW - 3000, now_ms=NOW, settings=SETTINGS)


def test_every_drop_reason_is_a_known_code() -> None:
    res = decide(
        batch(
            sig("BTCUSDT", 0.95, age_ms=10_000),
            sig("GALAUSDT", 0.95),
            sig("ETHUSDT", 0.9),
            sig("SOLUSDT", 0.8),
            sig("BNBUSDT", 0.77),
            tradable=ALL,
            open_raw="2",
        )
    )
    assert all(d.reason in core.REASONS for d in res.drops)
    assert len(res.drops) + len(res.intents) == 5


# -- entry rule in expected value ----------------------------------------------------------------


def test_expected_edge_is_win_minus_loss_minus_round_trip_costs_in_bps() -> None:
    costs = core.EntryCosts(fee_bps=4.0, spread_bps=2.0, slippage_bps=5.0)
    edge = core.expected_edge(sig("BTCUSDT", 0.5, atr=0.1, price=100.0), settings=SETTINGS, costs=costs)
    assert (edge.win_bps, edge.loss_bps, edge.cost_bps) == (30.0, 15.0, 20.0)
    assert edge.ev_bps == 0.5 * 30.0 - 0.5 * 15.0 - 20.0


def test_entry_with_negative_expected_value_is_dropped_with_its_numbers() -> None:
    thin = sig("BTCUSDT", 0.80, atr=0.05)  # 5 bps ATR: 15 bps target cannot pay 20 bps of costs
    wide = sig("ETHUSDT", 0.80, atr=2.0)
    res = decide_batch(batch(thin, wide), settings=SETTINGS, base_size_usd=10.0)
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]
    (drop,) = res.drops
    assert drop.symbol == "BTCUSDT" and drop.reason.startswith("negative_edge:ev_bps=-")
    assert "p=0.800" in drop.reason and "cost_bps=20.0" in drop.reason
    assert any(e.event == "NEGATIVE_EDGE_DROP" for e in res.events)


def test_costs_passed_explicitly_decide_the_edge() -> None:
    s = sig("BTCUSDT", 0.80, atr=0.05)
    free = core.EntryCosts(fee_bps=0.0, spread_bps=0.0, slippage_bps=0.0)
    assert [i.symbol for i in decide_batch(batch(s), settings=SETTINGS, base_size_usd=10.0, costs=free).intents] == [
        "BTCUSDT"
    ]


def test_defaults_admit_a_calibrated_probability_a_model_reaches() -> None:
    defaults = RouterSettings()
    assert core.screen(sig("BTCUSDT", 0.60), settings=defaults) is None
    assert core.screen(sig("ETHUSDT", 0.54), settings=defaults) == core.LOW_CONFIDENCE
    res = decide(batch(sig("BTCUSDT", 0.60)), defaults)
    assert [i.symbol for i in res.intents] == ["BTCUSDT"]


def test_defaults_let_a_calibrated_070_bypass_the_target_but_not_a_capped_fallback() -> None:
    defaults = RouterSettings()
    res = decide(batch(sig("BTCUSDT", 0.70), sig("ETHUSDT", 0.60), open_raw="3"), defaults)
    assert [i.symbol for i in res.intents] == ["BTCUSDT"]
    assert reasons(res) == {"s-ETHUSDT-0.6": core.TARGET_REACHED}


# -- the model's own win/loss sizes and funding --------------------------------------------------


def test_edge_uses_the_model_s_measured_win_and_loss_sizes_when_the_signal_carries_them() -> None:
    costs = core.EntryCosts(fee_bps=4.0, spread_bps=2.0, slippage_bps=5.0)
    s = sig("BTCUSDT", 0.6, atr=0.5, price=100.0, sizes=(1.2, 1.0, 2700.0))  # ATR 50 bps
    edge = core.expected_edge(s, settings=SETTINGS, costs=costs)
    assert (edge.win_bps, edge.loss_bps, edge.sizes) == (60.0, 50.0, "model")
    assert edge.ev_bps == pytest.approx(0.6 * 60.0 - 0.4 * 50.0 - 20.0)
    at_exits = core.expected_edge(sig("BTCUSDT", 0.6, atr=0.5), settings=SETTINGS, costs=costs)
    assert (at_exits.win_bps, at_exits.loss_bps, at_exits.sizes) == (150.0, 75.0, "sl_tp")


def test_a_signal_that_pays_at_the_exit_distances_is_refused_at_its_model_s_real_sizes() -> None:
    optimistic = sig("BTCUSDT", 0.58, atr=0.3)  # 30 bps ATR: 0.58·90 − 0.42·45 − 20 = +13.3 bps
    measured = sig("BTCUSDT", 0.58, atr=0.3, sizes=(1.2, 1.0, 2700.0), sid="m")  # 0.58·36 − 0.42·30 − 20 < 0
    assert [i.symbol for i in decide(batch(optimistic)).intents] == ["BTCUSDT"]
    res = decide(batch(measured))
    assert not res.intents
    (drop,) = res.drops
    assert drop.reason.startswith("negative_edge:ev_bps=-11.7,") and drop.reason.endswith(",sizes=model")
    assert "win_bps=36.0,loss_bps=30.0,cost_bps=20.0,funding=unknown" in drop.reason


def test_funding_over_the_holding_time_is_a_cost_to_the_side_that_pays_it() -> None:
    costs = core.EntryCosts(fee_bps=0.0, spread_bps=0.0, slippage_bps=0.0)
    hold_8h = (1.0, 1.0, 8 * 3600.0)
    buy = core.expected_edge(sig("BTCUSDT", 0.6, sizes=hold_8h), settings=SETTINGS, costs=costs, funding_bps_8h=3.0)
    sell = core.expected_edge(sig("BTCUSDT", 0.6, side="SELL", sizes=hold_8h), settings=SETTINGS, costs=costs,
                              funding_bps_8h=3.0)
    assert (buy.funding_bps, sell.funding_bps) == (3.0, -3.0)  # longs pay a positive rate, shorts receive it
    assert buy.ev_bps == pytest.approx(0.6 * 200 - 0.4 * 200 - 3.0) and sell.ev_bps == pytest.approx(40.0 + 3.0)
    unknown_hold = core.expected_edge(sig("BTCUSDT", 0.6), settings=SETTINGS, costs=costs, funding_bps_8h=3.0)
    assert unknown_hold.funding_bps is None and "funding=unknown" in unknown_hold.reason()


def test_funding_reaching_the_batch_can_turn_a_thin_edge_negative_with_the_number_in_the_reason() -> None:
    s = sig("BTCUSDT", 0.6, atr=0.25, sizes=(1.2, 1.0, 8 * 3600.0))  # 0.6·30 − 0.4·25 − 20 = −12 … too thin
    wide = sig("BTCUSDT", 0.6, atr=1.0, sizes=(1.2, 1.0, 8 * 3600.0), sid="w")  # 0.6·120 − 0.4·100 − 20 = +12
    inp = dataclasses.replace(batch(wide), funding_bps_8h={"BTCUSDT": 15.0})
    res = decide(inp)
    assert not res.intents
    assert "funding_bps=15.00" in res.drops[0].reason and res.drops[0].reason.startswith("negative_edge:ev_bps=-3.0")
    assert not decide(batch(s)).intents and [i.symbol for i in decide(batch(wide)).intents] == ["BTCUSDT"]


def test_smaller_measured_wins_rank_below_larger_ones_at_equal_confidence() -> None:
    res = decide(batch(sig("BTCUSDT", 0.62, sizes=(0.8, 1.0, 3600.0)), sig("ETHUSDT", 0.62, sizes=(1.4, 1.0, 3600.0)),
                       open_raw="2"))
    assert [i.symbol for i in res.intents] == ["ETHUSDT"]


def test_a_signal_from_an_older_producer_without_sizes_parses_with_zeros() -> None:
    fields = sig("BTCUSDT", 0.6).to_fields()
    for name in ("win_atr", "loss_atr", "hold_s"):
        fields.pop(name)
    old = Signal.from_fields(fields)
    assert (old.win_atr, old.loss_atr, old.hold_s) == (0.0, 0.0, 0.0)
    assert core.expected_edge(old, settings=SETTINGS, costs=core.EntryCosts()).sizes == "sl_tp"


# -- funding the entry rule expects ------------------------------------------------------------------------

H_MS = 3_600_000


def test_funding_forecast_is_the_last_settlement_scaled_to_8h() -> None:
    from quantum_trader.market.base import FundingRate
    from quantum_trader.router.core import funding_bps_8h

    hourly = [FundingRate(ts=t * H_MS, rate=r) for t, r in ((1, 0.00002), (2, 0.00005), (3, 0.00099))]
    # at 2h30 the 3h settlement has not happened: the 2h one, 0.5 bp per hour = 4 bps per 8 h
    assert funding_bps_8h(hourly, now_ms=2 * H_MS + H_MS // 2) == pytest.approx(4.0)
    eight_hourly = [FundingRate(ts=8 * H_MS, rate=-0.0001), FundingRate(ts=16 * H_MS, rate=0.0001)]
    assert funding_bps_8h(eight_hourly, now_ms=17 * H_MS) == pytest.approx(1.0)
    assert funding_bps_8h(eight_hourly[:1], now_ms=9 * H_MS) == pytest.approx(-1.0)  # one known: 8 h assumed


def test_funding_unknown_without_a_settlement_in_the_last_day() -> None:
    from quantum_trader.market.base import FundingRate
    from quantum_trader.router.core import funding_bps_8h

    assert funding_bps_8h([], now_ms=H_MS) is None
    assert funding_bps_8h([FundingRate(ts=5 * H_MS, rate=0.0001)], now_ms=4 * H_MS) is None  # only the future
    assert funding_bps_8h([FundingRate(ts=0, rate=0.0001)], now_ms=25 * H_MS) is None  # older than 24 h


def test_funding_book_reads_a_symbol_again_only_when_its_next_settlement_is_due() -> None:
    from quantum_trader.market.base import FundingRate
    from quantum_trader.router.worker import FUNDING_RETRY_MS, FundingBook

    book = FundingBook()
    assert book.due({"BTCUSDT", "ETHUSDT"}, now_ms=10 * H_MS) == ["BTCUSDT", "ETHUSDT"]
    book.store("BTCUSDT", [FundingRate(ts=8 * H_MS, rate=0.0001), FundingRate(ts=9 * H_MS, rate=0.0002)],
               now_ms=9 * H_MS + 1)
    book.store("ETHUSDT", [], now_ms=9 * H_MS + 1)  # nothing known: ask again after the retry delay
    assert book.due({"BTCUSDT", "ETHUSDT"}, now_ms=9 * H_MS + 2) == []
    assert book.due({"BTCUSDT"}, now_ms=10 * H_MS) == ["BTCUSDT"]  # hourly venue: the 10h settlement is due
    assert book.due({"ETHUSDT"}, now_ms=9 * H_MS + 1 + FUNDING_RETRY_MS) == ["ETHUSDT"]
    assert book.bps_8h({"BTCUSDT", "ETHUSDT"}, now_ms=9 * H_MS + 2) == {"BTCUSDT": pytest.approx(16.0)}
