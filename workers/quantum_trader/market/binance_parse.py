"""Pure functions for the Binance USDⓈ-M adapter: parse documented REST replies, map errors, plan retries.

Nothing here does I/O. Every parser takes the decoded JSON of one endpoint and
returns frozen data, or raises :class:`ExchangeError` naming the endpoint when
the reply does not have the documented shape (never a silent default).
Formats: https://developers.binance.com/docs/derivatives/usds-margined-futures
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from quantum_trader.market.base import (
    AssetClass,
    ExchangeError,
    Klines,
    Market,
    OrderRequest,
    OrderResult,
    Position,
    Ticker,
)

# -- endpoints -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint: the ccxt implicit method that calls it, its label, who may call it."""

    method: str  # ccxt implicit API method, e.g. fapiPublicGetKlines
    label: str  # "GET /fapi/v1/klines" (metrics label and error text)
    private: bool = False


ENDPOINTS: Final[dict[str, Endpoint]] = {
    "exchangeInfo": Endpoint("fapiPublicGetExchangeInfo", "GET /fapi/v1/exchangeInfo"),
    "klines": Endpoint("fapiPublicGetKlines", "GET /fapi/v1/klines"),
    "ticker24hr": Endpoint("fapiPublicGetTicker24hr", "GET /fapi/v1/ticker/24hr"),
    "bookTicker": Endpoint("fapiPublicGetTickerBookTicker", "GET /fapi/v1/ticker/bookTicker"),
    "premiumIndex": Endpoint("fapiPublicGetPremiumIndex", "GET /fapi/v1/premiumIndex"),
    "positionRisk": Endpoint("fapiPrivateV3GetPositionRisk", "GET /fapi/v3/positionRisk", private=True),
    "balance": Endpoint("fapiPrivateV3GetBalance", "GET /fapi/v3/balance", private=True),
    "openOrders": Endpoint("fapiPrivateGetOpenOrders", "GET /fapi/v1/openOrders", private=True),
    "orderPost": Endpoint("fapiPrivatePostOrder", "POST /fapi/v1/order", private=True),
    "orderGet": Endpoint("fapiPrivateGetOrder", "GET /fapi/v1/order", private=True),
    "orderDelete": Endpoint("fapiPrivateDeleteOrder", "DELETE /fapi/v1/order", private=True),
    "algoOrderPost": Endpoint("fapiPrivatePostAlgoOrder", "POST /fapi/v1/algoOrder", private=True),
    "algoOrderGet": Endpoint("fapiPrivateGetAlgoOrder", "GET /fapi/v1/algoOrder", private=True),
    "algoOrderDelete": Endpoint("fapiPrivateDeleteAlgoOrder", "DELETE /fapi/v1/algoOrder", private=True),
    "userTrades": Endpoint("fapiPrivateGetUserTrades", "GET /fapi/v1/userTrades", private=True),
}


def request_weight(name: str, params: Mapping[str, str]) -> int:
    """Binance's documented IP request weight of one call (what the shared budget counts)."""
    has_symbol = "symbol" in params
    if name == "klines":
        limit = int(params.get("limit", "500"))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if name == "ticker24hr":
        return 1 if has_symbol else 40
    if name == "bookTicker":
        return 2 if has_symbol else 5
    if name == "premiumIndex":
        return 1 if has_symbol else 10
    if name == "openOrders":
        return 1 if has_symbol else 40
    if name in ("positionRisk", "balance", "userTrades"):
        return 5
    if name in ("orderPost", "algoOrderPost"):
        return 0  # counted against the order-rate limit, not the IP weight
    return 1


# -- reason codes ----------------------------------------------------------------------------------

