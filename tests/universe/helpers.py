"""Small in-test fixtures: markets, tickers, klines and a fake Exchange at our own boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from quantum_trader.core.profile import HealthSettings, UniverseSettings
from quantum_trader.market.base import TIMEFRAME_MS, ExchangeError, Klines, Market, Ticker
from quantum_trader.universe.model import Candidate

NOW_MS = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000)  # on the 1h grid


def market(
    symbol: str,
    *,
    base: str | None = None,
    quote: str = "USDT",
    contract: Any = "perpetual",
    status: Any = "TRADING",
    asset_class: Any = "alt",
) -> Market:
    return Market(
        symbol=symbol,
        base=base or symbol.removesuffix(quote),
        quote=quote,
        contract=contract,
        status=status,
        tick_size=0.01,
        step_size=0.001,
        min_notional=5.0,
        max_qty=1e9,
        min_qty=0.001,
        asset_class=asset_class,
    )


def ticker(symbol: str, volume: float, *, bid: float = 99.99, ask: float = 100.01) -> Ticker:
    return Ticker(symbol=symbol, last=100.0, quote_volume_24h=volume, bid=bid, ask=ask, ts=NOW_MS)


def candidate(symbol: str, *, asset_class: Any = "alt", volume: float = 5e7, spread: float | None = 2.0) -> Candidate:
    return Candidate(
        symbol=symbol, base=symbol[:-4], quote="USDT", asset_class=asset_class, volume_24h=volume, spread_bps=spread
    )


def klines(
    symbol: str,
    timeframe: str,
    close: Any,
    *,
    end_ms: int = NOW_MS,
    high: Any = None,
    low: Any = None,
    volume: Any = None,
    ts: Any = None,
) -> Klines:
    """Bars whose last one closes at ``end_ms`` (fresh), oldest first."""
    c = np.asarray(close, dtype=np.float64)
    n = c.shape[0]
    tf = TIMEFRAME_MS[timeframe]
    stamps = np.asarray(ts, dtype=np.int64) if ts is not None else end_ms - tf * np.arange(n, 0, -1, dtype=np.int64)
    return Klines(
        symbol=symbol,
        timeframe=timeframe,
        ts=stamps,
        open=c.copy(),
        high=np.asarray(high, dtype=np.float64) if high is not None else c * 1.002,
        low=np.asarray(low, dtype=np.float64) if low is not None else c * 0.998,
        close=c,
        volume=np.asarray(volume, dtype=np.float64) if volume is not None else np.full(n, 1000.0),
    )


def walk(seed: int, n: int = 300, *, drift: float = 0.0, vol: float = 0.01, start: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(drift, vol, n)))


def universe(**overrides: Any) -> UniverseSettings:
    return UniverseSettings.model_validate({"bars": 300, "minQuoteVolume24h": 1_000_000, **overrides})


def health(**overrides: Any) -> HealthSettings:
    return HealthSettings.model_validate(overrides)


class FakeExchange:
    """A scripted Exchange: fixed markets/tickers, klines from a function, stale pairs until backfilled."""

    name = "fake"

    def __init__(
        self,
        *,
        markets: list[Market],
        tickers: dict[str, Ticker],
        closes: Callable[[str, str], np.ndarray],
        stale: set[tuple[str, str]] | None = None,
        unrepairable: set[str] | None = None,
        fail: str = "",
    ) -> None:
        self._markets = markets
        self._tickers = tickers
        self._closes = closes
        self.stale = set(stale or ())
        self.unrepairable = set(unrepairable or ())
        self.fail = fail
        self.backfills: list[tuple[str, str]] = []
        self.kline_calls = 0

    async def markets(self) -> list[Market]:
        if self.fail == "discovery":
            raise ExchangeError("boom", reason="discovery_failed", endpoint="markets")
        return self._markets

    async def tickers(self) -> dict[str, Ticker]:
        return self._tickers

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        self.kline_calls += 1
        if self.fail == "klines":
            raise ExchangeError("klines down", reason="klines_failed", endpoint="klines")
        close = self._closes(symbol, timeframe)[-limit:]
        lag = 20 * TIMEFRAME_MS[timeframe] if (symbol, timeframe) in self.stale else 0
        return klines(symbol, timeframe, close, end_ms=NOW_MS - lag)

    async def backfill(self, symbol: str, timeframe: str) -> None:
        self.backfills.append((symbol, timeframe))
        if symbol not in self.unrepairable:
            self.stale.discard((symbol, timeframe))

    async def close(self) -> None:
        return None
