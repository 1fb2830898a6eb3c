"""Build the exchange a profile asks for (``spec.exchange.name``): sim, replay or binanceusdm."""

from __future__ import annotations

import time
from typing import Literal, cast, get_args

from quantum_trader.core.clock import Clock, VirtualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import Exchange, ExchangeError

Environment = Literal["paper", "testnet", "production"]


def build_exchange(settings: ExchangeSettings, *, clock: Clock, environment: str) -> Exchange:
    """The adapter for ``settings.name``; binanceusdm is imported lazily (ccxt is heavy).

    Raises :class:`ExchangeError` (reason ``exchange_unavailable``) when the adapter cannot be built.
    """
    if settings.name == "sim":
        from quantum_trader.market.sim import SimExchange

        return SimExchange(settings, clock=clock)
    if settings.name == "replay":
        from quantum_trader.market.replay import ReplayExchange

        return ReplayExchange(settings, clock=clock)
    if settings.name == "binanceusdm":
        try:
            from quantum_trader.market.binance import BinanceExchange
        except ImportError as exc:
            raise ExchangeError(
                f"the binanceusdm adapter cannot be imported ({exc}); is ccxt installed?",
                reason="exchange_unavailable",
            ) from None
        if environment not in get_args(Environment):
            raise ExchangeError(f"unknown environment {environment!r}", reason="exchange_unavailable")
        exchange: Exchange = BinanceExchange.from_settings(
            settings, clock=clock, environment=cast(Environment, environment)
        )
        return exchange
    raise ExchangeError(f"unknown exchange {settings.name!r}", reason="exchange_unavailable")


def sim_clock(speed: float, *, now_ms: int | None = None) -> VirtualClock:
    """A virtual clock for the sim: starts at ``now_ms`` (default: the wall clock) and runs ``speed``× faster."""
    start = int(time.time() * 1000) if now_ms is None else now_ms
    return VirtualClock(start_ms=start, speed=speed)
