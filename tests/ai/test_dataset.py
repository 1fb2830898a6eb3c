from __future__ import annotations

import itertools

import numpy as np
from quantum_trader.ai.dataset import (
    Dataset,
    ExitRules,
    barrier_labels,
    block_edges,
    build_dataset,
    data_hash,
    exit_returns,
    exit_scan,
    forward_returns,
    walk_forward_folds,
)
from quantum_trader.ai.features import WINDOW, Bars
from quantum_trader.ai.synthetic import SyntheticMarket


def test_forward_returns_look_h_bars_ahead_and_are_nan_at_the_end() -> None:
    close = np.array([[1.0, 2.0, 4.0, 8.0]])
    f = forward_returns(close, 2)
    np.testing.assert_allclose(f[0, :2], [np.log(4.0), np.log(4.0)])
    assert np.isnan(f[0, 2:]).all()


def test_rows_are_pooled_over_symbols_after_the_warm_up_and_before_the_last_horizon(
    market: SyntheticMarket, dataset: Dataset
) -> None:
    per_symbol = market.bars.n_bars - (WINDOW - 1) - 8
    assert dataset.n == per_symbol * len(market.symbols)
    assert set(dataset.sym.tolist()) == set(range(len(market.symbols)))
    assert np.all(np.diff(dataset.t) >= 0)  # time-major


def test_dead_band_drops_small_moves_from_training_only(dataset: Dataset) -> None:
    keep = dataset.trainable(4)
    band = 0.25 * dataset.rv * 2.0
    assert np.all(np.abs(dataset.fwd[4][keep]) > band[keep])
    assert 0.6 < keep.mean() < 0.95
    assert dataset.label_up(4).shape == (dataset.n,)


def test_no_training_label_window_reaches_the_test_block_or_its_embargo(dataset: Dataset) -> None:
    purge, embargo = 8, 4
    for fold in walk_forward_folds(dataset.t, n_blocks=6, purge=purge, embargo=embargo):
        tr = dataset.t[fold.train_mask(dataset.t)]
        te = dataset.t[fold.test_mask(dataset.t)]
        assert tr.size and te.size
        assert tr.max() + purge < te.min() - embargo
        assert tr.max() + purge + embargo + 1 == te.min()


def test_blocks_cover_all_bars_without_overlap(dataset: Dataset) -> None:
    edges = block_edges(dataset.t, 6)
    assert edges[0][0] == dataset.t.min() and edges[-1][1] == dataset.t.max()
    for (a0, a1), (b0, _b1) in itertools.pairwise(edges):
        assert a1 + 1 == b0 and a0 <= a1


def test_permuted_returns_keep_rows_but_break_their_link_to_features(dataset: Dataset) -> None:
    shuffled = dataset.with_permuted_returns(1)
    assert sorted(shuffled.fwd[4].tolist()) == sorted(dataset.fwd[4].tolist())
    assert not np.array_equal(shuffled.fwd[4], dataset.fwd[4])


def test_data_hash_changes_with_any_price(market: SyntheticMarket) -> None:
    a = data_hash(market.bars, ts=market.ts, symbols=market.symbols)
    close = market.bars.close.copy()
    close[3, 100] *= 1.0001
    b = data_hash(type(market.bars)(market.bars.high, market.bars.low, close, market.bars.volume, market.bars.open_ms),
                  ts=market.ts, symbols=market.symbols)
    assert len(a) == 16 and a != b


def test_build_dataset_rejects_mismatched_shapes(market: SyntheticMarket) -> None:
    import pytest

    with pytest.raises(ValueError):
        build_dataset(market.bars, ts=market.ts[1:], symbols=market.symbols, horizons=(4,))


def _bars_from(path: list[tuple[float, float, float]]) -> Bars:
    """One symbol; each bar (high, low, close)."""
    a = np.array(path, dtype=float).T
    return Bars(high=a[0][None, :], low=a[1][None, :], close=a[2][None, :], volume=np.ones((1, a.shape[1])),
                open_ms=np.arange(a.shape[1], dtype=np.int64) * 900_000)