REASON_CODES: Final = (
    "min_notional",
    "insufficient_margin",
    "price_filter",
    "lot_size",
    "reduce_only_rejected",
    "rate_limited",
    "invalid_symbol",
    "timeout",
    "order_not_found",
    "duplicate_client_order_id",
    "auth_failed",
    "missing_credentials",
    "network",
    "malformed_response",
    "exchange_error",
)
#: Reasons after which an order's fate is unknown: look it up by client order id before resubmitting.
OUTCOME_UNKNOWN: Final = frozenset({"timeout", "network", "rate_limited"})
#: Reasons worth retrying for idempotent (read) calls.
TRANSIENT: Final = frozenset({"timeout", "network", "rate_limited"})

_CODE_REASONS: Final[dict[int, str]] = {
    -4164: "min_notional",
    -2019: "insufficient_margin",
    -2018: "insufficient_margin",
    -4014: "price_filter",
    -4013: "price_filter",
    -4016: "price_filter",
    -4024: "price_filter",
    -4003: "lot_size",
    -4005: "lot_size",
    -4023: "lot_size",
    -2022: "reduce_only_rejected",
    -4118: "reduce_only_rejected",
    -1003: "rate_limited",
    -1015: "rate_limited",
    -1121: "invalid_symbol",
    -4140: "invalid_symbol",
    -1007: "timeout",
    -2013: "order_not_found",
    -2011: "order_not_found",
    -4116: "duplicate_client_order_id",
    -2014: "auth_failed",
    -2015: "auth_failed",
    -1022: "auth_failed",
}
_MSG_REASONS: Final[tuple[tuple[str, str], ...]] = (
    ("min_notional", "min_notional"),
    ("notional must be no smaller", "min_notional"),
    ("margin is insufficient", "insufficient_margin"),
    ("balance is insufficient", "insufficient_margin"),
    ("price_filter", "price_filter"),
    ("tick size", "price_filter"),
    ("market_lot_size", "lot_size"),
    ("lot_size", "lot_size"),
    ("step size", "lot_size"),
    ("reduceonly order is rejected", "reduce_only_rejected"),
    ("too many requests", "rate_limited"),
    ("too much request weight", "rate_limited"),
    ("invalid symbol", "invalid_symbol"),
    ("timeout waiting for response", "timeout"),
    ("order does not exist", "order_not_found"),
    ("unknown order sent", "order_not_found"),
)
_CODE_RE: Final = re.compile(r'"code"\s*:\s*"?(-?\d+)')


def binance_code(text: str) -> int | None:
    """The ``code`` of a Binance error body embedded in an exception text, if any."""
    m = _CODE_RE.search(text)
    return int(m.group(1)) if m else None


ErrorKind = Literal["timeout", "rate_limit", "network", "auth", "order_not_found", "bad_symbol", "other"]


