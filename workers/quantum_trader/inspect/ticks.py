"""Tick sizes for showing prices the way the exchange quotes them.

Only the offline exchanges (``sim``, ``replay``) are asked: they answer from
local data in milliseconds. For ``binanceusdm`` no request is made and prices
are shown to six significant digits instead (:func:`quantum_trader.inspect.fmt.price`).
"""

from __future__ import annotations

import asyncio
import contextlib

from quantum_trader.core.profile import TradingProfile


def tick_sizes(profile: TradingProfile) -> dict[str, float]:
    """Symbol → tick size for a sim or replay profile; ``{}`` for other exchanges or on any failure."""
    if profile.spec.exchange.name not in ("sim", "replay"):
        return {}
    from quantum_trader.core.clock import WallClock
    from quantum_trader.market.base import Market
    from quantum_trader.market.factory import build_exchange

    with contextlib.suppress(Exception):  # ticks only format prices: never a reason to fail a command
        exchange = build_exchange(profile.spec.exchange, clock=WallClock(), environment=profile.spec.environment)

        async def load() -> list[Market]:
            try:
                return await exchange.markets()
            finally:
                await exchange.close()

        markets = asyncio.run(load())
        return {m.symbol: m.tick_size for m in markets if m.tick_size > 0}
    return {}
