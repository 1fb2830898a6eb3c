"""Shared helpers for router/snapshot/inspect tests that run worker shells against the real test Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aredis
from quantum_trader.core.clock import Clock, WallClock
from quantum_trader.core.messages import Signal
from quantum_trader.core.profile import TradingProfile, parse_profile
from quantum_trader.core.service import ExchangeFactory, WorkerContext, WorkerMain


def profile(name: str = "paper", **spec: Any) -> TradingProfile:
    return parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                          "metadata": {"name": name}, "spec": spec})


def signal(
    symbol: str,
    conf: float,
    *,
    now_ms: int,
    side: str = "BUY",
    sid: str | None = None,
    rl: bool = False,
    regime: str = "unknown",
    model: str = "lgbm-1",
    atr: float = 1.0,
    price: float = 100.0,
) -> Signal:
    return Signal.model_validate(
        dict(signal_id=sid or f"s-{symbol}-{conf}", symbol=symbol, side=side, confidence=conf, model=model,
             model_version="1", price=price, atr=atr, regime=regime, rl_gate_pass=rl, ts=now_ms)
    )


def context(
    redis_url: str,
    prof: TradingProfile,
    *,
    name: str,
    consumer: str | None = None,
    clock: Clock | None = None,
    exchange_factory: ExchangeFactory | None = None,
    stop: asyncio.Event | None = None,
) -> WorkerContext:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    return WorkerContext(
        name=name, profile=prof, redis=client, clock=clock or WallClock(), stop=stop or asyncio.Event(),
        exchange_factory=exchange_factory, consumer=consumer,
    )


@contextlib.asynccontextmanager
async def running(ctx: WorkerContext, main: WorkerMain) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(main(ctx))
    try:
        yield task
    finally:
        ctx.stop.set()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await ctx.redis.aclose()


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def events(records: list[logging.LogRecord], name: str | None = None) -> list[dict[str, Any]]:
    """The structured events logged (``{"event": ..., **fields}``), optionally only ``name``."""
    out = []
    for r in records:
        ev = getattr(r, "qt_event", None)
        if ev is None or (name is not None and ev != name):
            continue
        out.append({"event": ev, **getattr(r, "qt_fields", {})})
    return out