def test_exit_returns_take_the_first_barrier_and_the_stop_when_a_bar_crosses_both() -> None:
    rules = ExitRules(stop_atr=1.0, take_atr=2.0, horizon=3)
    atr = np.ones((1, 5))
    # entry at 100: long stop 99 / take 102; short stop 101 / take 98
    up = _bars_from([(100, 100, 100), (100.5, 99.5, 100.2), (102.5, 100, 102.2), (103, 102, 102.5), (103, 102, 103)])
    long_r, short_r = exit_returns(up, atr=atr, rules=rules)
    assert abs(long_r[0, 0] - np.log(102 / 100)) < 1e-12  # take-profit in bar 2
    assert abs(short_r[0, 0] - (-np.log(101 / 100))) < 1e-12  # short stopped at 101 in bar 2
    both = _bars_from([(100, 100, 100), (102.5, 98.5, 100), (100, 100, 100), (100, 100, 100), (100, 100, 100)])
    long_r, short_r = exit_returns(both, atr=atr, rules=rules)
    assert abs(long_r[0, 0] - np.log(99 / 100)) < 1e-12 and abs(short_r[0, 0] + np.log(101 / 100)) < 1e-12
    calm = _bars_from([(100, 100, 100), (100.3, 99.8, 100.1), (100.4, 99.9, 100.2), (100.5, 100, 100.4), (1, 1, 1)])
    long_r, short_r = exit_returns(calm, atr=atr, rules=rules)
    assert abs(long_r[0, 0] - np.log(100.4 / 100)) < 1e-12 and abs(short_r[0, 0] + long_r[0, 0]) < 1e-12
    assert np.isnan(long_r[0, -3:]).all()  # no known future for the time exit


def test_exit_scan_counts_the_bars_until_the_first_exit_and_the_horizon_when_none() -> None:
    rules = ExitRules(stop_atr=1.0, take_atr=2.0, horizon=3)
    atr = np.ones((1, 5))
    up = _bars_from([(100, 100, 100), (100.5, 99.5, 100.2), (102.5, 100, 102.2), (103, 102, 102.5), (103, 102, 103)])
    long_r, short_r, held_l, held_s = exit_scan(up, atr=atr, rules=rules)
    assert (held_l[0, 0], held_s[0, 0]) == (2.0, 2.0)  # take-profit and stop both in bar 2
    for got, want in zip((long_r, short_r), exit_returns(up, atr=atr, rules=rules), strict=True):
        np.testing.assert_array_equal(got, want)
    calm = _bars_from([(100, 100, 100), (100.3, 99.8, 100.1), (100.4, 99.9, 100.2), (100.5, 100, 100.4), (1, 1, 1)])
    _, _, held_l, held_s = exit_scan(calm, atr=atr, rules=rules)
    assert (held_l[0, 0], held_s[0, 0]) == (3.0, 3.0)  # the time exit at the horizon
    assert np.isnan(held_l[0, -3:]).all()


def test_dataset_with_exit_rules_carries_each_side_s_exit_return(dataset: Dataset) -> None:
    assert dataset.exit_long is not None and dataset.exit_short is not None
    assert np.isfinite(dataset.exit_long).all() and np.isfinite(dataset.exit_short).all()
    untouched = np.isclose(dataset.exit_long, -dataset.exit_short)  # no barrier: both exit at the same close
    assert 0.3 < untouched.mean() < 0.98
    assert dataset.hold_long is not None and dataset.hold_short is not None
    assert set(np.unique(dataset.hold_long)) <= {1.0, 2.0, 3.0, 4.0}
    assert (dataset.hold_long[untouched] == 4.0).mean() > 0.9  # untouched by a barrier: held to the time exit


def test_barrier_label_is_the_first_stop_distance_reached_else_the_sign_at_the_horizon() -> None:
    rules = ExitRules(stop_atr=1.0, take_atr=2.0, horizon=3)
    atr = np.ones((1, 5))
    up_first = _bars_from([(100, 100, 100), (101.2, 99.5, 100.5), (100, 98, 98), (99, 98, 98), (1, 1, 1)])
    down_first = _bars_from([(100, 100, 100), (100.5, 98.8, 99), (102, 99, 101.5), (102, 101, 101.5), (1, 1, 1)])
    both = _bars_from([(100, 100, 100), (101.5, 98.5, 100), (100.2, 99.8, 100), (100.3, 99.9, 100.2), (1, 1, 1)])
    calm = _bars_from([(100, 100, 100), (100.3, 99.8, 100.1), (100.2, 99.6, 99.7), (100, 99.5, 99.8), (1, 1, 1)])
    got = [barrier_labels(b, atr=atr, rules=rules)[0, 0] for b in (up_first, down_first, both, calm)]
    assert got == [1.0, 0.0, 1.0, 0.0]  # both: close at the horizon 100.2 > 100; calm: 99.8 < 100
    assert np.isnan(barrier_labels(calm, atr=atr, rules=rules)[0, -3:]).all()


def test_with_exit_rules_the_primary_label_is_the_barrier_label_and_longer_ones_the_sign(dataset: Dataset) -> None:
    assert dataset.barrier_horizon == 4 and dataset.barrier_up is not None
    np.testing.assert_array_equal(dataset.label_up(4), dataset.barrier_up)
    np.testing.assert_array_equal(dataset.label_up(8), (dataset.fwd[8] > 0).astype(float))
    agree = (dataset.label_up(4) == (dataset.fwd[4] > 0)).mean()
    assert 0.7 < agree < 1.0  # the barrier decides a real share of rows differently from the close
