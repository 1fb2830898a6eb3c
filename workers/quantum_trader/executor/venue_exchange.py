"""The exchange venue (testnet / live): real MARKET orders, the real fill price and fee.

``submit`` is idempotent per ``client_order_id`` (= intent id): it first asks the
exchange for an order with that client id (an executor that crashed after the
fill but before writing Redis finds its order again), then places a MARKET order
with the client id and polls it until it is filled (bounded). The fee is the
sum of the order's trade commissions in USDT; a commission paid in another asset
(BNB) is converted at that asset's USDT mark price; when the trades or the price
are unavailable the fee is estimated from ``executor.feeBps`` and the log says so.
"""

from __future__ import annotations

from typing import Any, Final, Literal, Protocol

from quantum_trader.core.clock import Clock, WallClock
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.market.base import ExchangeError, OrderRequest, OrderResult, Position

Mode = Literal["paper", "testnet", "live"]
POLL_INTERVAL_S: Final = 0.5
MAX_POLLS: Final = 20
DONE_CACHE: Final = 10_000  # recent results kept in memory (the exchange lookup covers older ids)


class OrderExchange(Protocol):
    """What the venue needs from an exchange adapter (``BinanceExchange`` has all of it)."""

    async def place_order(self, order: OrderRequest) -> OrderResult: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None: ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> None: ...

    async def positions(self) -> list[Position]: ...


def fill_from_result(result: OrderResult, *, fee_bps: float) -> VenueFill | None:
    """A final :class:`VenueFill` for an order result, ``None`` while it is still working (pure).

    Partially executed then expired/cancelled orders are FILLED with the executed qty.
    """
    executed = float(result.extra.get("executed_qty", repr(result.qty)))
    if result.status == "FILLED" or (result.status == "CANCELED" and executed > 0 and result.price > 0):
        qty = executed if executed > 0 else result.qty
        fee = result.fee_usd
        if result.extra.get("fee_source", "trades") != "trades":
            fee = max(fee, qty * result.price * fee_bps / 10_000.0)
        return VenueFill(status="FILLED", order_id=result.order_id, qty=qty, price=result.price, fee_usd=fee)
    if result.status == "REJECTED":
        return VenueFill(
            status="REJECTED", order_id=result.order_id, qty=0.0, price=0.0, fee_usd=0.0,
            reason=result.reason if result.reason != "none" else "exchange_error",
        )
    if result.status == "CANCELED":
        return VenueFill(status="REJECTED", order_id=result.order_id, qty=0.0, price=0.0, fee_usd=0.0,
                         reason="canceled")
    return None


class ExchangeVenue:
    """:class:`~quantum_trader.executor.venue.Venue` for testnet and live trading."""

    def __init__(
        self,
        *,
        exchange: Any,
        settings: ExecutorSettings,
        mode: Mode | None = None,
        clock: Clock | None = None,
        log: EventLog | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        max_polls: int = MAX_POLLS,
    ) -> None:
        venue_mode = mode or getattr(exchange, "mode", None)
        if venue_mode not in ("testnet", "live"):
            raise ValueError(f"ExchangeVenue trades testnet or live, not {venue_mode!r}")
        self.mode: Mode = venue_mode
        self._exchange: OrderExchange = exchange
        self._settings = settings
        self._clock = clock or WallClock()
        self._log = log or EventLog(component="venue", mode=venue_mode)
        self._poll_interval = poll_interval_s
        self._max_polls = max(0, max_polls)
        self._done: dict[str, VenueFill] = {}

    async def submit(self, order: VenueOrder) -> VenueFill:
        """Place ``order`` as a MARKET order and wait for its fill; never trades twice for one client id."""
        if order.client_order_id in self._done:
            return self._done[order.client_order_id]
        fee_bps = self._settings.fee_bps
        try:
            result = await self._fetch(order)
            if result is not None:
                self._log.event("VENUE_ORDER_EXISTS", client_order_id=order.client_order_id, status=result.status)
            else:
                result = await self._exchange.place_order(
                    OrderRequest(
                        symbol=order.symbol,
                        side=order.side,
                        qty=order.qty,
                        client_order_id=order.client_order_id,
                        reduce_only=order.reduce_only,
                    )
                )
            fill = fill_from_result(result, fee_bps=fee_bps)
            polls = 0
            while fill is None and polls < self._max_polls:
                polls += 1
                await self._clock.sleep(self._poll_interval)
                fetched = await self._fetch(order)
                if fetched is not None:
                    result = fetched
                    fill = fill_from_result(result, fee_bps=fee_bps)
            if fill is None:
                fill = await self._give_up(order, fee_bps=fee_bps)
        except ExchangeError as exc:
            self._log.warn("VENUE_ORDER_FAILED", client_order_id=order.client_order_id, reason=exc.reason)
            return VenueFill(status="REJECTED", order_id="", qty=0.0, price=0.0, fee_usd=0.0, reason=exc.reason)
        if fill.status == "FILLED" and order.reference_price > 0:
            direction = 1 if order.side == "BUY" else -1
            slip = (fill.price / order.reference_price - 1.0) * direction * 10_000.0
            self._log.event(
                "VENUE_FILLED", client_order_id=order.client_order_id, order_id=fill.order_id, qty=fill.qty,
                price=fill.price, fee_usd=fill.fee_usd, slippage_bps=round(slip, 3),
            )
        self._done[order.client_order_id] = fill
        while len(self._done) > DONE_CACHE:
            self._done.pop(next(iter(self._done)))
        return fill

    async def _fetch(self, order: VenueOrder) -> OrderResult | None:
        """The MARKET order by client id (one request where the adapter offers it)."""
        fetch_market = getattr(self._exchange, "fetch_market_order", None)
        if fetch_market is not None:
            found: OrderResult | None = await fetch_market(order.symbol, order.client_order_id)
            return found
        return await self._exchange.fetch_order(order.symbol, order.client_order_id)

    async def _give_up(self, order: VenueOrder, *, fee_bps: float) -> VenueFill:
        """Still working after the polls: cancel, then report what executed (if anything)."""
        self._log.warn("VENUE_FILL_TIMEOUT", client_order_id=order.client_order_id, polls=self._max_polls)
        await self._exchange.cancel_order(order.symbol, order.client_order_id)
        final = await self._fetch(order)
        fill = fill_from_result(final, fee_bps=fee_bps) if final is not None else None
        if fill is None or fill.status != "FILLED":
            return VenueFill(status="REJECTED", order_id=final.order_id if final else "", qty=0.0, price=0.0,
                             fee_usd=0.0, reason="fill_timeout")
        return fill

    async def positions(self) -> list[Position] | None:
        """The exchange's own view of open positions."""
        return await self._exchange.positions()

    async def working_orders(self) -> int:
        """Open entry orders on the exchange (0 when the adapter cannot tell)."""
        counter = getattr(self._exchange, "working_orders", None)
        if counter is None:
            return 0
        n: int = await counter()
        return n
