"""The Exchange Protocol every market adapter implements (sim, replay, binanceusdm).

Data types are frozen dataclasses; klines come back as numpy arrays so features
can be computed over all symbols at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

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
