"""Frozen market data for a backtest, and the exchange view the workers' code reads it through.

Loading (:func:`load_sim`, :func:`load_replay`) is the only I/O: every series the run needs is
read once into columnar numpy arrays. :class:`FrozenExchange` then serves them through the
:class:`~quantum_trader.market.base.Exchange` protocol under a :class:`~quantum_trader.core.clock.DataClock`,
so the universe cycle and the training code run unchanged: a bar is visible once it has closed
by the clock, never earlier.

Funding: the sim's own settlements (every 8 h, rate moving with the market); on replay
``<SYMBOL>_funding.csv`` (header ``ts,rate``, read by the replay exchange's parser) when present,
otherwise every 8 h (00, 08, 16 UTC) the baseline rate ``DEFAULT_FUNDING_RATE`` (0.01 %, Binance's
interest-rate floor) is charged to longs and paid to shorts, and the report says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from quantum_trader.core.clock import Clock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import (
    TIMEFRAME_MS,
    ExchangeError,
    FundingRate,
    Klines,
    Market,
    OrderRequest,
    OrderResult,
    PerSymbol,
    Position,
    Ticker,
    per_symbol,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DEFAULT_FUNDING_RATE: Final = 0.0001
FUNDING_INTERVAL_MS: Final = 8 * 3_600_000
REPLAY_SPREAD_BPS: Final = 2.0  # the replay exchange's own assumption (market/replay.py)
OracleFn = Callable[[str, str, I64, int], F64]


@dataclass(frozen=True, slots=True)
class Series:
    """Bars of one symbol and timeframe, oldest first (``ts`` = open time, ms)."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    @classmethod
    def of(cls, k: Klines) -> Series:
        return cls(k.ts, k.open, k.high, k.low, k.close, k.volume)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def closed(self, now_ms: int, tf_ms: int) -> int:
        """How many bars have closed at ``now_ms``."""
        return int(np.searchsorted(self.ts, now_ms - tf_ms, side="right"))

    def klines(self, symbol: str, timeframe: str, lo: int, hi: int) -> Klines:
        return Klines(symbol, timeframe, self.ts[lo:hi], self.open[lo:hi], self.high[lo:hi], self.low[lo:hi],
                      self.close[lo:hi], self.volume[lo:hi])


@dataclass(frozen=True, slots=True)
class Funding:
    """Funding events of one symbol: times (ms) and rates (fraction per event; > 0: longs pay)."""

    ts: I64
    rate: F64


