"""The paper venue: fills every order at its reference (mark) price with bounded slippage and a taker fee.

Deterministic: the order id and the slippage come from the client order id, so
submitting the same order twice returns the same fill (idempotent per
``client_order_id``, as the :class:`~quantum_trader.executor.venue.Venue` protocol requires).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor.core import (
    Filters,
    fee_usd,
    paper_fill_price,
    paper_order_id,
    paper_slippage_bps,
)
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.market.base import Position


class PaperVenue:
    """Simulated fills; Redis is the truth for positions (``positions()`` is ``None``)."""

    mode: Literal["paper", "testnet", "live"] = "paper"

    def __init__(self, *, settings: ExecutorSettings, filters: Mapping[str, Filters]) -> None:
        self._settings = settings
        self._filters = filters

    def fill(self, order: VenueOrder) -> VenueFill:
        """The fill for ``order`` (pure; :meth:`submit` is the async protocol method)."""
        tick = self._filters[order.symbol].tick_size if order.symbol in self._filters else 0.0
        slip = paper_slippage_bps(order.client_order_id, self._settings.max_slippage_bps)
        price, _ = paper_fill_price(
            side=order.side,
            reference=order.reference_price,
            slippage_bps=slip,
            tick=tick,
            max_slippage_bps=self._settings.max_slippage_bps,
        )
        return VenueFill(
            status="FILLED",
            order_id=paper_order_id(order.client_order_id),
            qty=order.qty,
            price=price,
            fee_usd=fee_usd(order.qty * price, self._settings.fee_bps),
        )

    async def submit(self, order: VenueOrder) -> VenueFill:
        return self.fill(order)

    async def positions(self) -> list[Position] | None:
        return None
