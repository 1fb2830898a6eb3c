"""``qt run``: the six workers in one process, with a live funnel view.

The view is a pure :func:`render` of a frozen :class:`Funnel`, which a
:class:`FunnelCollector` builds by reading the profile's streams incrementally
(``XRANGE`` from the last id it saw), once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aredis

from quantum_trader.core import logs
from quantum_trader.core.clock import Clock
from quantum_trader.core.embedded import EmbeddedRedis, EmbeddedRedisError
from quantum_trader.core.keys import WORKERS, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import TradingProfile
from quantum_trader.inspect.timebase import clock_fields
from quantum_trader.universe import publication

_CHUNK: Final = 2000


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    side: str
    qty: float
    entry_price: float


@dataclass(frozen=True, slots=True)
class Funnel:
    """What the pipeline did since ``qt run`` started."""

    profile: str
    elapsed_s: float
    universe_size: int = 0
    universe_hash: str = ""
    signals: int = 0
    fallback_signals: int = 0
    intents: int = 0
    router_drops: Mapping[str, int] = field(default_factory=dict)
    execute: int = 0
    blocked: int = 0
    block_reasons: Mapping[str, int] = field(default_factory=dict)
    fills: int = 0
    rejects: int = 0
    opened: int = 0
    closed: int = 0
    realized_pnl_usd: float = 0.0
    fees_usd: float = 0.0
    open_orders: str = "-"
    positions: tuple[OpenPosition, ...] = ()
    deadletters: int = 0


def _top(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def render(f: Funnel, *, log_file: str = "") -> str:
    """The funnel as a screenful of text (pure)."""
    lines = [
        f"Quantum Trader — profile {f.profile} — {f.elapsed_s:,.0f}s   (Ctrl-C drains and stops)",
        *([f"logs: {log_file}   ·   in another terminal: qt check, qt why SYMBOL"] if log_file else []),
        "",
        f"  universe   {f.universe_size:>7}   hash {f.universe_hash or '-'}",
        f"  signals    {f.signals:>7}   {'(' + str(f.fallback_signals) + ' from a FALLBACK model)' if f.fallback_signals else ''}",
        f"  intents    {f.intents:>7}   router dropped {sum(f.router_drops.values())}",
        f"  gate       {f.execute:>7} EXECUTE   {f.blocked} BLOCKED",
        f"  fills      {f.fills:>7}   rejected {f.rejects}   fees ${f.fees_usd:,.2f}",
        f"  positions  {f.opened:>7} opened   {f.closed} closed   realised PnL ${f.realized_pnl_usd:+,.2f}",
        f"  open_orders {f.open_orders:>6}   dead letters {f.deadletters}",
    ]
    if f.router_drops:
        lines += ["", "  router drops: " + ", ".join(f"{r}={n}" for r, n in _top(f.router_drops, 5))]
    if f.block_reasons:
        lines += ["", "  top block reasons:"]
        lines += [f"    {n:>6}  {r}" for r, n in _top(f.block_reasons, 6)]
    if f.positions:
        lines += ["", "  open positions:"]
        lines += [f"    {p.symbol:<14} {p.side:<4} qty {p.qty:<12g} entry {p.entry_price:g}" for p in f.positions[:10]]
    return "\n".join(lines)


def summary_fields(f: Funnel) -> dict[str, Any]:
    return {
        "universe": f.universe_size, "signals": f.signals, "fallback_signals": f.fallback_signals,
        "intents": f.intents, "execute": f.execute, "blocked": f.blocked, "fills": f.fills,
        "rejects": f.rejects, "closed": f.closed, "pnl_usd": round(f.realized_pnl_usd, 4),
        "open_orders": f.open_orders, "deadletters": f.deadletters,
    }


class FunnelCollector:
    """Reads the profile's streams incrementally and keeps running counts."""

    def __init__(self, client: aredis.Redis, *, keys: Keys, started: float) -> None:
        self._redis = client
        self._keys = keys
        self._started = started
        self._last: dict[str, str] = {}
        self._n: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._blocks: Counter[str] = Counter()
        self._pnl = 0.0
        self._fees = 0.0

    async def _new(self, stream: str) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        start = self._last.get(stream)
        if start is None:  # count only what happens during this run
            start = f"{int(self._started * 1000)}-0"
        while True:
            rows = await self._redis.xrange(stream, min=f"({start}" if stream in self._last else start, count=_CHUNK)
            if not rows:
                break
            for entry_id, fields in rows:
                out.append({str(a): str(b) for a, b in (fields or {}).items()})
                start = str(entry_id)
            self._last[stream] = start
            if len(rows) < _CHUNK:
                break
        return out

    async def collect(self) -> Funnel:
        k = self._keys
        for fields in await self._new(k.ai_signal):
            self._n["signals"] += 1
            if str(fields.get("model", "")).startswith("fallback"):
                self._n["fallback"] += 1
        self._n["intents"] += len(await self._new(k.trade_intent))
        for fields in await self._new(k.router_drop):
            self._drops[fields.get("reason", "?").split(":", 1)[0]] += 1
        for fields in await self._new(k.gate_decision):
            if fields.get("decision") == "EXECUTE":
                self._n["execute"] += 1
            else:
                self._n["blocked"] += 1
                self._blocks[fields.get("reason", "?")] += 1
        for fields in await self._new(k.execution_result):
            self._n["fills" if fields.get("status") == "FILLED" else "rejects"] += 1
            with contextlib.suppress(ValueError):
                self._fees += float(fields.get("fee_usd", 0) or 0)
        for fields in await self._new(k.position_event):
            if fields.get("event") == "CLOSED":
                self._n["closed"] += 1
                with contextlib.suppress(ValueError):
                    self._pnl += float(fields.get("pnl_usd", 0) or 0)
            else:
                self._n["opened"] += 1
        self._n["dead"] += len(await self._new(k.deadletter))
        doc = publication.parse_document(await self._redis.get(k.universe_active))
        symbols = publication.active_symbols(doc, now_ms=int(time.time() * 1000))
        universe_size = len(symbols)
        universe_hash = str(doc.get("universe_hash", "")) if doc else ""
        if doc and not symbols:
            universe_hash += " (expired or invalid: trading nothing)"
        positions: list[OpenPosition] = []
        for sym, payload in (await self._redis.hgetall(k.positions)).items():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                p = json.loads(payload)
                positions.append(OpenPosition(str(sym), str(p["side"]), float(p["qty"]), float(p["entry_price"])))
        return Funnel(
            profile=k.profile, elapsed_s=time.time() - self._started, universe_size=universe_size,
            universe_hash=universe_hash, signals=self._n["signals"], fallback_signals=self._n["fallback"],
            intents=self._n["intents"], router_drops=dict(self._drops), execute=self._n["execute"],
            blocked=self._n["blocked"], block_reasons=dict(self._blocks), fills=self._n["fills"],
            rejects=self._n["rejects"], opened=self._n["opened"], closed=self._n["closed"],
            realized_pnl_usd=self._pnl, fees_usd=self._fees,
            open_orders=str(await self._redis.get(k.open_orders) or "-"), positions=tuple(sorted(positions,
            key=lambda p: p.symbol)), deadletters=self._n["dead"],
        )


