"""Shared AI fixtures: one small planted-signal market and one trained bundle per session."""

from __future__ import annotations

import pytest
from quantum_trader.ai.dataset import Dataset, build_dataset
from quantum_trader.ai.synthetic import SyntheticMarket, make_market
from quantum_trader.ai.training import TrainParams, TrainResult, train_walk_forward

HORIZONS = (4, 8)
SMALL = TrainParams(horizons=HORIZONS, rounds=60, metalabel_rounds=30, threads=1)


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    return make_market(n_symbols=20, n_bars=1500, seed=1)


@pytest.fixture(scope="session")
def dataset(market: SyntheticMarket) -> Dataset:
    return build_dataset(market.bars, ts=market.ts, symbols=market.symbols, horizons=HORIZONS,
                         oracle=market.oracle(HORIZONS[0]))


@pytest.fixture(scope="session")
def trained(dataset: Dataset) -> TrainResult:
    return train_walk_forward(dataset, params=SMALL, version="20261121T120000Z-abc123", timeframe="15m")
