from __future__ import annotations

import numpy as np
import pytest
from quantum_trader.ai.features import (
    FEATURE_NAMES,
    N_FEATURES,
    WINDOW,
    Bars,
    feature_matrix,
    index,
    latest_features,
)
from quantum_trader.ai.synthetic import make_market


@pytest.fixture(scope="module")
def bars() -> Bars:
    return make_market(n_symbols=6, n_bars=WINDOW + 200, seed=3).bars


def test_feature_set_has_about_two_dozen_documented_names() -> None:
    assert 20 <= N_FEATURES <= 30
    assert len(set(FEATURE_NAMES)) == N_FEATURES
    import quantum_trader.ai.features as mod

    for name in FEATURE_NAMES:
        assert f"| {name} |" in (mod.__doc__ or "")


def test_features_at_t_do_not_change_when_later_bars_are_perturbed(bars: Bars) -> None:
    before = feature_matrix(bars)
    t = WINDOW + 50
    rng = np.random.default_rng(0)
    scale = np.exp(rng.normal(0, 0.2, bars.close[:, t + 1 :].shape))
    later = Bars(
        high=np.concatenate([bars.high[:, : t + 1], bars.high[:, t + 1 :] * scale * 1.5], axis=1),
        low=np.concatenate([bars.low[:, : t + 1], bars.low[:, t + 1 :] * scale * 0.5], axis=1),
        close=np.concatenate([bars.close[:, : t + 1], bars.close[:, t + 1 :] * scale], axis=1),
        volume=np.concatenate([bars.volume[:, : t + 1], bars.volume[:, t + 1 :] * 100], axis=1),
        open_ms=bars.open_ms,
    )
    after = feature_matrix(later)
    np.testing.assert_array_equal(before[:, : t + 1], after[:, : t + 1])
    assert not np.allclose(before[:, t + 1 :], after[:, t + 1 :], equal_nan=True)


def test_latest_features_equal_the_last_row_of_the_full_matrix(bars: Bars) -> None:
    full = feature_matrix(bars)
    last = latest_features(bars)
    np.testing.assert_allclose(last, full[:, -1, :], rtol=1e-9, atol=1e-12)


def test_latest_features_depend_only_on_the_last_window(bars: Bars) -> None:
    np.testing.assert_allclose(latest_features(bars.tail(WINDOW)), latest_features(bars), rtol=1e-9, atol=1e-12)


def test_warm_up_rows_are_nan_and_the_rest_finite(bars: Bars) -> None:
    full = feature_matrix(bars)
    assert np.isnan(full[:, : WINDOW - 1]).all()
    assert np.isfinite(full[:, WINDOW - 1 :]).all()


def test_fewer_bars_than_the_window_give_nan_rows(bars: Bars) -> None:
    assert np.isnan(latest_features(bars.tail(WINDOW - 1))).all()


def test_features_are_scale_free_across_price_levels(bars: Bars) -> None:
    scaled = Bars(bars.high * 1000, bars.low * 1000, bars.close * 1000, bars.volume, bars.open_ms)
    np.testing.assert_allclose(latest_features(scaled), latest_features(bars), rtol=1e-6, atol=1e-9)


def test_feature_values_have_their_documented_ranges(bars: Bars) -> None:
    x = feature_matrix(bars)[:, WINDOW:]
    assert np.all(np.abs(x[..., index("rsi_14")]) <= 0.5)
    assert np.all(np.abs(x[..., index("range_pos")]) <= 0.5 + 1e-12)
    eff = x[..., index("efficiency_16")]
    assert np.all((eff >= 0) & (eff <= 1 + 1e-12))
    assert np.all(x[..., index("atr_pct")] > 0)


def test_one_bar_is_rejected() -> None:
    one = np.ones((2, 1))
    with pytest.raises(ValueError):
        feature_matrix(Bars(one, one, one, one, np.zeros(1, dtype=np.int64)))


def test_bar_times_that_do_not_match_the_bars_are_rejected(bars: Bars) -> None:
    with pytest.raises(ValueError, match="open_ms"):
        feature_matrix(Bars(bars.high, bars.low, bars.close, bars.volume, bars.open_ms[1:]))


def test_hour_utc_is_the_hour_of_the_bar_open_for_every_symbol(bars: Bars) -> None:
    x = feature_matrix(bars)[:, WINDOW:, index("hour_utc")]
    expected = (bars.open_ms[WINDOW:] % 86_400_000) / 3_600_000
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape))
    assert latest_features(bars)[0, index("hour_utc")] == (bars.open_ms[-1] % 86_400_000) / 3_600_000
