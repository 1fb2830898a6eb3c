"""Win/loss sizes under the exits, measured on out-of-sample signals (ai/exits.py, ai/training.py)."""

from __future__ import annotations

import numpy as np
import pytest
from quantum_trader.ai.dataset import Dataset
from quantum_trader.ai.exits import MIN_ROWS, ExitSizes, measure
from quantum_trader.ai.model import load_bundle
from quantum_trader.ai.training import TrainResult


def _rows(n: int, *, p: float, right_share: float, win_atr: float, loss_atr: float) -> dict[str, np.ndarray]:
    """``n`` BUY signals at confidence ``p``: the first ``right_share`` earn ``win_atr``, the rest lose ``loss_atr``."""
    atr_pct = np.full(n, 0.004)
    right = np.arange(n) < int(right_share * n)
    ret_long = np.where(right, win_atr, -loss_atr) * atr_pct
    return {"p_up": np.full(n, p), "label_up": right.astype(float), "ret_long": ret_long, "ret_short": -ret_long,
            "hold_long": np.where(right, 4.0, 2.0), "hold_short": np.full(n, 4.0), "atr_pct": atr_pct}


def test_sizes_are_the_mean_win_and_loss_in_atrs_of_the_signals_and_their_holding_time() -> None:
    rows = _rows(400, p=0.6, right_share=0.6, win_atr=1.2, loss_atr=1.5)
    below = _rows(400, p=0.52, right_share=0.0, win_atr=0.0, loss_atr=9.0)  # HOLD rows: not measured
    both = {k: np.concatenate([rows[k], below[k]]) for k in rows}
    sizes = measure(**both, hold_below=0.55, bar_s=900.0)
    assert sizes is not None
    assert sizes.win_atr == pytest.approx(1.2) and sizes.loss_atr == pytest.approx(1.5)
    assert sizes.rows == 400 and sizes.win_rate == pytest.approx(0.6) and sizes.mean_p == pytest.approx(0.6)
    assert sizes.hold_s == pytest.approx((0.6 * 4 + 0.4 * 2) * 900.0)
    assert sizes.mean_atr == pytest.approx(0.6 * 1.2 - 0.4 * 1.5)


def test_a_sell_signal_is_measured_on_the_short_side() -> None:
    rows = _rows(400, p=0.6, right_share=0.6, win_atr=1.2, loss_atr=1.5)
    sell = {**rows, "p_up": 1.0 - rows["p_up"], "label_up": 1.0 - rows["label_up"],
            "ret_short": rows["ret_long"], "ret_long": -rows["ret_long"]}
    sizes = measure(**sell, hold_below=0.55, bar_s=900.0)
    assert sizes is not None and sizes.win_atr == pytest.approx(1.2) and sizes.loss_atr == pytest.approx(1.5)


def test_too_few_signals_on_either_side_give_no_estimate() -> None:
    rows = _rows(MIN_ROWS + 20, p=0.6, right_share=0.9, win_atr=1.0, loss_atr=1.0)
    assert measure(**rows, hold_below=0.55, bar_s=900.0) is None


def test_sizes_round_trip_and_refuse_negative_or_malformed_values() -> None:
    sizes = ExitSizes(win_atr=1.1, loss_atr=1.4, hold_s=2700.0, rows=10, win_rate=0.5, mean_p=0.58, mean_atr=-0.15)
    assert ExitSizes.from_dict(sizes.to_dict()) == sizes
    with pytest.raises(ValueError, match="finite and >= 0"):
        ExitSizes.from_dict({**sizes.to_dict(), "loss_atr": -1.0})
    with pytest.raises(ValueError, match="malformed exit sizes"):
        ExitSizes.from_dict({"win_atr": 1.0})


def test_training_measures_sizes_out_of_sample_and_the_bundle_and_fallback_carry_them(
    trained: TrainResult, dataset: Dataset
) -> None:
    doc = trained.report["exit_sizes"]
    assert doc is not None and doc["rows"] > 1000
    sizes = trained.bundle.exit_sizes
    assert sizes is not None and sizes.to_dict() == doc
    # under the real exits a right signal rarely runs to the 3-ATR take-profit: it closes at the horizon
    assert 0.3 < sizes.win_atr < 3.0 and 0.3 < sizes.loss_atr <= 1.5 + 0.5
    assert 0.0 < sizes.hold_s <= 4 * 900.0
    assert abs(sizes.win_rate - sizes.mean_p) < 0.05  # p is calibrated to the same barrier label
    loaded = load_bundle(trained.bundle.to_bytes())
    assert loaded.exit_sizes == sizes
    assert trained.fallback.exit_sizes is not None and trained.report["fallback"]["exit_sizes"]["rows"] > 0
