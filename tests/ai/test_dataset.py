from __future__ import annotations

import itertools

import numpy as np
from quantum_trader.ai.dataset import (
    Dataset,
    block_edges,
    build_dataset,
    data_hash,
    forward_returns,
    walk_forward_folds,
)
from quantum_trader.ai.features import WINDOW
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
    b = data_hash(type(market.bars)(market.bars.high, market.bars.low, close, market.bars.volume),
                  ts=market.ts, symbols=market.symbols)
    assert len(a) == 16 and a != b


def test_build_dataset_rejects_mismatched_shapes(market: SyntheticMarket) -> None:
    import pytest

    with pytest.raises(ValueError):
        build_dataset(market.bars, ts=market.ts[1:], symbols=market.symbols, horizons=(4,))