def reason_for_error(*, kind: ErrorKind, message: str, http_status: int | None = None) -> str:
    """Map one failed call to a reason code: Binance's error code first, then its text, then the kind."""
    code = binance_code(message)
    if code is not None and code in _CODE_REASONS:
        return _CODE_REASONS[code]
    if http_status in (418, 429):
        return "rate_limited"
    lowered = message.lower()
    for needle, reason in _MSG_REASONS:
        if needle in lowered:
            return reason
    return {
        "timeout": "timeout",
        "rate_limit": "rate_limited",
        "network": "network",
        "auth": "auth_failed",
        "order_not_found": "order_not_found",
        "bad_symbol": "invalid_symbol",
        "other": "exchange_error",
    }[kind]


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter: attempt 0 → [0, base), doubling up to ``cap``; rand in [0, 1)."""
    return min(cap, base * (2.0**attempt)) * (0.5 + rand / 2.0)


# -- JSON shape helpers ----------------------------------------------------------------------------


def _fail(endpoint: str, what: str) -> ExchangeError:
    return ExchangeError(f"unexpected response: {what}", reason="malformed_response", endpoint=endpoint)


def _as_list(raw: object, endpoint: str) -> list[object]:
    if not isinstance(raw, list):
        raise _fail(endpoint, f"expected a JSON array, got {type(raw).__name__}")
    return raw


def _as_dict(raw: object, endpoint: str, what: str = "object") -> dict[str, object]:
    if not isinstance(raw, dict):
        raise _fail(endpoint, f"expected a JSON {what}, got {type(raw).__name__}")
    return raw


def _num(obj: Mapping[str, object], key: str, endpoint: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or value is None:
        raise _fail(endpoint, f"field {key!r} missing or not a number ({value!r})")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _fail(endpoint, f"field {key!r} is not a number ({value!r})") from None
    if not math.isfinite(out):
        raise _fail(endpoint, f"field {key!r} is not finite ({value!r})")
    return out


def _int(obj: Mapping[str, object], key: str, endpoint: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(endpoint, f"field {key!r} missing or not an integer ({value!r})")
    try:
        return int(value)
    except ValueError:
        raise _fail(endpoint, f"field {key!r} is not an integer ({value!r})") from None


def _str(obj: Mapping[str, object], key: str, endpoint: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(endpoint, f"field {key!r} missing or not a string ({value!r})")
    return value


# -- markets -------------------------------------------------------------------------------------

MAJORS: Final = frozenset({"BTC", "ETH"})
STABLES: Final = frozenset({"USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USDE", "PAXG", "XAUT", "EUR"})
_PERPETUAL: Final = frozenset({"PERPETUAL", "TRADIFI_PERPETUAL"})
_STATUS: Final[dict[str, Literal["TRADING", "SETTLING", "BREAK"]]] = {
    "TRADING": "TRADING",
    "PRE_SETTLE": "SETTLING",
    "SETTLING": "SETTLING",
    "PRE_DELIVERING": "SETTLING",
    "DELIVERING": "SETTLING",
    "DELIVERED": "SETTLING",
}


def asset_class(base: str) -> AssetClass:
    """major for BTC/ETH, stable for pegged assets (USD stables, gold), alt otherwise."""
    if base in MAJORS:
        return "major"
    if base in STABLES:
        return "stable"
    return "alt"


def parse_exchange_info(raw: object, *, endpoint: str = ENDPOINTS["exchangeInfo"].label) -> list[Market]:
    """``/fapi/v1/exchangeInfo`` → markets with filters.

    tick size ← PRICE_FILTER.tickSize; step size ← LOT_SIZE.stepSize; min notional ←
    MIN_NOTIONAL.notional; min/max qty: MARKET_LOT_SIZE (the executor sends MARKET
    orders) intersected with LOT_SIZE. A symbol without PRICE_FILTER or LOT_SIZE is
    malformed and raises.
    """
    body = _as_dict(raw, endpoint)
    symbols = body.get("symbols")
    if not isinstance(symbols, list):
        raise _fail(endpoint, "field 'symbols' missing or not an array")
    out: list[Market] = []
    for entry in symbols:
        s = _as_dict(entry, endpoint, "symbol object")
        symbol = _str(s, "symbol", endpoint)
        filters_raw = s.get("filters")
        if not isinstance(filters_raw, list):
            raise _fail(endpoint, f"{symbol}: 'filters' missing")
        filters: dict[str, dict[str, object]] = {}
        for f in filters_raw:
            fd = _as_dict(f, endpoint, "filter object")
            filters[str(fd.get("filterType", ""))] = fd
        if "PRICE_FILTER" not in filters or "LOT_SIZE" not in filters:
            raise _fail(endpoint, f"{symbol}: PRICE_FILTER or LOT_SIZE filter missing")
        lot = filters["LOT_SIZE"]
        market_lot = filters.get("MARKET_LOT_SIZE", lot)
        min_notional = _num(filters["MIN_NOTIONAL"], "notional", endpoint) if "MIN_NOTIONAL" in filters else 0.0
        contract_type = str(s.get("contractType", ""))
        base = _str(s, "baseAsset", endpoint)
        out.append(
            Market(
                symbol=symbol,
                base=base,
                quote=_str(s, "quoteAsset", endpoint),
                contract="perpetual" if contract_type in _PERPETUAL else "delivery",
                status=_STATUS.get(str(s.get("status", "")), "BREAK"),
                tick_size=_num(filters["PRICE_FILTER"], "tickSize", endpoint),
                step_size=_num(lot, "stepSize", endpoint),
                min_notional=min_notional,
                max_qty=min(_num(lot, "maxQty", endpoint), _num(market_lot, "maxQty", endpoint)),
                min_qty=max(_num(lot, "minQty", endpoint), _num(market_lot, "minQty", endpoint)),
                asset_class=asset_class(base),
                onboard_ms=_int(s, "onboardDate", endpoint) if "onboardDate" in s else 0,
            )
        )
    return out


def _decimals(step: float) -> int:
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def round_to_step(value: float, step: float) -> float:
    """Round ``value`` down to a multiple of ``step`` (quantities: never more than asked)."""
    if step <= 0:
        return value
    n = math.floor(value / step + 1e-9)
    return round(n * step, _decimals(step))


def round_to_tick(price: float, tick: float) -> float:
    """Round ``price`` to the nearest multiple of ``tick``."""
    if tick <= 0:
        return price
    return round(round(price / tick) * tick, _decimals(tick))


def format_decimal(value: float, step: float) -> str:
    """A number as Binance wants it: plain decimal with the step's precision, no exponent."""
    return f"{value:.{_decimals(step)}f}" if step > 0 else repr(value)


