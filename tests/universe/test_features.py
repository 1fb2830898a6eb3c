"""Every feature on hand-computed series, edge cases (flat, gaps, short), and vector == per-symbol loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from quantum_trader.universe import features as ft
from quantum_trader.universe.reference import symbol_features
from scipy.stats import chi2


def rows(*series: list[float]) -> np.ndarray:
    return np.asarray(series, dtype=np.float64)


def test_atr_pct_is_mean_true_range_over_last_close_including_gaps() -> None:
    close = rows([10.0, 10.0, 10.0])
    high = rows([10.0, 11.0, 12.0])
    low = rows([10.0, 9.0, 10.0])
    # bar 1: TR = max(11-9, |11-10|, |9-10|) = 2; bar 2: max(12-10, |12-10|, |10-10|) = 2 -> 2/10 = 20 %
    assert ft.atr_pct(close=close, high=high, low=low, bars=2)[0] == pytest.approx(20.0)
    # a gap up: range 0.5 but |high - previous close| = 2 counts
    gap = ft.atr_pct(close=rows([10.0, 10.0, 10.0]), high=rows([10.0, 11.0, 12.0]), low=rows([10.0, 9.0, 11.5]), bars=1)
    assert gap[0] == pytest.approx(20.0)


def test_ema_slope_matches_hand_computed_recursion() -> None:
    # span 3 -> alpha 0.5: ema = 1, 1.5, 2.25, 3.125; slope over 1 bar = 3.125 / 2.25 - 1
    out = ft.ema_slope(rows([1.0, 2.0, 3.0, 4.0]), span=3, lag=1)
    assert out[0] == pytest.approx((3.125 / 2.25 - 1) * 100)


def test_ema_weights_reproduce_the_recursive_ema() -> None:
    x = np.linspace(1.0, 3.0, 50) + np.sin(np.arange(50))
    ema = x[0]
    for v in x[1:]:
        ema = 2 / 21 * v + (1 - 2 / 21) * ema
    assert float(x @ ft.ema_weights(50, 20)) == pytest.approx(ema)


def test_roc_is_percent_change_over_n_bars() -> None:
    assert ft.roc(rows([100.0, 110.0, 121.0]), bars=2)[0] == pytest.approx(21.0)
    assert ft.roc(rows([100.0, 110.0, 99.0]), bars=1)[0] == pytest.approx(-10.0)


def test_efficiency_ratio_is_net_move_over_path() -> None:
    er = ft.efficiency_ratio(rows([1.0, 2.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 1.0, 2.0, 1.0]))
    assert er.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_quote_volume_sums_close_times_volume_over_the_last_day() -> None:
    qv = ft.quote_volume(close=rows([1.0, 2.0, 3.0]), volume=rows([100.0, 10.0, 1.0]), bars=2)
    assert qv[0] == pytest.approx(2 * 10 + 3 * 1)


def test_hurst_of_alternating_returns_is_zero() -> None:
    # every chunk: partial sums 1,0,1,0..., range 1, std 1 -> R/S = 1 at every scale -> slope 0
    returns = rows([1.0, -1.0] * 128)
    assert ft.hurst_scales(256) == (8, 16, 32, 64, 128)
    assert ft.hurst_rs(returns, corrected=False)[0] == pytest.approx(0.0, abs=1e-12)
    # the corrected estimate subtracts the white-noise bias of the same scales
    assert ft.hurst_rs(returns)[0] == pytest.approx(-ft.small_sample_bias((8, 16, 32, 64, 128)), abs=1e-12)


def test_expected_rs_matches_anis_lloyd_peters_by_hand() -> None:
    # n = 3: (2.5/3) * Gamma(1)/(sqrt(pi) Gamma(1.5)) * (sqrt(2) + sqrt(1/2)) = (2.5/3) * (2/pi) * 2.1213...
    assert ft.expected_rs(3) == pytest.approx(2.5 / 3 * 2 / math.pi * (math.sqrt(2) + math.sqrt(0.5)))


def test_corrected_hurst_of_white_noise_is_about_one_half_while_raw_rs_overstates_it() -> None:
    noise = np.random.default_rng(0).normal(size=(400, 499))
    assert 0.45 < float(ft.hurst_rs(noise).mean()) < 0.52
    assert float(ft.hurst_rs(noise, corrected=False).mean()) > 0.55


def test_hurst_orders_persistent_random_and_antipersistent_series() -> None:
    rng = np.random.default_rng(3)
    eps = rng.normal(size=(3, 2000))
    out = np.empty_like(eps)
    for row, phi in enumerate((0.8, 0.0, -0.8)):
        out[row, 0] = eps[row, 0]
        for t in range(1, eps.shape[1]):
            out[row, t] = phi * out[row, t - 1] + eps[row, t]
    h = ft.hurst_rs(out[:, -499:])
    assert h[0] > h[1] > h[2]
    assert h[0] > 0.7 and h[2] < 0.4


def test_hurst_of_a_flat_or_too_short_series_is_nan() -> None:
    assert math.isnan(ft.hurst_rs(np.zeros((1, 300)))[0])
    assert math.isnan(ft.hurst_rs(np.ones((1, 20)))[0])  # only one scale fits


def test_permutation_entropy_monotonic_is_zero_and_zigzag_is_log2_over_log6() -> None:
    pe = ft.permutation_entropy(rows([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    assert pe[0] == pytest.approx(0.0)
    assert pe[1] == pytest.approx(math.log(2) / math.log(6))


def test_lag1_autocorrelation_of_alternating_returns() -> None:
    rho = ft.autocorrelations(rows([1.0, -1.0] * 5), lags=2)
    assert rho[0, 0] == pytest.approx(-9 / 10)
    assert rho[0, 1] == pytest.approx(8 / 10)


def test_ljung_box_p_matches_the_chi_square_formula() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=(1, 200))
    rho = ft.autocorrelations(r, lags=10)
    q = 200 * 202 * sum(rho[0, k - 1] ** 2 / (200 - k) for k in range(1, 11))
    assert ft.ljung_box_p(rho, 200)[0] == pytest.approx(chi2.sf(q, 10))
    alternating = ft.autocorrelations(rows([1.0, -1.0] * 100), lags=10)
    assert ft.ljung_box_p(alternating, 200)[0] < 1e-9


def test_input_problems_flag_nan_bad_prices_constant_and_zero_volume() -> None:
    base = np.linspace(100, 110, 60)
    close = np.stack([base, base, base, np.full(60, 5.0), base])
    close[1, 10] = np.nan
    close[2, 3] = -1.0
    volume = np.ones((5, 60))
    volume[4, -24:] = 0.0
    high, low = close * 1.01, close * 0.99
    codes = ft.input_problems(close=close, high=high, low=low, volume=volume, bars_per_day=24)
    assert codes.tolist() == [ft.OK, ft.PROBLEM_NAN, ft.PROBLEM_BAD_PRICES, ft.PROBLEM_CONSTANT, ft.PROBLEM_ZERO_VOLUME]


def test_vectorised_features_equal_the_per_symbol_reference() -> None:
    rng = np.random.default_rng(11)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (7, 320)), axis=1))
    high = close * (1 + rng.uniform(0, 0.01, close.shape))
    low = close * (1 - rng.uniform(0, 0.01, close.shape))
    volume = rng.uniform(1, 5, close.shape)
    vec = ft.timeframe_features(close=close, high=high, low=low, volume=volume, bars_per_day=96)
    for i in range(close.shape[0]):
        ref = symbol_features(close=close[i], high=high[i], low=low[i], volume=volume[i], bars_per_day=96)
        for name in ft.TIMEFRAME_FEATURES:
            assert vec[name][i] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name
