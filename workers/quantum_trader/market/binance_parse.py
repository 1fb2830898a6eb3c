"""Pure functions for the Binance USDⓈ-M adapter: ccxt's unified structures → our frozen data,
error → reason code, retry plan, request weights.

ccxt parses Binance's replies (``load_markets``, ``fetch_tickers``, ``fetch_bids_asks``,
``fetch_ohlcv``, ``fetch_mark_prices``, ``fetch_positions``, ``create_order``/``fetch_order``,
``fetch_my_trades``); this module only maps its unified structures onto the types of
:mod:`quantum_trader.market.base`, and raises :class:`ExchangeError` (``malformed_response``,
naming the endpoint) when a field the workers need is missing — never a silent default.
The few raw fields still read here are marked with the reason ccxt has no unified form for them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from quantum_trader.market.base import (
    AssetClass,
    Bar,
    ExchangeError,
    FundingRate,
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
    """One logical call: the ccxt unified method that makes it, its label, who may call it."""

    method: str  # ccxt unified method, e.g. fetch_ohlcv
    label: str  # "GET /fapi/v1/klines" (metrics label and error text: the Binance endpoint it hits)
    private: bool = False


ENDPOINTS: Final[dict[str, Endpoint]] = {
    "exchangeInfo": Endpoint("load_markets", "GET /fapi/v1/exchangeInfo"),
    "klines": Endpoint("fetch_ohlcv", "GET /fapi/v1/klines"),
    "ticker24hr": Endpoint("fetch_tickers", "GET /fapi/v1/ticker/24hr"),
    "bookTicker": Endpoint("fetch_bids_asks", "GET /fapi/v1/ticker/bookTicker"),
    "premiumIndex": Endpoint("fetch_mark_price", "GET /fapi/v1/premiumIndex"),
    "premiumIndexAll": Endpoint("fetch_mark_prices", "GET /fapi/v1/premiumIndex"),
    "fundingRate": Endpoint("fetch_funding_rate_history", "GET /fapi/v1/fundingRate"),
    "positionRisk": Endpoint("fetch_positions", "GET /fapi/v3/positionRisk", private=True),
    "openOrders": Endpoint("fetch_open_orders", "GET /fapi/v1/openOrders", private=True),
    "orderPost": Endpoint("create_order", "POST /fapi/v1/order", private=True),
    "orderGet": Endpoint("fetch_order", "GET /fapi/v1/order", private=True),
    "orderDelete": Endpoint("cancel_order", "DELETE /fapi/v1/order", private=True),
    "algoOrderPost": Endpoint("create_order", "POST /fapi/v1/algoOrder", private=True),
    "algoOrderGet": Endpoint("fetch_order", "GET /fapi/v1/algoOrder", private=True),
    "algoOrderDelete": Endpoint("cancel_order", "DELETE /fapi/v1/algoOrder", private=True),
    "userTrades": Endpoint("fetch_my_trades", "GET /fapi/v1/userTrades", private=True),
}


def request_weight(name: str, *, symbol: bool = False, limit: int = 500) -> int:
    """Binance's documented IP request weight of one call (what the shared, cross-process budget counts;
    ccxt's own throttle is per process)."""
    if name == "klines":
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if name == "ticker24hr":
        return 1 if symbol else 40
    if name == "bookTicker":
        return 2 if symbol else 5
    if name in ("premiumIndex", "premiumIndexAll"):
        return 1 if symbol else 10
    if name == "openOrders":
        return 1 if symbol else 40
    if name in ("positionRisk", "userTrades"):
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
    "unknown_symbol",
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

# ccxt maps every filter failure to one InvalidOrder class: the Binance code tells them apart.
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


# -- checks on ccxt's structures -------------------------------------------------------------------


def _fail(endpoint: str, what: str) -> ExchangeError:
    return ExchangeError(f"unexpected response: {what}", reason="malformed_response", endpoint=endpoint)


