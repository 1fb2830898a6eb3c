"""Replay folders recorded from the sim, shared by the backtest tests (generated once per module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from quantum_trader.ai.synthetic import make_market
from quantum_trader.core.clock import DataClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import Klines
from quantum_trader.market.replay import write_csv
from quantum_trader.market.sim import SimExchange

END = 1_699_920_000_000  # 2023-11-14T00:00Z
DAY = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def record(folder: Path, *, days: int, timeframe: str, symbols: tuple[str, ...] = SYMBOLS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sim = SimExchange(ExchangeSettings(), clock=DataClock(END))
    for s in symbols:
        write_csv(folder / f"{s}_{timeframe}.csv", sim.history(s, timeframe, start_ms=END - days * DAY, end_ms=END))
    return folder


def profile_file(folder: Path, data: Path, *, extra: str = "") -> Path:
    """A small replay profile: 3-symbol universe refreshed every 2h, short training history on all four symbols."""
    path = folder / "bt.yaml"
    path.write_text(
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: bt}\nspec:\n"
        f"  exchange: {{name: replay, data: {data}}}\n"
        "  universe: {size: 3, refreshInterval: 2h, validFor: 3h, bars: 200, minQuoteVolume24h: 0}\n"
        "  ai: {historyBars: 600, trainSymbols: 4}\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def replay_15m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 days of 15m bars of four sim symbols, ending 2023-11-14 (long ago by the wall clock)."""
    return record(tmp_path_factory.mktemp("replay15m"), days=20, timeframe="15m")


@pytest.fixture(scope="module")
def replay_momentum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 days of 15m bars of four synthetic symbols whose drift is a linear momentum
    (``ai.synthetic.make_market``): a market where the naive baselines have skill, so the fallback trades."""
    folder = tmp_path_factory.mktemp("momentum")
    market = make_market(n_symbols=4, n_bars=20 * 96, seed=11, start_ms=END - 900_000)
    close = market.bars.close
    opens = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    for i, symbol in enumerate(market.symbols):
        write_csv(folder / f"{symbol}_15m.csv", Klines(
            symbol=symbol, timeframe="15m", ts=market.ts, open=opens[i], high=market.bars.high[i],
            low=market.bars.low[i], close=close[i], volume=market.bars.volume[i]))
    return folder
