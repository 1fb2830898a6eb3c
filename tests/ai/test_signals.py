from __future__ import annotations

import numpy as np
from quantum_trader.ai.features import N_FEATURES, index
from quantum_trader.ai.signals import (
    FALLBACK_MAX_CONFIDENCE,
    FALLBACK_MODEL,
    decide_fallback,
    decide_model,
    fallback_p_up,
    model_tag,
    regimes,
)
from quantum_trader.core.profile import RouterSettings


def _x(**values: float) -> np.ndarray:
    x = np.zeros((1, N_FEATURES))
    for k, v in values.items():
        x[0, index(k)] = v
    x[0, index("atr_pct")] = values.get("atr_pct", 0.01)
    return x


def test_side_follows_probability_and_confidence_is_that_sides_probability() -> None:
    x = np.vstack([_x(), _x(), _x()])
    d = decide_model(("A", "B", "C"), x=x, price=np.array([100.0, 10.0, 1.0]), p_up=np.array([0.8, 0.3, 0.52]),
                     p_profit=np.array([0.7, 0.2, 0.9]), hold_below=0.55, gate_threshold=0.5)
    assert [s.side for s in d] == ["BUY", "SELL", "HOLD"]
    assert [round(s.confidence, 6) for s in d] == [0.8, 0.7, 0.52]
    assert [s.rl_gate_pass for s in d] == [True, False, False]  # HOLD never passes
    assert d[0].atr == 100.0 * 0.01 and d[0].price == 100.0


def test_regime_labels() -> None:
    x = np.vstack([_x(vol_regime=0.5), _x(efficiency_16=0.6, ema_slope_slow=0.5),
                   _x(efficiency_16=0.6, ema_slope_slow=-0.5), _x()])
    assert regimes(x) == ["high_vol", "trend_up", "trend_down", "range"]


def test_fallback_is_a_trend_follower_whose_confidence_stays_below_its_cap_and_super_confidence() -> None:
    strong_up = _x(ema_gap_slow=8.0, ema_slope_slow=2.0)
    strong_down = _x(ema_gap_slow=-8.0, ema_slope_slow=-2.0)
    extreme_up = _x(ema_gap_slow=1e6, ema_slope_slow=1e6)
    disagree = _x(ema_gap_slow=8.0, ema_slope_slow=-2.0)
    x = np.vstack([strong_up, strong_down, extreme_up, disagree])
    p = fallback_p_up(x)
    assert 0.59 < p[0] < FALLBACK_MAX_CONFIDENCE and 1.0 - FALLBACK_MAX_CONFIDENCE < p[1] < 0.41 and p[3] == 0.5
    assert p[2] <= FALLBACK_MAX_CONFIDENCE == 0.60
    d = decide_fallback(("A", "B", "C", "D"), x=x, price=np.ones(4), hold_below=0.55, stop_atr=1.5)
    assert [s.side for s in d] == ["BUY", "SELL", "BUY", "HOLD"]
    assert max(s.confidence for s in d) <= FALLBACK_MAX_CONFIDENCE < RouterSettings().super_confidence
    assert d[0].confidence >= RouterSettings().min_confidence  # a strong trend still reaches the router's guard
    assert not any(s.rl_gate_pass for s in d)


def test_model_names_say_what_produced_the_signal() -> None:
    assert model_tag("20261121T120000Z-abc123") == "lgbm-20261121T120000Z-abc123"
    assert FALLBACK_MODEL == "fallback-trend"


def test_a_failing_meta_label_turns_the_signal_into_hold_only_when_the_bundle_filters() -> None:
    from quantum_trader.ai.signals import decide_model

    x = np.zeros((2, N_FEATURES))
    p_up, p_profit = np.array([0.7, 0.3]), np.array([0.6, 0.4])
    kept = decide_model(("A", "B"), x=x, price=np.ones(2), p_up=p_up, p_profit=p_profit, hold_below=0.55,
                        gate_threshold=0.5)
    assert [d.side for d in kept] == ["BUY", "SELL"]
    filtered = decide_model(("A", "B"), x=x, price=np.ones(2), p_up=p_up, p_profit=p_profit, hold_below=0.55,
                            gate_threshold=0.5, gate_filters=True)
    assert [d.side for d in filtered] == ["BUY", "HOLD"] and filtered[0].rl_gate_pass


def test_model_decisions_carry_the_model_s_exit_sizes_and_none_without_them() -> None:
    from quantum_trader.ai.exits import ExitSizes

    x = np.zeros((1, N_FEATURES))
    sizes = ExitSizes(win_atr=1.2, loss_atr=1.0, hold_s=2700.0)
    (d,) = decide_model(("A",), x=x, price=np.ones(1), p_up=np.array([0.6]), p_profit=np.zeros(1), hold_below=0.55,
                        gate_threshold=0.5, sizes=sizes)
    assert (d.win_atr, d.loss_atr, d.hold_s) == (1.2, 1.0, 2700.0)
    (bare,) = decide_model(("A",), x=x, price=np.ones(1), p_up=np.array([0.6]), p_profit=np.zeros(1),
                           hold_below=0.55, gate_threshold=0.5)
    assert (bare.win_atr, bare.loss_atr, bare.hold_s) == (0.0, 0.0, 0.0)


def test_the_untrained_fallback_claims_symmetric_sizes_so_its_edge_is_negative_at_a_normal_atr() -> None:
    from quantum_trader.core.messages import Signal
    from quantum_trader.router.core import EntryCosts, expected_edge

    x = _x(ema_gap_slow=1e6, ema_slope_slow=1e6, atr_pct=0.005)  # the strongest trend, ATR 50 bps
    (d,) = decide_fallback(("A",), x=x, price=np.full(1, 100.0), hold_below=0.55, stop_atr=1.5)
    assert (d.win_atr, d.loss_atr) == (1.5, 1.5)
    s = Signal(signal_id="f", symbol="A", side=d.side, confidence=d.confidence, model=FALLBACK_MODEL,
               model_version="1", price=d.price, atr=d.atr, regime=d.regime, rl_gate_pass=False, win_atr=d.win_atr,
               loss_atr=d.loss_atr, hold_s=d.hold_s, ts=0)
    edge = expected_edge(s, settings=RouterSettings(), costs=EntryCosts())
    assert edge.sizes == "model" and edge.ev_bps < 0.0  # (2·0.6 − 1)·75 − 20 = −5 bps at its very best