def _num(value: object, what: str, endpoint: str) -> float:
    """A finite number from a unified field (ccxt leaves None where the reply had garbage)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(endpoint, f"{what} missing or not a finite number ({value!r})")
    return float(value)


def _dict(value: object, what: str, endpoint: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(endpoint, f"{what} is not an object ({type(value).__name__})")
    return value


# -- markets -------------------------------------------------------------------------------------

MAJORS: Final = frozenset({"BTC", "ETH"})
STABLES: Final = frozenset({"USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USDE", "PAXG", "XAUT", "EUR"})
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


def market_from_ccxt(m: Mapping[str, Any], *, endpoint: str = ENDPOINTS["exchangeInfo"].label) -> Market:
    """One ccxt unified market → :class:`Market`.

    tick ← ``precision.price``, step ← ``precision.amount`` (ccxt's TICK_SIZE precision mode),
    min notional ← ``limits.cost.min``, min/max qty ← ``limits.market`` (MARKET_LOT_SIZE: the
    executor sends MARKET orders) intersected with ``limits.amount`` (LOT_SIZE).
    """
    symbol = str(m.get("id") or "")
    if not symbol:
        raise _fail(endpoint, "a market without an id")
    precision = _dict(m.get("precision"), f"{symbol}: precision", endpoint)
    limits = _dict(m.get("limits"), f"{symbol}: limits", endpoint)
    if precision.get("price") is None or precision.get("amount") is None:
        raise _fail(endpoint, f"{symbol}: PRICE_FILTER or LOT_SIZE filter missing")
    lot = _dict(limits.get("amount"), f"{symbol}: limits.amount", endpoint)
    market_lot = limits.get("market") or lot
    cost = limits.get("cost") or {}
    max_qty = min(
        _num(lot.get("max"), f"{symbol}: LOT_SIZE maxQty", endpoint),
        _num(market_lot.get("max"), f"{symbol}: MARKET_LOT_SIZE maxQty", endpoint),
    )
    min_qty = max(
        _num(lot.get("min"), f"{symbol}: LOT_SIZE minQty", endpoint),
        _num(market_lot.get("min"), f"{symbol}: MARKET_LOT_SIZE minQty", endpoint),
    )
    base = str(m.get("base") or "")
    # ccxt's unified `active` is a bool: settling vs break is only in the raw status.
    raw_status = str(_dict(m.get("info"), f"{symbol}: info", endpoint).get("status", ""))
    return Market(
        symbol=symbol,
        base=base,
        quote=str(m.get("quote") or ""),
        contract="perpetual" if m.get("swap") else "delivery",
        status=_STATUS.get(raw_status, "BREAK"),
        tick_size=_num(precision["price"], f"{symbol}: tickSize", endpoint),
        step_size=_num(precision["amount"], f"{symbol}: stepSize", endpoint),
        min_notional=_num(cost["min"], f"{symbol}: notional", endpoint) if cost.get("min") is not None else 0.0,
        max_qty=max_qty,
        min_qty=min_qty,
        asset_class=asset_class(base),
        onboard_ms=int(m["created"]) if isinstance(m.get("created"), int) else 0,
    )


def markets_from_ccxt(markets: object, *, endpoint: str = ENDPOINTS["exchangeInfo"].label) -> list[Market]:
    """ccxt's ``load_markets()`` result (unified symbol → market) → markets; none at all is malformed."""
    body = _dict(markets, "markets", endpoint)
    if not body:
        raise _fail(endpoint, "no 'symbols' listed")
    return [market_from_ccxt(_dict(m, "market", endpoint), endpoint=endpoint) for m in body.values()]


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
#: ccxt's fetch_ohlcv caps a page at 1000 bars (weight 5: fewer weight per bar than 1500 at 10).
KLINES_PAGE_LIMIT: Final = 1000


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


def bars_from_ohlcv(rows: object, *, endpoint: str = ENDPOINTS["klines"].label) -> list[Bar]:
    """ccxt's unified OHLCV rows ``[ts, o, h, l, c, v]`` → bars; a row ccxt could not parse is malformed."""
    if not isinstance(rows, list):
        raise _fail(endpoint, f"expected OHLCV rows, got {type(rows).__name__}")
    out: list[Bar] = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 6 or not isinstance(row[0], int):
            raise _fail(endpoint, f"kline row is not [ts, o, h, l, c, v] ({row!r:.80})")
        o, h, lo, c, v = (_num(x, "kline value", endpoint) for x in row[1:6])
        out.append((row[0], o, h, lo, c, v))
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


# -- tickers, mark prices, positions ---------------------------------------------------------------


def _market_id(entry: Mapping[str, Any], ids: Mapping[str, str]) -> str:
    """The Binance id of a unified structure's symbol (ccxt keeps an unlisted symbol's id as its symbol)."""
    symbol = str(entry.get("symbol") or "")
    return ids.get(symbol, symbol)


def tickers_from_ccxt(
    tickers: object,
    book: object,
    *,
    ids: Mapping[str, str],
    endpoint_24h: str = ENDPOINTS["ticker24hr"].label,
    endpoint_book: str = ENDPOINTS["bookTicker"].label,
) -> dict[str, Ticker]:
    """``fetch_tickers`` (last, quoteVolume) joined with ``fetch_bids_asks`` (bid, ask) by Binance id.

    A symbol missing from the book ticker gets bid = ask = last.
    """
    quotes: dict[str, tuple[float, float]] = {}
    for t in _dict(book, "book tickers", endpoint_book).values():
        t = _dict(t, "book ticker", endpoint_book)
        sym = _market_id(t, ids)
        quotes[sym] = (_num(t.get("bid"), f"{sym}: bid", endpoint_book), _num(t.get("ask"), f"{sym}: ask", endpoint_book))
    out: dict[str, Ticker] = {}
    for t in _dict(tickers, "tickers", endpoint_24h).values():
        t = _dict(t, "ticker", endpoint_24h)
        sym = _market_id(t, ids)
        last = _num(t.get("last"), f"{sym}: lastPrice", endpoint_24h)
        bid, ask = quotes.get(sym, (last, last))
        ts = t.get("timestamp")
        if not isinstance(ts, int):
            raise _fail(endpoint_24h, f"{sym}: closeTime missing ({ts!r})")
        out[sym] = Ticker(
            symbol=sym,
            last=last,
            quote_volume_24h=_num(t.get("quoteVolume"), f"{sym}: quoteVolume", endpoint_24h),
            bid=bid,
            ask=ask,
            ts=ts,
        )
    return out


def mark_prices_from_ccxt(
    entries: Iterable[object], *, ids: Mapping[str, str], endpoint: str = ENDPOINTS["premiumIndex"].label
) -> dict[str, float]:
    """``fetch_mark_price(s)`` results → Binance id → mark price."""
    out: dict[str, float] = {}
    for entry in entries:
        p = _dict(entry, "mark price", endpoint)
        sym = _market_id(p, ids)
        out[sym] = _num(p.get("markPrice"), f"{sym}: markPrice", endpoint)
    return out


def positions_from_ccxt(
    positions: object, *, ids: Mapping[str, str], endpoint: str = ENDPOINTS["positionRisk"].label
) -> list[Position]:
    """``fetch_positions`` → open positions (zero sizes skipped; one-way or hedge mode)."""
    if not isinstance(positions, list):
        raise _fail(endpoint, f"expected a list of positions, got {type(positions).__name__}")
    out: list[Position] = []
    for entry in positions:
        p = _dict(entry, "position", endpoint)
        sym = _market_id(p, ids)
        contracts = _num(p.get("contracts"), f"{sym}: positionAmt", endpoint)
        if contracts == 0.0:
            continue
        side = p.get("side")
        if side not in ("long", "short"):
            raise _fail(endpoint, f"{sym}: side is not long/short ({side!r})")
        out.append(
            Position(
                symbol=sym,
                side="BUY" if side == "long" else "SELL",
                qty=abs(contracts),
                entry_price=_num(p.get("entryPrice"), f"{sym}: entryPrice", endpoint),
                unrealized_pnl=_num(p.get("unrealizedPnl"), f"{sym}: unRealizedProfit", endpoint),
            )
        )
    return out


# -- orders ----------------------------------------------------------------------------------------

CONDITIONAL_TYPES: Final = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
_UNIFIED_STATUS: Final[dict[str, Literal["FILLED", "REJECTED", "NEW", "CANCELED"]]] = {
    "open": "NEW",
    "closed": "FILLED",
    "canceled": "CANCELED",
    "expired": "CANCELED",
    "rejected": "REJECTED",
}
_CLIENT_ID_RE: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def binance_client_id(client_order_id: str) -> str:
    """The id Binance accepts (``^[.A-Z:/a-z0-9_-]{1,36}$``): the id itself when valid, else a
    deterministic ``qt-`` + 32 hex digest (so a lookup after a restart finds the same order)."""
    if _CLIENT_ID_RE.match(client_order_id):
        return client_order_id
    return "qt-" + hashlib.sha256(client_order_id.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """The arguments of ccxt's ``create_order`` for one request."""

    type: Literal["market"]
    side: Literal["buy", "sell"]
    amount: float
    params: dict[str, object]


def create_order_args(order: OrderRequest) -> CreateOrder:
    """ccxt ``create_order`` arguments: a MARKET order, or a stop-loss / take-profit (ccxt sends the
    conditional ones to ``POST /fapi/v1/algoOrder``). The intent id is the client order id
    (``newClientOrderId`` / ``clientAlgoId``): Binance refuses a second open order with the same
    id, and it is how an order whose reply was lost is found again."""
    params: dict[str, object] = {"clientOrderId": binance_client_id(order.client_order_id)}
    if order.order_type in CONDITIONAL_TYPES:
        if order.stop_price <= 0:
            raise ExchangeError(
                f"{order.order_type} needs a stop price", reason="price_filter", endpoint="POST /fapi/v1/algoOrder"
            )
        key = "stopLossPrice" if order.order_type == "STOP_MARKET" else "takeProfitPrice"
        params[key] = order.stop_price
        params["workingType"] = "MARK_PRICE"
        params["reduceOnly"] = True  # a stop-loss / take-profit only ever reduces
    elif order.reduce_only:
        params["reduceOnly"] = True
    return CreateOrder(type="market", side="buy" if order.side == "BUY" else "sell", amount=order.qty, params=params)


def order_from_ccxt(order: object, *, endpoint: str, ids: Mapping[str, str]) -> OrderResult:
    """A ccxt unified order (regular or algo) → :class:`OrderResult`.

    qty is the filled amount once anything executed (else the ordered amount); price is the
    average fill price (0 when nothing filled), for an algo order its trigger price.
    Fees come from the trades.
    """
    o = _dict(order, "order", endpoint)
    info = _dict(o.get("info"), "order info", endpoint)
    status = o.get("status")
    if status not in _UNIFIED_STATUS:
        raise _fail(endpoint, f"unknown order status {status!r}")
    side = o.get("side")
    if side not in ("buy", "sell"):
        raise _fail(endpoint, f"side is not buy/sell ({side!r})")
    order_id, client_id = o.get("id"), o.get("clientOrderId")
    if not order_id or not client_id:
        raise _fail(endpoint, f"order id or client id missing ({order_id!r}, {client_id!r})")
    common = {
        "order_id": str(order_id),
        "client_order_id": str(client_id),
        "symbol": _market_id(o, ids),
        "side": "BUY" if side == "buy" else "SELL",
        "status": _UNIFIED_STATUS[status],
        "fee_usd": 0.0,
    }
    # ccxt's unified status folds PARTIALLY_FILLED into open and TRIGGERED into closed: keep the raw one.
    raw_status = str(info.get("algoStatus") or info.get("status") or "")
    if "algoId" in info:  # ccxt has no unified flag for Binance's algo (conditional) orders
        extra = {"binance_status": raw_status, "algo": "true"}
        if info.get("actualOrderId") not in (None, ""):
            extra["actual_order_id"] = str(info["actualOrderId"])
        return OrderResult(
            **common,  # type: ignore[arg-type]
            qty=_num(o.get("amount"), "quantity", endpoint),
            price=_num(o.get("triggerPrice"), "triggerPrice", endpoint),
            extra=extra,
        )
    filled = _num(o.get("filled"), "executedQty", endpoint)
    return OrderResult(
        **common,  # type: ignore[arg-type]
        qty=filled if filled > 0 else _num(o.get("amount"), "origQty", endpoint),
        price=_num(o.get("average"), "avgPrice", endpoint) if filled > 0 else 0.0,
        extra={"binance_status": raw_status, "executed_qty": repr(filled)},
    )


@dataclass(frozen=True, slots=True)
class Fills:
    """What the trades of one order add up to."""

    qty: float
    avg_price: float
    commission: dict[str, float] = field(default_factory=dict)  # asset → amount (positive)


def fills_from_ccxt(trades: object, *, order_id: str, endpoint: str = ENDPOINTS["userTrades"].label) -> Fills:
    """``fetch_my_trades(orderId=)`` → executed qty, VWAP and commission per asset."""
    if not isinstance(trades, list):
        raise _fail(endpoint, f"expected a list of trades, got {type(trades).__name__}")
    qty = 0.0
    notional = 0.0
    commission: dict[str, float] = {}
    for entry in trades:
        t = _dict(entry, "trade", endpoint)
        if str(t.get("order")) != order_id:
            continue
        q = _num(t.get("amount"), "qty", endpoint)
        qty += q
        notional += q * _num(t.get("price"), "price", endpoint)
        fee = _dict(t.get("fee"), "fee", endpoint)
        asset = str(fee.get("currency") or "")
        if not asset:
            raise _fail(endpoint, "commissionAsset missing")
        commission[asset] = commission.get(asset, 0.0) + abs(_num(fee.get("cost"), "commission", endpoint))
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


def working_entry_orders(orders: object, *, endpoint: str = ENDPOINTS["openOrders"].label) -> int:
    """Open orders that may still open risk (not reduce-only, not close-position protective orders)."""
    if not isinstance(orders, list):
        raise _fail(endpoint, f"expected a list of orders, got {type(orders).__name__}")
    n = 0
    for entry in orders:
        o = _dict(entry, "order", endpoint)
        # closePosition has no unified field in ccxt's order structure.
        if o.get("reduceOnly") is True or _dict(o.get("info"), "order info", endpoint).get("closePosition") is True:
            continue
        n += 1
    return n


def funding_from_ccxt(entries: object, *, endpoint: str = ENDPOINTS["fundingRate"].label) -> list[FundingRate]:
    """``fetch_funding_rate_history`` → funding settlements, oldest first."""
    if not isinstance(entries, list):
        raise _fail(endpoint, f"expected a list of funding rates, got {type(entries).__name__}")
    out: list[FundingRate] = []
    for entry in entries:
        f = _dict(entry, "funding rate", endpoint)
        ts = f.get("timestamp")
        if not isinstance(ts, int):
            raise _fail(endpoint, f"fundingTime missing ({ts!r})")
        out.append(FundingRate(ts=ts, rate=_num(f.get("fundingRate"), "fundingRate", endpoint)))
    return sorted(out, key=lambda r: r.ts)


def error_body(code: int, msg: str) -> str:
    """A Binance error body (used by tests and docs)."""
    return json.dumps({"code": code, "msg": msg})
