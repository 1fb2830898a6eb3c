"""The paper venue: fills every order across the spread from its reference (mark) price, with bounded
slippage and a taker fee, as a taker on the exchange would be filled.

Deterministic: the order id and the slippage come from the client order id, so
submitting the same order twice returns the same fill (idempotent per
``client_order_id``, as the :class:`~quantum_trader.executor.venue.Venue` protocol requires).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor.core import Filters, paper_fill
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.market.base import Position


class PaperVenue:
    """Simulated fills; Redis is the truth for positions (``positions()`` is ``None``).

    ``spread_bps``: the full bid/ask spread charged around the mark when the order carries no
    bid/ask (the profile's ``universe.spreadBps``, passed explicitly: the router's cost estimate
    uses the same value).
    """

    mode: Literal["paper", "testnet", "live"] = "paper"

    def __init__(self, *, settings: ExecutorSettings, filters: Mapping[str, Filters], spread_bps: float) -> None:
        self._settings = settings
        self._filters = filters
        self._spread_bps = spread_bps

    def fill(self, order: VenueOrder) -> VenueFill:
        """The fill for ``order`` (pure; :meth:`submit` is the async protocol method)."""
        tick = self._filters[order.symbol].tick_size if order.symbol in self._filters else 0.0
        return paper_fill(order, spread_bps=self._spread_bps, tick=tick,
                          max_slippage_bps=self._settings.max_slippage_bps, fee_bps=self._settings.fee_bps)

    async def submit(self, order: VenueOrder) -> VenueFill:
        return self.fill(order)

    async def positions(self) -> list[Position] | None:
        return None
