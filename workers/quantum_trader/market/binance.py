"""Binance USDⓈ-M futures adapter (``exchange.name: binanceusdm``): the thin I/O layer over ccxt.

ccxt's async ``binanceusdm`` does the REST work (URLs, HMAC signing, its own
request pacing with ``enableRateLimit``, HTTP error → exception). This module
calls its implicit endpoint methods (``fapiPublicGetKlines`` ...) so requests are
exactly Binance's documented ones (``newClientOrderId``, ``reduceOnly``, algo
orders for STOP_MARKET / TAKE_PROFIT_MARKET), and parses the documented replies
with the pure functions of :mod:`quantum_trader.market.binance_parse`.

Two ccxt instances: *data* (market data: mainnet unless ``exchange.marketData:
testnet``) and *trade* (orders and account: the testnet when ``environment:
testnet``, mainnet when ``production``; none in ``paper``).

Around every call: the shared per-minute weight budget in Redis (when attached),
retries of transient errors (timeouts, network, 429/418, 5xx) with exponential
backoff and jitter for idempotent calls, and a reason code on every failure.
An order placement is never retried blindly: after an unknown outcome the order
is looked up by its client order id and submitted again only if the exchange
never saw it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Literal

import ccxt.async_support as ccxt_async

from quantum_trader.core import metrics
from quantum_trader.core.clock import Clock
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market import binance_parse as bp
from quantum_trader.market.base import (
    Bar,
    ExchangeError,
    FundingRate,
    Klines,
    Market,
    OrderRequest,
    OrderResult,
    PerSymbol,
    Position,
    SymbolFailure,
    Ticker,
    per_symbol,
)
from quantum_trader.market.binance_budget import WeightBudget
from quantum_trader.market.credentials import Credentials, CredentialsError, load_credentials

EXCHANGE_NAME: Final = "binanceusdm"
RECV_WINDOW_MS: Final = 5_000
# Longer than recvWindow: an order whose request timed out can no longer be
# accepted by the time we look it up (Binance rejects it after timestamp + recvWindow).
REQUEST_TIMEOUT_MS: Final = 10_000
ORDER_MARKETS_TTL_MS: Final = 3_600_000  # the order venue's filters are refreshed hourly
TestnetFlavor = Literal["testnet", "demo"]
ENV_TESTNET_FLAVOR: Final = "QT_BINANCE_TESTNET"  # "testnet" (testnet.binancefuture.com, default) | "demo"


def classify(exc: BaseException) -> bp.ErrorKind:
    """The kind of a ccxt exception (the boundary between ccxt's untyped errors and our reason codes)."""
    if isinstance(exc, ccxt_async.RequestTimeout):
        return "timeout"
    if isinstance(exc, ccxt_async.DDoSProtection):
        return "rate_limit"
    if isinstance(exc, ccxt_async.NetworkError):
        return "network"
    if isinstance(exc, (ccxt_async.AuthenticationError, ccxt_async.PermissionDenied)):
        return "auth"
    if isinstance(exc, ccxt_async.OrderNotFound):
        return "order_not_found"
    if isinstance(exc, ccxt_async.BadSymbol):
        return "bad_symbol"
    return "other"


def make_client(
    *,
    testnet: bool,
    credentials: Credentials | None = None,
    flavor: TestnetFlavor = "testnet",
    enable_rate_limit: bool = True,
) -> Any:
    """One ccxt async binanceusdm instance (untyped: only :class:`CcxtTransport` touches it)."""
    # ccxt's DEBUG log lines carry request headers (X-MBX-APIKEY): never let them through.
    logging.getLogger("ccxt").setLevel(logging.INFO)
    config: dict[str, Any] = {
        "enableRateLimit": enable_rate_limit,
        "timeout": REQUEST_TIMEOUT_MS,
        "options": {
            "recvWindow": RECV_WINDOW_MS,
            "adjustForTimeDifference": False,
            # ccxt warns that the futures testnet is superseded by "demo trading";
            # testnet.binancefuture.com still serves the testnet keys users have.
            "disableFuturesSandboxWarning": True,
            # working_orders() asks for every open order at once (weight 40), knowingly.
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    }
    if credentials is not None:
        config["apiKey"] = credentials.api_key
        config["secret"] = credentials.secret
    client = ccxt_async.binanceusdm(config)
    if testnet:
        if flavor == "demo":
            client.enable_demo_trading(True)
        else:
            client.set_sandbox_mode(True)
    return client


class CcxtTransport:
    """Typed boundary over one ccxt instance: ``call(method, *args) -> ccxt's unified structure``.

    Keeps the Binance id ↔ ccxt unified symbol maps of the markets ccxt loaded.
    """

    def __init__(self, client: Any, *, venue: str) -> None:
        self.client = client
        self.venue = venue  # "mainnet" | "testnet" | "demo" (for logs)
        self.ids: dict[str, str] = {}  # unified symbol → Binance id
        self.symbols: dict[str, str] = {}  # Binance id → unified symbol

    @property
    def loaded(self) -> bool:
        return bool(self.symbols)

    async def call(self, method: str, *args: object, **kwargs: object) -> object:
        fn = getattr(self.client, method)
        result: object = await fn(*args, **kwargs)
        if method == "load_markets" and isinstance(result, dict):
            self.ids = {str(sym): str(m.get("id")) for sym, m in result.items() if isinstance(m, dict)}
            self.symbols = {i: sym for sym, i in self.ids.items()}
        return result

    async def close(self) -> None:
        await self.client.close()


class BinanceExchange:
    """The :class:`~quantum_trader.market.base.Exchange` for Binance USDⓈ-M futures."""

    name = EXCHANGE_NAME

    def __init__(
        self,
        *,
        data: CcxtTransport,
        trade: CcxtTransport | None,
        clock: Clock,
        log: EventLog | None = None,
        budget: WeightBudget | None = None,
        no_trade_reason: str = "missing_credentials",
        mode: Literal["paper", "testnet", "live"] = "testnet",
        max_attempts: int = 4,
        max_submissions: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        klines_page_limit: int = bp.KLINES_PAGE_LIMIT,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._data = data
        self._trade = trade
        self._clock = clock
        self._log = log or EventLog(component="binance")
        self._budget = budget
        self._no_trade_reason = no_trade_reason
        self.mode: Literal["paper", "testnet", "live"] = mode  # execution mode of the order venue
        self._max_attempts = max(1, max_attempts)
        self._max_submissions = max(1, max_submissions)
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._page_limit = max(1, min(klines_page_limit, bp.KLINES_PAGE_LIMIT))
        self._rand = rand
        self._order_markets: dict[str, Market] | None = None
        self._order_markets_ms = 0
        self._algo_ids: set[str] = set()
        self._regular_ids: set[str] = set()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        settings: ExchangeSettings,
        *,
        clock: Clock,
        environment: Literal["paper", "testnet", "production"],
        budget: WeightBudget | None = None,
        log: EventLog | None = None,
        env: Mapping[str, str] | None = None,
    ) -> BinanceExchange:
        """Build from ``spec.exchange``; keys only from env/Secret files (:mod:`.credentials`)."""
        environ = os.environ if env is None else env
        log = log or EventLog(component="binance")
        flavor: TestnetFlavor = "demo" if environ.get(ENV_TESTNET_FLAVOR, "") == "demo" else "testnet"
        data_testnet = settings.market_data == "testnet"
        data = CcxtTransport(
            make_client(testnet=data_testnet, flavor=flavor),
            venue=flavor if data_testnet else "mainnet",
        )
        trade: CcxtTransport | None = None
        no_trade_reason = "paper_mode"
        source = "none"
        if environment != "paper":
            try:
                creds = load_credentials(environ)
            except CredentialsError as exc:
                log.error("EXCHANGE_CREDENTIALS_INVALID", error=str(exc))
                creds = None
            no_trade_reason = "missing_credentials"
            if creds is not None:
                source = creds.source
                trade_testnet = environment == "testnet"
                trade = CcxtTransport(
                    make_client(testnet=trade_testnet, credentials=creds, flavor=flavor),
                    venue=flavor if trade_testnet else "mainnet",
                )
        log.event(
            "EXCHANGE_CONFIGURED",
            exchange=EXCHANGE_NAME,
            environment=environment,
            market_data=data.venue,
            orders=trade.venue if trade else no_trade_reason,
            key_source=source,  # not "credentials=": the log redacts fields named like secrets
        )
        mode: Literal["paper", "testnet", "live"] = "live" if environment == "production" else environment
        return cls(
            data=data, trade=trade, clock=clock, log=log, budget=budget, no_trade_reason=no_trade_reason, mode=mode
        )

    def attach_budget(self, budget: WeightBudget) -> None:
        """Share the profile's per-minute weight budget (the service shell calls this with its Redis)."""
        self._budget = budget

    @property
    def can_trade(self) -> bool:
        return self._trade is not None

    # -- the one request path -----------------------------------------------------------------
    def _transport(self, ep: bp.Endpoint, *, order_venue: bool) -> CcxtTransport:
        """Private endpoints (and public ones with ``order_venue=True``) go to the order venue."""
        if not (ep.private or order_venue):
            return self._data
        if self._trade is None:
            raise ExchangeError(
                "orders/account need API keys (QT_EXCHANGE_KEY/QT_EXCHANGE_SECRET or the mounted Secret)"
                if self._no_trade_reason == "missing_credentials"
                else "paper environment: no orders or account calls on the exchange",
                reason=self._no_trade_reason,
                endpoint=ep.label,
            )
        return self._trade

    async def _call(
        self,
        name: str,
        *args: object,
        weight: int | None = None,
        retry: bool = True,
        order_venue: bool = False,
        **kwargs: object,
    ) -> object:
        """Call ``name`` (see ``binance_parse.ENDPOINTS``) through ccxt; raise :class:`ExchangeError` with a reason."""
        ep = bp.ENDPOINTS[name]
        transport = self._transport(ep, order_venue=order_venue)
        if name != "exchangeInfo" and not transport.loaded:
            await self._call("exchangeInfo", True, order_venue=transport is not self._data)
        attempts = self._max_attempts if retry else 1
        for attempt in range(attempts):
            if self._budget is not None:
                await self._budget.acquire(bp.request_weight(name) if weight is None else weight, endpoint=ep.label)
            try:
                result = await transport.call(ep.method, *args, **kwargs)
            except ccxt_async.BaseError as exc:
                reason = bp.reason_for_error(kind=classify(exc), message=str(exc))
                metrics.EXCHANGE_REQUESTS.labels(metrics.bound_profile(), EXCHANGE_NAME, ep.label, reason).inc()
                if reason in bp.TRANSIENT and attempt + 1 < attempts:
                    delay = bp.backoff_delay(
                        attempt + (2 if reason == "rate_limited" else 0),
                        base=self._backoff_base,
                        cap=self._backoff_cap,
                        rand=self._rand(),
                    )
                    self._log.warn(
                        "EXCHANGE_RETRY", endpoint=ep.label, reason=reason, attempt=attempt + 1, retry_in_s=delay
                    )
                    await self._clock.sleep(delay)
                    continue
                raise ExchangeError(_short(exc), reason=reason, endpoint=ep.label) from None
            except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
                # ccxt's parsers assume the documented shape: anything else is a malformed reply
                metrics.EXCHANGE_REQUESTS.labels(metrics.bound_profile(), EXCHANGE_NAME, ep.label, "malformed_response").inc()
                raise ExchangeError(
                    f"unexpected response: {type(exc).__name__}: {_short(exc)}",
                    reason="malformed_response",
                    endpoint=ep.label,
                ) from None
            metrics.EXCHANGE_REQUESTS.labels(metrics.bound_profile(), EXCHANGE_NAME, ep.label, "ok").inc()
            return result
        raise ExchangeError("no attempt made", reason="exchange_error", endpoint=ep.label)  # attempts >= 1

    async def _unified(self, symbol: str, *, order_venue: bool = False, endpoint: str = "") -> str:
        """ccxt's unified symbol of a Binance id (``BTCUSDT`` → ``BTC/USDT:USDT``) on that venue."""
        transport = self._transport(bp.ENDPOINTS["exchangeInfo"], order_venue=order_venue)
        if not transport.loaded:
            await self._call("exchangeInfo", True, order_venue=order_venue)
        unified = transport.symbols.get(symbol)
        if unified is None:
            raise ExchangeError(f"{symbol} is not listed", reason="invalid_symbol", endpoint=endpoint)
        return unified

    # -- market data --------------------------------------------------------------------------
    async def markets(self) -> list[Market]:
        return bp.markets_from_ccxt(await self._call("exchangeInfo", True))

    async def order_markets(self) -> dict[str, Market]:
        """Filters of the venue that takes the orders (the testnet lists fewer symbols than mainnet)."""
        now = self._clock.now_ms()
        if self._order_markets is None or now - self._order_markets_ms > ORDER_MARKETS_TTL_MS:
            raw = await self._call("exchangeInfo", True, order_venue=True)
            self._order_markets = {m.symbol: m for m in bp.markets_from_ccxt(raw)}
            self._order_markets_ms = now
        return self._order_markets

    async def tickers(self) -> dict[str, Ticker]:
        raw_24h = await self._call("ticker24hr")
        raw_book = await self._call("bookTicker")
        return bp.tickers_from_ccxt(raw_24h, raw_book, ids=self._data.ids)

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        """The last ``limit`` closed bars up to ``end_ms``: pages of ≤1000, then one refetch per gap."""
        window = bp.kline_window(
            timeframe=timeframe, limit=limit, end_ms=self._clock.now_ms() if end_ms is None else end_ms
        )
        unified = await self._unified(symbol, endpoint=bp.ENDPOINTS["klines"].label)
        tf = window.tf_ms
        pages: list[list[Bar]] = []
        cursor = window.first_open
        while cursor <= window.last_open:
            n = min(self._page_limit, (window.last_open - cursor) // tf + 1)
            page = await self._klines_page(unified, timeframe, start=cursor, end=window.last_open, limit=n)
            pages.append(page)
            if not page or page[-1][0] + tf <= cursor:
                break
            cursor = page[-1][0] + tf
        bars = bp.merge_bars(*pages, window=window)
        gaps = bp.missing_ranges([b[0] for b in bars], tf_ms=tf)
        if gaps:
            refetched = [
                await self._klines_page(
                    unified, timeframe, start=g0, end=g1, limit=min(self._page_limit, (g1 - g0) // tf + 1)
                )
                for g0, g1 in gaps[:10]
            ]
            bars = bp.merge_bars(bars, *refetched, window=window)
            left = bp.missing_ranges([b[0] for b in bars], tf_ms=tf)
            self._log.event(
                "KLINES_GAP_BACKFILL", symbol=symbol, timeframe=timeframe, gaps=len(gaps), still_missing=len(left)
            )
        return bp.bars_to_klines(bars, symbol=symbol, timeframe=timeframe)

    async def _klines_page(self, unified: str, timeframe: str, *, start: int, end: int, limit: int) -> list[Bar]:
        rows = await self._call(
            "klines", unified, timeframe, start, limit, {"until": end}, weight=bp.request_weight("klines", limit=limit)
        )
        return bp.bars_from_ohlcv(rows)

    async def klines_between(
        self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int, limit: int = bp.KLINES_PAGE_LIMIT
    ) -> list[Bar]:
        """One page of bars opening in [start_ms, end_ms] (at most ``limit``), oldest first (``qt data``)."""
        if timeframe not in bp.INTERVAL_MS:
            raise ExchangeError(f"unsupported timeframe {timeframe!r}", reason="exchange_error", endpoint="klines")
        unified = await self._unified(symbol, endpoint=bp.ENDPOINTS["klines"].label)
        wanted = (end_ms - start_ms) // bp.INTERVAL_MS[timeframe] + 1
        page = await self._klines_page(
            unified, timeframe, start=start_ms, end=end_ms, limit=max(1, min(limit, self._page_limit, wanted))
        )
        return [b for b in page if start_ms <= b[0] <= end_ms]

    async def klines_each(
        self, symbols: list[str], timeframe: str, *, limit: int, end_ms: int | None = None
    ) -> PerSymbol[Klines]:
        """:meth:`klines` per symbol; a symbol that fails is reported with its reason, the rest proceed."""
        return await per_symbol(symbols, lambda s: self.klines(s, timeframe, limit=limit, end_ms=end_ms))

    async def funding_rates(self, symbol: str, *, since_ms: int, until_ms: int, limit: int = 1000) -> list[FundingRate]:
        """Funding settlements of ``symbol`` in [since_ms, until_ms] (one page of at most ``limit``)."""
        unified = await self._unified(symbol, endpoint=bp.ENDPOINTS["fundingRate"].label)
        raw = await self._call("fundingRate", unified, since_ms, limit, {"until": until_ms})
        return [f for f in bp.funding_from_ccxt(raw) if since_ms <= f.ts <= until_ms]

    async def backfill(self, symbol: str, timeframe: str) -> None:
        """No local history to repair: every :meth:`klines` call fetches afresh and refetches gaps."""
        return

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        """Mark prices (``premiumIndex``): per symbol for ≤3 symbols (weight 1 each), else one call (10)."""
        if 0 < len(symbols) <= 3:
            out: dict[str, float] = {}
            for s in symbols:
                unified = await self._unified(s, endpoint=bp.ENDPOINTS["premiumIndex"].label)
                raw = await self._call("premiumIndex", unified, weight=bp.request_weight("premiumIndex", symbol=True))
                out.update(bp.mark_prices_from_ccxt([raw], ids=self._data.ids))
            return out
        raw_all = await self._call("premiumIndexAll")
        if not isinstance(raw_all, dict):
            raise ExchangeError("unexpected response: mark prices", reason="malformed_response",
                                endpoint=bp.ENDPOINTS["premiumIndexAll"].label)
        every = bp.mark_prices_from_ccxt(raw_all.values(), ids=self._data.ids)
        return every if not symbols else {s: every[s] for s in symbols if s in every}

    async def mark_prices_each(self, symbols: list[str]) -> PerSymbol[float]:
        """Mark prices with per-symbol failures: one request for all; a symbol not listed (or
        without a mark) is reported as ``unknown_symbol``; a failing request falls back to one
        call per symbol so one bad symbol never blacks out the rest."""
        if not self._data.loaded:
            await self._call("exchangeInfo", True)
        listed = [s for s in symbols if s in self._data.symbols]
        unknown = {s: SymbolFailure(s, "unknown_symbol", "not listed on binanceusdm") for s in symbols
                   if s not in self._data.symbols}
        try:
            marks = await self.mark_prices(listed) if listed else {}
        except ExchangeError:
            found = await per_symbol(listed, self._one_mark)
            return PerSymbol(values=found.values, failures={**unknown, **found.failures})
        missing = {s: SymbolFailure(s, "unknown_symbol", "no mark price") for s in listed if s not in marks}
        return PerSymbol(values={s: marks[s] for s in listed if s in marks}, failures={**unknown, **missing})

    async def _one_mark(self, symbol: str) -> float:
        marks = await self.mark_prices([symbol])
        if symbol not in marks:
            raise ExchangeError(f"no mark price for {symbol}", reason="unknown_symbol")
        return marks[symbol]

    # -- account --------------------------------------------------------------------------------
    async def positions(self) -> list[Position]:
        """Open positions on the order venue; none in ``paper`` (Redis is the book there)."""
        if self._trade is None and self._no_trade_reason == "paper_mode":
            return []
        raw = await self._call("positionRisk")
        return bp.positions_from_ccxt(raw, ids=self._trade.ids if self._trade else {})

    async def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        label = bp.ENDPOINTS["openOrders"].label
        unified = await self._unified(symbol, order_venue=True, endpoint=label) if symbol else None
        raw = await self._call("openOrders", unified, weight=bp.request_weight("openOrders", symbol=bool(symbol)))
        ids = self._trade.ids if self._trade else {}
        return [bp.order_from_ccxt(o, endpoint=label, ids=ids) for o in raw] if isinstance(raw, list) else []

    async def working_orders(self) -> int:
        """Open orders that may still open risk (reduce-only and close-position orders excluded)."""
        return bp.working_entry_orders(await self._call("openOrders", None, weight=bp.request_weight("openOrders")))

    # -- orders ---------------------------------------------------------------------------------
    async def place_order(self, order: OrderRequest) -> OrderResult:
        """Place one order; idempotent per ``client_order_id``.

        Definitive rejections come back as ``status=REJECTED`` with a reason code.
        After an unknown outcome (timeout, network error, 429) the order is looked
        up by client id; found → that order; never seen → submitted again (at most
        ``max_submissions`` times). Raises :class:`ExchangeError` only when its fate
        cannot be established (the reconciliation then settles it).
        """
        algo = order.order_type in bp.CONDITIONAL_TYPES
        post = "algoOrderPost" if algo else "orderPost"
        label = bp.ENDPOINTS[post].label
        try:
            filters = (await self.order_markets()).get(order.symbol)
        except ExchangeError as exc:
            return self._rejected(order, exc.reason, str(exc))
        if filters is None:
            return self._rejected(order, "invalid_symbol", f"{order.symbol} is not listed on the order venue")
        qty = bp.round_to_step(order.qty, filters.step_size)
        if qty <= 0:
            return self._rejected(order, "lot_size", f"qty {order.qty} rounds to 0 at step {filters.step_size}")
        try:
            args = bp.create_order_args(
                replace(order, qty=qty, stop_price=bp.round_to_tick(order.stop_price, filters.tick_size))
            )
            unified = await self._unified(order.symbol, order_venue=True, endpoint=label)
        except ExchangeError as exc:
            return self._rejected(order, exc.reason, str(exc))
        (self._algo_ids if algo else self._regular_ids).add(order.client_order_id)
        ids = self._trade.ids if self._trade else {}
        last_reason = "timeout"
        for submission in range(1, self._max_submissions + 1):
            self._log.event(
                "ORDER_SUBMIT",
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                type=order.order_type,
                qty=qty,
                reduce_only=order.reduce_only,
                submission=submission,
            )
            try:
                raw = await self._call(
                    post, unified, args.type, args.side, args.amount, None, dict(args.params), retry=False
                )
            except ExchangeError as exc:
                if exc.reason == "duplicate_client_order_id":
                    found = await self._lookup(order.symbol, order.client_order_id, algo=algo)
                    if found is not None:
                        self._log.event("ORDER_ALREADY_PLACED", client_order_id=order.client_order_id)
                        return found
                    return self._rejected(order, exc.reason, str(exc))
                if exc.reason not in bp.OUTCOME_UNKNOWN:
                    return self._rejected(order, exc.reason, str(exc))
                last_reason = exc.reason
                self._log.warn(
                    "ORDER_OUTCOME_UNKNOWN",
                    client_order_id=order.client_order_id,
                    reason=exc.reason,
                    submission=submission,
                )
                await self._clock.sleep(
                    bp.backoff_delay(submission - 1, base=self._backoff_base, cap=self._backoff_cap, rand=self._rand())
                )
                found = await self._lookup(order.symbol, order.client_order_id, algo=algo)
                if found is not None:
                    self._log.event(
                        "ORDER_FOUND_BY_CLIENT_ID", client_order_id=order.client_order_id, status=found.status
                    )
                    return found
                if submission < self._max_submissions:
                    self._log.event("ORDER_RESUBMIT", client_order_id=order.client_order_id, reason=exc.reason)
                continue
            result = replace(bp.order_from_ccxt(raw, endpoint=label, ids=ids), client_order_id=order.client_order_id)
            if result.status == "FILLED" and not algo:
                result = await self._with_fills(result)
            self._log.event(
                "ORDER_RESULT",
                client_order_id=order.client_order_id,
                order_id=result.order_id,
                status=result.status,
                qty=result.qty,
                price=result.price,
                fee_usd=result.fee_usd,
            )
            return result
        return self._rejected(order, last_reason, f"not accepted after {self._max_submissions} submissions")

    def _rejected(self, order: OrderRequest, reason: str, detail: str) -> OrderResult:
        self._log.warn(
            "ORDER_REJECTED", client_order_id=order.client_order_id, symbol=order.symbol, reason=reason, detail=detail
        )
        return OrderResult(
            order_id="",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            status="REJECTED",
            qty=0.0,
            price=0.0,
            fee_usd=0.0,
            reason=reason,
            extra={"detail": detail[:300]},
        )

    async def _lookup(self, symbol: str, client_order_id: str, *, algo: bool) -> OrderResult | None:
        """The order by client id on one endpoint, ``None`` when the exchange says it does not exist.

        Transient failures are retried; if the lookup itself keeps failing this raises
        :class:`ExchangeError` (reason ``timeout``): the order's fate is unknown.
        """
        name = "algoOrderGet" if algo else "orderGet"
        label = bp.ENDPOINTS[name].label
        params: dict[str, object] = {"clientOrderId": bp.binance_client_id(client_order_id)}
        if algo:
            params["trigger"] = True
        try:
            unified = await self._unified(symbol, order_venue=True, endpoint=label)
            raw = await self._call(name, None, unified, params)
        except ExchangeError as exc:
            if exc.reason in ("order_not_found", "invalid_symbol"):
                return None
            if exc.reason in bp.TRANSIENT:
                raise ExchangeError(
                    f"order {client_order_id} state unknown: {exc}", reason="timeout", endpoint=exc.endpoint
                ) from None
            raise
        ids = self._trade.ids if self._trade else {}
        result = replace(bp.order_from_ccxt(raw, endpoint=label, ids=ids), client_order_id=client_order_id)
        if result.status == "FILLED" and not algo:
            result = await self._with_fills(result)
        return result

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The order with this client id (regular or SL/TP algo order), or ``None`` if never seen."""
        if client_order_id in self._algo_ids:
            return await self._lookup(symbol, client_order_id, algo=True)
        found = await self._lookup(symbol, client_order_id, algo=False)
        if found is None and client_order_id not in self._regular_ids:
            found = await self._lookup(symbol, client_order_id, algo=True)
        return found

    async def fetch_market_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """Like :meth:`fetch_order` for a regular (non-conditional) order: one request."""
        return await self._lookup(symbol, client_order_id, algo=False)

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel by client id; an order that no longer exists counts as cancelled."""
        algo = client_order_id in self._algo_ids
        exchange_id = bp.binance_client_id(client_order_id)
        unified = await self._unified(symbol, order_venue=True, endpoint=bp.ENDPOINTS["orderDelete"].label)
        try:
            await self._cancel(unified, exchange_id, algo=algo)
        except ExchangeError as exc:
            if exc.reason != "order_not_found":
                raise
            if not algo and client_order_id not in self._regular_ids:
                try:
                    await self._cancel(unified, exchange_id, algo=True)
                except ExchangeError as algo_exc:
                    if algo_exc.reason != "order_not_found":
                        raise
            self._log.event("ORDER_CANCEL_NOT_FOUND", client_order_id=client_order_id, symbol=symbol)
            return
        self._log.event("ORDER_CANCELLED", client_order_id=client_order_id, symbol=symbol)

    async def _cancel(self, unified: str, exchange_id: str, *, algo: bool) -> None:
        params: dict[str, object] = {"clientOrderId": exchange_id}
        if algo:
            params["trigger"] = True
        await self._call("algoOrderDelete" if algo else "orderDelete", None, unified, params)

    async def _with_fills(self, result: OrderResult) -> OrderResult:
        """Add the fee (USDT) from the order's trades; BNB (or other) commissions at their mark price."""
        extra = dict(result.extra)
        try:
            unified = await self._unified(result.symbol, order_venue=True)
            fills = bp.fills_from_ccxt(
                await self._call("userTrades", unified, None, None, {"orderId": result.order_id}),
                order_id=result.order_id,
            )
        except ExchangeError as exc:
            self._log.warn("ORDER_FEE_UNKNOWN", order_id=result.order_id, reason=exc.reason)
            extra["fee_source"] = "unavailable"
            return replace(result, extra=extra)
        prices: dict[str, float] = {}
        foreign = [a for a in fills.commission if a not in bp.USD_LIKE]
        if foreign:
            try:
                prices = await self.mark_prices([f"{a}USDT" for a in foreign])
            except ExchangeError as exc:
                self._log.warn("ORDER_FEE_CONVERSION_FAILED", order_id=result.order_id, reason=exc.reason)
        fee, missing = bp.fee_in_usdt(fills.commission, prices)
        extra["fee_source"] = "trades" if not missing else "unconverted:" + ",".join(sorted(missing))
        extra["commission"] = ",".join(f"{a}:{v:.8g}" for a, v in sorted(fills.commission.items()))
        price = result.price if result.price > 0 else fills.avg_price
        return replace(result, fee_usd=fee, price=price, extra=extra)

    async def close(self) -> None:
        for transport in (self._data, self._trade):
            if transport is not None:
                try:
                    await transport.close()
                except Exception as exc:  # closing must not fail a shutdown
                    self._log.warn("EXCHANGE_CLOSE_FAILED", error=type(exc).__name__)
        await asyncio.sleep(0)


def _short(exc: BaseException) -> str:
    """An exception's text, one line, bounded (ccxt texts carry the reply body, never the keys)."""
    return " ".join(str(exc).split())[:300]
