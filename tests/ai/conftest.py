"""Shared AI fixtures: one small planted-signal market and one trained bundle per session."""

from __future__ import annotations

import pytest
from quantum_trader.ai.dataset import Dataset, ExitRules, build_dataset
from quantum_trader.ai.synthetic import SyntheticMarket, make_interaction_market, make_market
from quantum_trader.ai.training import TrainParams, TrainResult, train_walk_forward

HORIZONS = (4, 8)
EXITS = ExitRules(stop_atr=1.5, take_atr=3.0, horizon=HORIZONS[0])  # the default profile's
SMALL = TrainParams(horizons=HORIZONS, rounds=60, metalabel_rounds=30, threads=1, importance=False)


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    return make_market(n_symbols=20, n_bars=1500, seed=1)


@pytest.fixture(scope="session")
def dataset(market: SyntheticMarket) -> Dataset:
    return build_dataset(market.bars, ts=market.ts, symbols=market.symbols, horizons=HORIZONS,
                         oracle=market.oracle(HORIZONS[0]), exits=EXITS)


@pytest.fixture(scope="session")
def trained(dataset: Dataset) -> TrainResult:
    return train_walk_forward(dataset, params=SMALL, version="20261121T120000Z-abc123", timeframe="15m")


def beats_baselines(report: dict) -> dict:  # type: ignore[type-arg]
    """The report with a won baseline comparison, for tests about the registry or worker, not the gate.

    (On the planted AR(1) market a linear model on lagged returns is close to the oracle and
    the LightGBM model does not beat it: its real report is refused by the gate.)
    """
    return {**report, "vs_baseline": {**report["vs_baseline"], "better": True}}


INTERACTION_HORIZONS = (1, 2)


@pytest.fixture(scope="session")
def interaction_dataset() -> Dataset:
    m = make_interaction_market(n_symbols=12, n_bars=1200, seed=1, strength=0.8)
    return build_dataset(m.bars, ts=m.ts, symbols=m.symbols, horizons=INTERACTION_HORIZONS)


@pytest.fixture(scope="session")
def interaction_trained(interaction_dataset: Dataset) -> TrainResult:
    params = TrainParams(horizons=INTERACTION_HORIZONS, rounds=60, metalabel_rounds=30, threads=1)
    return train_walk_forward(interaction_dataset, params=params, version="nonlinear", timeframe="15m")