async def _pipeline(
    profile: TradingProfile, *, redis_url: str, clock: Clock, duration_s: float | None, http_port: int | None,
    view: bool, log: EventLog, log_file: str = "", api_token: str | None = None,
) -> Funnel:
    from quantum_trader.core.service import run_workers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started = time.time()
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    clock_map: dict[Any, Any] = clock_fields(
        speed=float(getattr(clock, "speed", 1.0)), wall_ms=int(time.time() * 1000), sim_ms=clock.now_ms())
    with contextlib.suppress(Exception):  # without it qt check / qt why assume wall time = pipeline time
        await client.hset(Keys(profile.name).run_clock, mapping=clock_map)
    collector = FunnelCollector(client, keys=Keys(profile.name), started=started)
    routes = None
    if http_port is not None and api_token is not None:
        from quantum_trader.ops.api import build_router

        routes = build_router(profile=profile, redis_url=redis_url, token=api_token)
    workers = asyncio.create_task(run_workers(
        list(WORKERS), profile=profile, redis_url=redis_url, clock=clock, stop=stop,
        http_port=http_port, restart=True, http_routes=routes,
    ))
    funnel = Funnel(profile=profile.name, elapsed_s=0.0)
    last_line = 0.0
    try:
        while not stop.is_set() and not workers.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            with contextlib.suppress(Exception):
                funnel = await collector.collect()
            if view:
                sys.stdout.write("\x1b[H\x1b[2J" + render(funnel, log_file=log_file) + "\n")
                sys.stdout.flush()
            elif time.time() - last_line >= 10:
                last_line = time.time()
                log.event("FUNNEL", **summary_fields(funnel))
            if duration_s is not None and time.time() - started >= duration_s:
                log.event("RUN_DURATION_REACHED", seconds=duration_s)
                stop.set()
    finally:
        stop.set()
        await workers
        with contextlib.suppress(Exception):
            funnel = await collector.collect()
        await client.aclose()
    return funnel


def run_pipeline(
    profile: TradingProfile,
    *,
    redis_url: str | None,
    clock: Clock,
    duration_s: float | None,
    http_port: int | None,
    view: bool,
    url_file: Path,
    log_format: logs.LogFormat = "text",
) -> int:
    """Run all workers until Ctrl-C/SIGTERM or ``duration_s``; print the final funnel; return 0."""
    embedded: EmbeddedRedis | None = None
    log = EventLog(worker="run", profile=profile.name)
    log_file: Path | None = None
    if view:
        log_file = url_file.with_suffix(".log")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logs.configure(log_format, stream=log_file.open("a", buffering=1))
    try:
        if not redis_url:
            try:
                embedded = EmbeddedRedis().start()
            except EmbeddedRedisError as exc:
                print(f"qt run: {exc}", file=sys.stderr)
                return 1
            redis_url = embedded.url
        url_file.parent.mkdir(parents=True, exist_ok=True)
        url_file.write_text(redis_url)
        log.event("RUN_STARTED", redis=redis_url, embedded=embedded is not None, exchange=profile.spec.exchange.name,
                  speed=getattr(clock, "speed", 1.0), log_file=str(log_file or "stderr"),
                  hint="REDIS_URL is found by qt check / qt why while this runs")
        api_token: str | None = None
        if http_port is not None:
            from quantum_trader.ops.api import ensure_token

            token_file = url_file.with_suffix(".api-token")
            api_token = ensure_token(token_file)
            log.event("API_LISTENING", url=f"http://127.0.0.1:{http_port}/docs",
                      token=f"${{QT_API_TOKEN}} or the file {token_file}")
        funnel = asyncio.run(_pipeline(
            profile, redis_url=redis_url, clock=clock, duration_s=duration_s, http_port=http_port, view=view,
            log=log, log_file=str(log_file or ""), api_token=api_token,
        ))
        log.event("RUN_STOPPED", **summary_fields(funnel))
        print(render(funnel))
        return 0
    finally:
        with contextlib.suppress(OSError):
            if url_file.exists() and url_file.read_text() == (redis_url or ""):
                url_file.unlink()
        if embedded is not None:
            embedded.stop()
