"""The Exchange Protocol every market adapter implements (sim, replay, binanceusdm).

Data types are frozen dataclasses; klines come back as numpy arrays so features
can be computed over all symbols at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}

AssetClass = Literal["major", "alt", "stable"]


class ExchangeError(RuntimeError):
    """An exchange call failed. ``reason`` is a reason code (``rate_limited``, ``min_notional``, ...)."""

    def __init__(self, message: str, *, reason: str = "exchange_error", endpoint: str = "") -> None:
        self.reason = reason
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


@dataclass(frozen=True, slots=True)
class Market:
    """One tradable contract with its order filters."""

    symbol: str  # e.g. BTCUSDT
    base: str  # e.g. BTC
    quote: str  # e.g. USDT
    contract: Literal["perpetual", "delivery", "spot"]
    status: Literal["TRADING", "SETTLING", "BREAK"]
    tick_size: float
    step_size: float
    min_notional: float
    max_qty: float
    min_qty: float
    asset_class: AssetClass = "alt"
    onboard_ms: int = 0


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: float
    quote_volume_24h: float
    bid: float
    ask: float
    ts: int


@dataclass(frozen=True, slots=True)
class Klines:
    """OHLCV bars of one symbol and timeframe, oldest first; ``ts`` is each bar's open time (ms)."""

    symbol: str
    timeframe: str
    ts: npt.NDArray[np.int64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


#: One OHLCV bar: (open time ms, open, high, low, close, volume).
Bar = tuple[int, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class FundingRate:
    """One perpetual funding settlement: its time (ms) and the rate, a fraction of the position's
    notional paid by longs to shorts when positive (0.0001 = 1 bp per settlement)."""

    ts: int
    rate: float


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    side: Literal["BUY", "SELL"]
    qty: float
    entry_price: float
    unrealized_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: Literal["BUY", "SELL"]
    qty: float
    client_order_id: str
    reduce_only: bool = False
    order_type: Literal["MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"] = "MARKET"
    stop_price: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_id: str
    client_order_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    status: Literal["FILLED", "REJECTED", "NEW", "CANCELED"]
    qty: float
    price: float
    fee_usd: float
    reason: str = "none"
    extra: dict[str, str] = field(default_factory=dict)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SymbolFailure:
    """Why one symbol of a many-symbol call got no result (``unknown_symbol``, ``rate_limited``, ...)."""

    symbol: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PerSymbol(Generic[T]):
    """The outcome of a call covering many symbols: a value per symbol that worked, a failure per
    symbol that did not. Every requested symbol is in exactly one of the two."""

    values: dict[str, T]
    failures: dict[str, SymbolFailure] = field(default_factory=dict)


async def per_symbol(symbols: list[str], fetch: Callable[[str], Awaitable[T]]) -> PerSymbol[T]:
    """Call ``fetch`` once per symbol (in order); an :class:`ExchangeError` is that symbol's failure.

    ``invalid_symbol`` (the exchange does not know the name) is reported as ``unknown_symbol``.
    """
    values: dict[str, T] = {}
    failures: dict[str, SymbolFailure] = {}
    for s in dict.fromkeys(symbols):
        try:
            values[s] = await fetch(s)
        except ExchangeError as exc:
            reason = "unknown_symbol" if exc.reason in ("invalid_symbol", "unknown_symbol") else exc.reason
            failures[s] = SymbolFailure(s, reason, str(exc)[:200])
    return PerSymbol(values=values, failures=failures)


async def mark_prices_each(exchange: object, symbols: list[str]) -> PerSymbol[float]:
    """Mark prices with per-symbol failures from any exchange: its own ``mark_prices_each`` when it
    has one, else one ``mark_prices`` call for all and, if that fails, one call per symbol."""
    own = getattr(exchange, "mark_prices_each", None)
    if own is not None:
        result: PerSymbol[float] = await own(symbols)
        return result
    fetch_many: Callable[[list[str]], Awaitable[dict[str, float]]] = exchange.mark_prices  # type: ignore[attr-defined]
    try:
        marks = await fetch_many(symbols)
    except ExchangeError:
        return await per_symbol(symbols, lambda s: _one_mark(fetch_many, s))
    missing = {s: SymbolFailure(s, "unknown_symbol", "no mark price") for s in symbols if s not in marks}
    return PerSymbol(values={s: marks[s] for s in symbols if s in marks}, failures=missing)


async def _one_mark(fetch_many: Callable[[list[str]], Awaitable[dict[str, float]]], symbol: str) -> float:
    marks = await fetch_many([symbol])
    if symbol not in marks:
        raise ExchangeError(f"no mark price for {symbol}", reason="unknown_symbol")
    return marks[symbol]


@runtime_checkable
class FundingSource(Protocol):
    """Perpetual funding settlements (sim, replay, binanceusdm): what a backtest or executor charges."""

    async def funding_rates(self, symbol: str, *, since_ms: int, until_ms: int) -> list[FundingRate]:
        """Settlements of ``symbol`` with times in [since_ms, until_ms] that happened by now, oldest first."""
        ...


@runtime_checkable
class Exchange(Protocol):
    """What workers need from an exchange. Every method may raise :class:`ExchangeError`."""

    name: str

    async def markets(self) -> list[Market]:
        """All listed contracts with filters (callers filter to trading USDT perpetuals)."""
        ...

    async def tickers(self) -> dict[str, Ticker]:
        """24h tickers keyed by symbol."""
        ...

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        """The last ``limit`` closed bars up to ``end_ms`` (default: now)."""
        ...

    async def backfill(self, symbol: str, timeframe: str) -> None:
        """Repair missing/stale history of a symbol (no-op where history is always complete)."""
        ...

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        """Mark prices of all ``symbols``; raises if any one cannot be priced (see :meth:`mark_prices_each`)."""
        ...

    async def mark_prices_each(self, symbols: list[str]) -> PerSymbol[float]:
        """Mark prices per symbol: an unknown/delisted/failing symbol is a failure with its reason
        (``unknown_symbol`` ...), never an exception that costs the other symbols their price."""
        ...

    async def klines_each(
        self, symbols: list[str], timeframe: str, *, limit: int, end_ms: int | None = None
    ) -> PerSymbol[Klines]:
        """:meth:`klines` for many symbols with per-symbol failures."""
        ...

    async def positions(self) -> list[Position]:
        ...

    async def place_order(self, order: OrderRequest) -> OrderResult:
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The order with this client id, or None if the exchange never saw it."""
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        ...

    async def close(self) -> None:
        ...