# -- klines ----------------------------------------------------------------------------------------

INTERVAL_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
KLINES_PAGE_LIMIT: Final = 1500


@dataclass(frozen=True, slots=True)
class KlineWindow:
    """The closed bars wanted: open times first_open .. last_open (inclusive), step ``tf_ms``."""

    first_open: int
    last_open: int
    tf_ms: int

    @property
    def bars(self) -> int:
        return (self.last_open - self.first_open) // self.tf_ms + 1


def kline_window(*, timeframe: str, limit: int, end_ms: int) -> KlineWindow:
    """The last ``limit`` bars that are closed at ``end_ms`` (a bar closes at open + tf)."""
    if timeframe not in INTERVAL_MS:
        raise ExchangeError(f"unsupported timeframe {timeframe!r}", reason="exchange_error", endpoint="klines")
    tf = INTERVAL_MS[timeframe]
    last_open = (end_ms // tf) * tf - tf
    return KlineWindow(first_open=last_open - (max(1, limit) - 1) * tf, last_open=last_open, tf_ms=tf)


Bar = tuple[int, float, float, float, float, float]


def parse_klines(raw: object, *, endpoint: str = ENDPOINTS["klines"].label) -> list[Bar]:
    """``/fapi/v1/klines`` rows ``[openTime, "o", "h", "l", "c", "v", closeTime, ...]`` → bars."""
    out: list[Bar] = []
    for row in _as_list(raw, endpoint):
        if not isinstance(row, list) or len(row) < 6:
            raise _fail(endpoint, f"kline row is not an array of >= 6 items ({row!r:.80})")
        try:
            ts = int(row[0])
            o, h, lo, c, v = (float(x) for x in row[1:6])
        except (TypeError, ValueError):
            raise _fail(endpoint, f"kline row has non-numeric values ({row!r:.80})") from None
        if not all(math.isfinite(x) for x in (o, h, lo, c, v)):
            raise _fail(endpoint, f"kline row has non-finite values ({row!r:.80})")
        out.append((ts, o, h, lo, c, v))
    return out


def merge_bars(*pages: Sequence[Bar], window: KlineWindow) -> list[Bar]:
    """Union of pages, deduplicated by open time, inside the window, oldest first."""
    by_ts: dict[int, Bar] = {}
    for page in pages:
        for bar in page:
            if window.first_open <= bar[0] <= window.last_open:
                by_ts[bar[0]] = bar
    return [by_ts[t] for t in sorted(by_ts)]


def missing_ranges(ts: Sequence[int], *, tf_ms: int) -> list[tuple[int, int]]:
    """Gaps inside a sorted series of open times: [(first missing open, last missing open), ...]."""
    gaps: list[tuple[int, int]] = []
    for prev, nxt in itertools.pairwise(ts):
        if nxt - prev > tf_ms:
            gaps.append((prev + tf_ms, nxt - tf_ms))
    return gaps


def bars_to_klines(bars: Sequence[Bar], *, symbol: str, timeframe: str) -> Klines:
    arr = np.asarray([b[1:] for b in bars], dtype=np.float64).reshape(len(bars), 5)
    return Klines(
        symbol=symbol,
        timeframe=timeframe,
        ts=np.asarray([b[0] for b in bars], dtype=np.int64),
        open=arr[:, 0].copy(),
        high=arr[:, 1].copy(),
        low=arr[:, 2].copy(),
        close=arr[:, 3].copy(),
        volume=arr[:, 4].copy(),
    )


# -- tickers, mark prices, positions, balances -----------------------------------------------------


def parse_tickers(
    raw_24h: object,
    raw_book: object,
    *,
    endpoint_24h: str = ENDPOINTS["ticker24hr"].label,
    endpoint_book: str = ENDPOINTS["bookTicker"].label,
) -> dict[str, Ticker]:
    """``/fapi/v1/ticker/24hr`` (last, quoteVolume) joined with ``/fapi/v1/ticker/bookTicker`` (bid, ask).

    A symbol missing from the book ticker gets bid = ask = last.
    """
    book: dict[str, tuple[float, float]] = {}
    for entry in _as_list(raw_book, endpoint_book):
        b = _as_dict(entry, endpoint_book)
        book[_str(b, "symbol", endpoint_book)] = (
            _num(b, "bidPrice", endpoint_book),
            _num(b, "askPrice", endpoint_book),
        )
    out: dict[str, Ticker] = {}
    for entry in _as_list(raw_24h, endpoint_24h):
        t = _as_dict(entry, endpoint_24h)
        symbol = _str(t, "symbol", endpoint_24h)
        last = _num(t, "lastPrice", endpoint_24h)
        bid, ask = book.get(symbol, (last, last))
        out[symbol] = Ticker(
            symbol=symbol,
            last=last,
            quote_volume_24h=_num(t, "quoteVolume", endpoint_24h),
            bid=bid,
            ask=ask,
            ts=_int(t, "closeTime", endpoint_24h),
        )
    return out


def parse_mark_prices(raw: object, *, endpoint: str = ENDPOINTS["premiumIndex"].label) -> dict[str, float]:
    """``/fapi/v1/premiumIndex`` (one object with ``symbol=``, else an array) → symbol → mark price."""
    entries = [raw] if isinstance(raw, dict) else _as_list(raw, endpoint)
    out: dict[str, float] = {}
    for entry in entries:
        p = _as_dict(entry, endpoint)
        out[_str(p, "symbol", endpoint)] = _num(p, "markPrice", endpoint)
    return out


def parse_positions(raw: object, *, endpoint: str = ENDPOINTS["positionRisk"].label) -> list[Position]:
    """``/fapi/v3/positionRisk`` → open positions (zero amounts skipped; one-way or hedge mode)."""
    out: list[Position] = []
    for entry in _as_list(raw, endpoint):
        p = _as_dict(entry, endpoint)
        amt = _num(p, "positionAmt", endpoint)
        if amt == 0.0:
            continue
        out.append(
            Position(
                symbol=_str(p, "symbol", endpoint),
                side="BUY" if amt > 0 else "SELL",
                qty=abs(amt),
                entry_price=_num(p, "entryPrice", endpoint),
                unrealized_pnl=_num(p, "unRealizedProfit", endpoint),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    wallet: float  # wallet balance
    available: float  # available for new margin
    unrealized_pnl: float


def parse_balances(raw: object, *, endpoint: str = ENDPOINTS["balance"].label) -> dict[str, Balance]:
    """``/fapi/v3/balance`` → asset → balance."""
    out: dict[str, Balance] = {}
    for entry in _as_list(raw, endpoint):
        b = _as_dict(entry, endpoint)
        asset = _str(b, "asset", endpoint)
        out[asset] = Balance(
            asset=asset,
            wallet=_num(b, "balance", endpoint),
            available=_num(b, "availableBalance", endpoint),
            unrealized_pnl=_num(b, "crossUnPnl", endpoint) if "crossUnPnl" in b else 0.0,
        )
    return out


# -- orders ----------------------------------------------------------------------------------------

CONDITIONAL_TYPES: Final = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
_ORDER_STATUS: Final[dict[str, Literal["FILLED", "REJECTED", "NEW", "CANCELED"]]] = {
    "NEW": "NEW",
    "PARTIALLY_FILLED": "NEW",
    "FILLED": "FILLED",
    "CANCELED": "CANCELED",
    "EXPIRED": "CANCELED",
    "EXPIRED_IN_MATCH": "CANCELED",
    "REJECTED": "REJECTED",
    # algo (conditional) orders
    "TRIGGERING": "NEW",
    "TRIGGERED": "FILLED",
    "FINISHED": "FILLED",
}


_CLIENT_ID_RE: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def binance_client_id(client_order_id: str) -> str:
    """The id Binance accepts (``^[.A-Z:/a-z0-9_-]{1,36}$``): the id itself when valid, else a
    deterministic ``qt-`` + 32 hex digest (so a lookup after a restart finds the same order)."""
    if _CLIENT_ID_RE.match(client_order_id):
        return client_order_id
    return "qt-" + hashlib.sha256(client_order_id.encode("utf-8")).hexdigest()[:32]


def order_params(order: OrderRequest, *, step_size: float = 0.0, tick_size: float = 0.0) -> dict[str, str]:
    """Request parameters of ``POST /fapi/v1/order`` (MARKET) or ``POST /fapi/v1/algoOrder`` (SL/TP).

    The intent id is the client order id (``newClientOrderId`` / ``clientAlgoId``):
    Binance refuses a second open order with the same id, and it is how an order
    whose reply was lost is found again.
    """
    qty = format_decimal(order.qty, step_size) if step_size > 0 else f"{order.qty:f}".rstrip("0").rstrip(".")
    params: dict[str, str] = {"symbol": order.symbol, "side": order.side, "type": order.order_type, "quantity": qty}
    if order.order_type in CONDITIONAL_TYPES:
        if order.stop_price <= 0:
            raise ExchangeError(
                f"{order.order_type} needs a stop price", reason="price_filter", endpoint="POST /fapi/v1/algoOrder"
            )
        params["algoType"] = "CONDITIONAL"
        params["clientAlgoId"] = binance_client_id(order.client_order_id)
        params["triggerPrice"] = (
            format_decimal(order.stop_price, tick_size) if tick_size > 0 else repr(order.stop_price)
        )
        params["workingType"] = "MARK_PRICE"
        params["reduceOnly"] = "true"  # a stop-loss / take-profit only ever reduces
    else:
        params["newClientOrderId"] = binance_client_id(order.client_order_id)
        params["newOrderRespType"] = "RESULT"
        if order.reduce_only:
            params["reduceOnly"] = "true"
    return params


def _side(obj: Mapping[str, object], endpoint: str) -> Literal["BUY", "SELL"]:
    side = obj.get("side")
    if side == "BUY":
        return "BUY"
    if side == "SELL":
        return "SELL"
    raise _fail(endpoint, f"field 'side' is not BUY/SELL ({side!r})")


def parse_order(raw: object, *, endpoint: str) -> OrderResult:
    """An order object (``/fapi/v1/order``) or an algo order (``/fapi/v1/algoOrder``) → :class:`OrderResult`.

    qty is the executed quantity once anything executed (else the ordered quantity);
    price is the average fill price (0 when nothing filled). Fees come from the trades.
    """
    o = _as_dict(raw, endpoint)
    if "algoId" in o:
        status_raw = _str(o, "algoStatus", endpoint)
        extra = {"binance_status": status_raw, "algo": "true"}
        if o.get("actualOrderId") not in (None, ""):
            extra["actual_order_id"] = str(o.get("actualOrderId"))
        return OrderResult(
            order_id=str(_int(o, "algoId", endpoint)),
            client_order_id=_str(o, "clientAlgoId", endpoint),
            symbol=_str(o, "symbol", endpoint),
            side=_side(o, endpoint),
            status=_status(status_raw, endpoint),
            qty=_num(o, "quantity", endpoint),
            price=_num(o, "triggerPrice", endpoint),
            fee_usd=0.0,
            extra=extra,
        )
    status_raw = _str(o, "status", endpoint)
    executed = _num(o, "executedQty", endpoint)
    return OrderResult(
        order_id=str(_int(o, "orderId", endpoint)),
        client_order_id=_str(o, "clientOrderId", endpoint),
        symbol=_str(o, "symbol", endpoint),
        side=_side(o, endpoint),
        status=_status(status_raw, endpoint),
        qty=executed if executed > 0 else _num(o, "origQty", endpoint),
        price=_num(o, "avgPrice", endpoint) if executed > 0 else 0.0,
        fee_usd=0.0,
        extra={"binance_status": status_raw, "executed_qty": repr(executed)},
    )


def _status(raw: str, endpoint: str) -> Literal["FILLED", "REJECTED", "NEW", "CANCELED"]:
    if raw not in _ORDER_STATUS:
        raise _fail(endpoint, f"unknown order status {raw!r}")
    return _ORDER_STATUS[raw]


@dataclass(frozen=True, slots=True)
class Fills:
    """What the trades of one order add up to."""

    qty: float
    avg_price: float
    commission: dict[str, float] = field(default_factory=dict)  # asset → amount (positive)


def parse_user_trades(raw: object, *, order_id: str, endpoint: str = ENDPOINTS["userTrades"].label) -> Fills:
    """``/fapi/v1/userTrades?orderId=`` → executed qty, VWAP and commission per asset."""
    qty = 0.0
    notional = 0.0
    commission: dict[str, float] = {}
    for entry in _as_list(raw, endpoint):
        t = _as_dict(entry, endpoint)
        if str(t.get("orderId")) != order_id:
            continue
        q = _num(t, "qty", endpoint)
        qty += q
        notional += q * _num(t, "price", endpoint)
        asset = _str(t, "commissionAsset", endpoint)
        commission[asset] = commission.get(asset, 0.0) + abs(_num(t, "commission", endpoint))
    return Fills(qty=qty, avg_price=notional / qty if qty > 0 else 0.0, commission=commission)


#: Commission assets valued 1:1 in USDT (documented simplification; depeg risk ignored).
USD_LIKE: Final = frozenset({"USDT", "USDC", "FDUSD", "BUSD"})


def fee_in_usdt(commission: Mapping[str, float], prices: Mapping[str, float]) -> tuple[float, list[str]]:
    """Total commission in USDT: USD-like assets 1:1, others (BNB) × the ``<ASSET>USDT`` mark price.

    Returns (fee, assets that could not be converted).
    """
    total = 0.0
    missing: list[str] = []
    for asset, amount in commission.items():
        if asset in USD_LIKE:
            total += amount
        elif f"{asset}USDT" in prices:
            total += amount * prices[f"{asset}USDT"]
        else:
            missing.append(asset)
    return total, missing


def parse_open_orders(raw: object, *, endpoint: str = ENDPOINTS["openOrders"].label) -> list[OrderResult]:
    return [parse_order(o, endpoint=endpoint) for o in _as_list(raw, endpoint)]


def working_entry_orders(raw: object, *, endpoint: str = ENDPOINTS["openOrders"].label) -> int:
    """Open orders that may still open risk (not reduce-only, not close-position protective orders)."""
    n = 0
    for entry in _as_list(raw, endpoint):
        o = _as_dict(entry, endpoint)
        if o.get("reduceOnly") is True or o.get("closePosition") is True:
            continue
        n += 1
    return n


def error_body(code: int, msg: str) -> str:
    """A Binance error body (used by tests and docs)."""
    return json.dumps({"code": code, "msg": msg})
