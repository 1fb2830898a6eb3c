"""Where orders go: the paper venue (simulated fills) or an exchange venue (testnet/live).

The executor's shell rounds and sizes an EXECUTE decision into a :class:`VenueOrder`
(using the exchange filters), hands it to its venue, and turns the :class:`VenueFill`
into an ``ExecutionResult``. The venue must be idempotent per ``client_order_id``:
submitting the same id twice returns the first result and never trades twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from quantum_trader.market.base import Position


@dataclass(frozen=True, slots=True)
class VenueOrder:
    intent_id: str
    client_order_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    qty: float  # already rounded to the step size
    reference_price: float  # the snapshot/mark price the decision was made at
    reduce_only: bool = False
    bid: float = 0.0  # the snapshot's best bid/ask when it carries them (0 = unknown): the paper venue
    ask: float = 0.0  # crosses to them; otherwise it charges the profile's spread around the mark


@dataclass(frozen=True, slots=True)
class VenueFill:
    status: Literal["FILLED", "REJECTED"]
    order_id: str
    qty: float
    price: float
    fee_usd: float
    reason: str = "none"  # reason code when REJECTED: min_notional, insufficient_margin, rate_limited, ...


@runtime_checkable
class Venue(Protocol):
    mode: Literal["paper", "testnet", "live"]

    async def submit(self, order: VenueOrder) -> VenueFill:
        """Place the order and wait for its fill (or rejection)."""
        ...

    async def positions(self) -> list[Position] | None:
        """The exchange's own view of open positions; ``None`` when Redis is the truth (paper)."""
        ...
