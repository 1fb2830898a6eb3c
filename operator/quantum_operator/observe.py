"""What the operator reads from Redis: heartbeats, the active universe, funnel counts; pause flags.

Every call is bounded by short timeouts and never raises for an unreachable
Redis: the caller gets ``RedisObs(reachable=False, error=...)`` and the status
says Degraded, naming it. Keys come from ``quantum_trader.core.keys.Keys`` only.

Replies are read undecoded (bytes) and parsed defensively: a non-UTF-8 byte in a stream entry, a
heartbeat or the universe (a poison entry, a neighbour's garbage) is counted or ignored, never
raised — the operator's reconcile must not die of what a worker wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import redis.asyncio as aredis
from quantum_trader.core.connection import async_client
from quantum_trader.core.keys import WORKERS, Keys
from redis.exceptions import RedisError

from quantum_operator.status import FUNNEL_WINDOW_S, RedisObs, UniverseObs

FUNNEL_CAP: Final = 10_000  # XREVRANGE COUNT cap per stream and tick (status shows at most this)


class RedisPool:
    """One client per URL, reused across reconciles (the operator may watch many profiles)."""

    def __init__(self, *, timeout: float = 1.0) -> None:
        self._timeout = timeout
        self._clients: dict[str, aredis.Redis] = {}

    def client(self, url: str) -> aredis.Redis:
        c = self._clients.get(url)
        if c is None:
            c = async_client(
                url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry_on_timeout=False,
                decode_responses=False,  # bytes: a non-UTF-8 value must not fail inside the client
            )
            self._clients[url] = c
        return c

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for c in clients.values():
            await c.aclose()


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):  # garbage, NaN, inf
        return default


def parse_universe(raw: bytes | str | None) -> UniverseObs | None:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(doc, Mapping):
        return None
    symbols = doc.get("symbols") or []
    return UniverseObs(
        hash=str(doc.get("universe_hash", "")),
        count=len(symbols) if isinstance(symbols, list) else 0,
        generated_at_ms=_int(doc.get("generated_at")),
        valid_until_ms=_int(doc.get("valid_until")),
    )


async def observe(client: aredis.Redis, *, keys: Keys, now_ms: int, source: str) -> RedisObs:
    """One pipelined round trip: 6 heartbeats, the universe, 4 windowed stream counts."""
    stages = {
        "signals": keys.ai_signal,
        "intents": keys.trade_intent,
        "decisions": keys.gate_decision,
        "executions": keys.execution_result,
    }
    since = f"{max(0, now_ms - FUNNEL_WINDOW_S * 1000)}-0"
    try:
        async with client.pipeline(transaction=False) as pipe:
            for w in WORKERS:
                pipe.hget(keys.heartbeat(w), "ts")
            pipe.get(keys.universe_active)
            for stream in stages.values():
                pipe.xrevrange(stream, "+", since, count=FUNNEL_CAP)
            replies = await pipe.execute()
    except (RedisError, OSError) as exc:
        return RedisObs(reachable=False, error=_error(exc), source=source)
    heartbeats = {
        w: _int(ts) for w, ts in zip(WORKERS, replies[: len(WORKERS)], strict=True) if ts is not None
    }
    universe = parse_universe(replies[len(WORKERS)])
    counts = {stage: len(r or []) for stage, r in zip(stages, replies[len(WORKERS) + 1 :], strict=True)}
    return RedisObs(reachable=True, heartbeats_ms=heartbeats, universe=universe, funnel=counts, source=source)


async def set_flag(client: aredis.Redis, *, key: str, reason: str, on: bool) -> str:
    """Set (value = reason JSON) or clear a control flag; returns '' or the error text."""
    try:
        if on:
            await client.set(key, reason)
        else:
            await client.delete(key)
    except (RedisError, OSError) as exc:
        return _error(exc)
    return ""