@dataclass(frozen=True)
class MarketData:
    """Everything a backtest reads, loaded once."""

    source: str  # e.g. "sim seed 7" or "replay /data/btc"
    markets: Mapping[str, Market]
    series: dict[tuple[str, str], Series]
    finest: Mapping[str, str]  # symbol → finest timeframe loaded (fills, exits)
    spread_bps: Mapping[str, float]  # full bid/ask spread per symbol (bps)
    funding: dict[str, Funding] = field(default_factory=dict)
    funding_source: str = "assumed"
    oracle: OracleFn | None = None
    loader: Callable[[str, str], Series] | None = None  # lazily loads a series (the I/O edge)
    ticker_from_finest: bool = False  # replay: 24h tickers from the finest series, as ReplayExchange does
    funding_loader: Callable[[str, int, int], Funding | None] | None = None  # the source's own settlements
    assumed_funding: set[str] = field(default_factory=set)  # symbols charged DEFAULT_FUNDING_RATE (no source)

    def get(self, symbol: str, timeframe: str) -> Series:
        key = (symbol, timeframe)
        s = self.series.get(key)
        if s is None:
            if self.loader is None:
                raise ExchangeError(f"no {timeframe} bars loaded for {symbol}", reason="no_data")
            s = self.loader(symbol, timeframe)
            self.series[key] = s
        return s

    def funding_for(self, symbol: str, start_ms: int, end_ms: int) -> Funding:
        f = self.funding.get(symbol)
        if f is not None:
            return f
        if self.funding_loader is not None:
            f = self.funding_loader(symbol, start_ms, end_ms)
            if f is not None:
                self.funding[symbol] = f
                return f
        first = -(-start_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        ts = np.arange(first, end_ms + 1, FUNDING_INTERVAL_MS, dtype=np.int64)
        f = Funding(ts=ts, rate=np.full(ts.shape[0], DEFAULT_FUNDING_RATE))
        self.funding[symbol] = f
        self.assumed_funding.add(symbol)
        return f

    def known_settlements(self, symbol: str, *, start_ms: int, end_ms: int, now_ms: int) -> list[FundingRate]:
        """The source's last two settlements at or before ``now_ms`` — what the live router's exchange
        call returns — or none when the source has no funding (the charged default is an assumption
        of the backtest's, not something a live router would know)."""
        f = self.funding_for(symbol, start_ms, end_ms)
        if symbol in self.assumed_funding:
            return []
        i = int(np.searchsorted(f.ts, now_ms, side="right"))
        return [FundingRate(ts=int(f.ts[j]), rate=float(f.rate[j])) for j in range(max(0, i - 2), i)]


class FrozenExchange:
    """:class:`MarketData` as an Exchange under a clock: closed bars only, no orders (the backtest fills)."""

    name: str = "backtest"

    def __init__(self, data: MarketData, *, clock: Clock, timeframes: Sequence[str]) -> None:
        self.data = data
        self.clock = clock
        self._ticker_tf = min(timeframes, key=lambda tf: TIMEFRAME_MS[tf])

    async def markets(self) -> list[Market]:
        return list(self.data.markets.values())

    def tickers_at(self, now: int) -> dict[str, Ticker]:
        out: dict[str, Ticker] = {}
        for symbol in self.data.markets:
            tf = self.data.finest[symbol] if self.data.ticker_from_finest else self._ticker_tf
            tf_ms = TIMEFRAME_MS[tf]
            try:
                s = self.data.get(symbol, tf)
            except ExchangeError:
                continue
            n = s.closed(now, tf_ms)
            if n == 0:
                continue
            lo = int(np.searchsorted(s.ts, now - 86_400_000, side="left"))
            last = float(s.close[n - 1])
            half = last * self.data.spread_bps.get(symbol, REPLAY_SPREAD_BPS) / 2e4
            qv = float(np.dot(s.close[lo:n], s.volume[lo:n]))
            out[symbol] = Ticker(symbol=symbol, last=last, quote_volume_24h=qv, bid=last - half, ask=last + half,
                                 ts=now)
        return out

    async def tickers(self) -> dict[str, Ticker]:
        return self.tickers_at(self.clock.now_ms())

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        now = self.clock.now_ms()
        end = now if end_ms is None else min(end_ms, now)
        s = self.data.get(symbol, timeframe)
        n = s.closed(end, TIMEFRAME_MS[timeframe])
        return s.klines(symbol, timeframe, max(0, n - limit), n)

    async def backfill(self, symbol: str, timeframe: str) -> None:
        await asyncio.sleep(0)  # recorded history cannot be repaired

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        now = self.clock.now_ms()
        out: dict[str, float] = {}
        for sym in symbols:
            s = self.data.get(sym, self.data.finest[sym])
            n = s.closed(now, TIMEFRAME_MS[self.data.finest[sym]])
            if n:
                out[sym] = float(s.close[n - 1])
        return out

    async def mark_prices_each(self, symbols: list[str]) -> PerSymbol[float]:
        return await per_symbol(symbols, self._mark_one)

    async def _mark_one(self, symbol: str) -> float:
        marks = await self.mark_prices([symbol])
        if symbol not in marks:
            raise ExchangeError(f"no {symbol} bar closed before now", reason="no_data")
        return marks[symbol]

    async def klines_each(
        self, symbols: list[str], timeframe: str, *, limit: int, end_ms: int | None = None
    ) -> PerSymbol[Klines]:
        return await per_symbol(symbols, lambda s: self.klines(s, timeframe, limit=limit, end_ms=end_ms))

    async def positions(self) -> list[Position]:
        return []

    async def place_order(self, order: OrderRequest) -> OrderResult:
        raise ExchangeError("the backtest fills orders itself", reason="not_supported")

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        return None

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


# -- loading (the I/O edge) -----------------------------------------------------------------------


def _restrict(markets: Iterable[Market], symbols: Sequence[str] | None) -> dict[str, Market]:
    all_markets = {m.symbol: m for m in markets}
    if not symbols:
        return all_markets
    unknown = [s for s in symbols if s not in all_markets]
    if unknown:
        raise ExchangeError(f"--symbols: unknown symbol {unknown[0]}", reason="unknown_symbol")
    return {s: all_markets[s] for s in symbols}


def load_sim(
    settings: ExchangeSettings, *, start_ms: int, end_ms: int, warmup_ms: int, symbols: Sequence[str] | None = None
) -> MarketData:
    """The sim's bars opening in [start_ms − warmup_ms, end_ms), generated lazily per series; 1m (the
    finest, for fills and exits) only from ``start_ms``."""
    from quantum_trader.core.clock import DataClock
    from quantum_trader.market.sim import SimExchange

    ex = SimExchange(settings, clock=DataClock(end_ms))
    markets = _restrict([m for m in asyncio.run(ex.markets())], symbols)

    def loader(symbol: str, timeframe: str) -> Series:
        first = start_ms if timeframe == "1m" else start_ms - warmup_ms
        return Series.of(ex.history(symbol, timeframe, start_ms=first, end_ms=end_ms))

    spread = {s: ex.model.character(s).spread_bps for s in markets}

    def oracle(symbol: str, timeframe: str, ts: I64, horizon: int) -> F64:
        return ex.oracle_probability(symbol, timeframe, ts, horizon)

    def funding(symbol: str, first: int, last: int) -> Funding:
        with ex.model.lock:
            rates = ex.model.funding(symbol, first_ts=first, last_ts=last)
        return _funding_of(rates)

    return MarketData(
        source=f"sim seed {settings.seed}", markets=markets, series={}, finest={s: "1m" for s in markets},
        spread_bps=spread, oracle=oracle, loader=loader, funding_loader=funding,
        funding_source="the sim's own settlements (8 h)",
    )


def _funding_of(rates: Sequence[FundingRate]) -> Funding:
    return Funding(ts=np.asarray([r.ts for r in rates], dtype=np.int64),
                   rate=np.asarray([r.rate for r in rates], dtype=np.float64))


def load_replay(settings: ExchangeSettings, *, symbols: Sequence[str] | None = None) -> MarketData:
    """The replay folder's series (parsed lazily, once each) and any ``<SYMBOL>_funding.csv``."""
    from quantum_trader.core.clock import DataClock
    from quantum_trader.market.replay import ReplayExchange

    ex = ReplayExchange(settings, clock=DataClock(2**62))
    markets = _restrict(asyncio.run(ex.markets()), symbols)
    finest = {s: ex._finest(s) for s in markets}

    def loader(symbol: str, timeframe: str) -> Series:
        s = ex._load(symbol, timeframe)
        o, h, lo, c, v = s.ohlcv
        return Series(s.ts, o, h, lo, c, v)

    from quantum_trader.market.replay import _parse_funding

    funding: dict[str, Funding] = {}
    for s in markets:
        path = ex._funding_files.get(s)
        if path is not None:
            funding[s] = _funding_of(_parse_funding(path))
    source = "recorded (<SYMBOL>_funding.csv)" if funding else "assumed"
    return MarketData(
        source=f"replay {ex.folder}", markets=markets, series={}, finest=finest,
        spread_bps={s: REPLAY_SPREAD_BPS for s in markets}, funding=funding, funding_source=source, loader=loader,
        ticker_from_finest=True,
    )


def replay_range(settings: ExchangeSettings) -> tuple[int, int]:
    """(first bar open, last bar close) of a replay folder."""
    from quantum_trader.core.clock import DataClock
    from quantum_trader.market.replay import ReplayExchange

    return ReplayExchange(settings, clock=DataClock(0)).time_range()
