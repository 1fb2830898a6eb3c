"""``qt run``: the six workers in one process, with a live view of the pipeline.

The view is a pure :func:`render` of a frozen :class:`Funnel` (a rich renderable: tables that read
the same without colour, ``NO_COLOR`` honoured), which a :class:`FunnelCollector` builds by reading
the profile's streams incrementally (``XRANGE`` from the last id it saw), once a second. A rich
``Live`` redraws it in place (no clearing, no flicker); its last frame stays on the screen when the
run stops and nothing is printed twice. Without a terminal the run logs a ``FUNNEL`` line every 10 s
and prints :func:`summary_text` once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aredis
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from quantum_trader import runstate
from quantum_trader.core import acl, diagnostics, logs
from quantum_trader.core.bus import raw_command, redis_auth_kwargs
from quantum_trader.core.clock import Clock
from quantum_trader.core.connection import async_client
from quantum_trader.core.embedded import EmbeddedRedis, EmbeddedRedisError
from quantum_trader.core.keys import WORKERS, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import ExecutionResult, MessageError, PositionEvent
from quantum_trader.core.profile import TradingProfile
from quantum_trader.inspect import fmt
from quantum_trader.inspect.timebase import clock_fields
from quantum_trader.ledger import universe as universe_doc
from quantum_trader.ops.core import Trade, trades
from quantum_trader.router import core as router_core

_CHUNK: Final = 2000
RECENT: Final = 6  # last trades shown
FALLBACK_PREFIX: Final = "fallback"
# router "drops" that are verdicts on held positions (acted on: renewed or closed), shown apart
HELD_VERDICTS: Final = {router_core.POSITION_RENEWED: "renewed", router_core.POSITION_REVERSED: "closed on reversal"}


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    side: str
    qty: float
    entry_price: float
    mark_price: float | None = None
    opened_ts: int = 0  # pipeline time

    @property
    def unrealized_pnl_usd(self) -> float | None:
        if not self.mark_price:
            return None
        return (self.mark_price - self.entry_price) * self.qty * (1 if self.side == "BUY" else -1)


@dataclass(frozen=True, slots=True)
class ModelInUse:
    """What the ai worker serves, from its newest signal and the registry."""

    name: str = ""  # e.g. lgbm-20261204-1012 or fallback-trend; "" before the first signal
    version: str = ""
    age_s: float | None = None  # trained models: since training; the fallback: since it began serving here
    promoted: str = ""  # model:promoted ("" = none)

    @property
    def fallback(self) -> bool:
        return self.name.startswith(FALLBACK_PREFIX)


@dataclass(frozen=True, slots=True)
class Funnel:
    """What the pipeline did since ``qt run`` started."""

    profile: str
    elapsed_s: float
    sim_now_ms: int = 0  # the pipeline's clock now
    speed: float = 1.0
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
    recent: tuple[Trade, ...] = ()  # newest first
    deadletters: int = 0
    model: ModelInUse = field(default_factory=ModelInUse)
    stopped: bool = False  # the final frame

    @property
    def unrealized_pnl_usd(self) -> float:
        return sum(p.unrealized_pnl_usd or 0.0 for p in self.positions)


def _top(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _pnl(usd: float | None) -> Text:
    if usd is None:
        return Text("-", style="dim")
    return Text(fmt.money(usd, signed=True), style="green" if usd > 0 else ("red" if usd < 0 else ""))


def sim_date(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000)) if ms else "-"


def model_text(m: ModelInUse) -> Text:
    if not m.name:
        return Text("no signal yet", style="dim")
    age = f", {fmt.human_duration(m.age_s)} old" if m.age_s is not None else ""
    if m.fallback:
        since = f", serving {fmt.human_duration(m.age_s)}" if m.age_s is not None else ""
        return Text.assemble((m.name, "bold yellow"), (" FALLBACK", "bold yellow"),
                             f" (no trained model promoted{since}; `qt train`)")
    return Text.assemble((m.name, "bold green"), f" version {m.version}{age}")


def render(f: Funnel, *, log_file: str = "", api_url: str = "", ticks: Mapping[str, float] | None = None,
           now_ms: int | None = None) -> RenderableType:
    """The whole screen as a rich renderable (pure). Ages are wall time (pipeline time / speed), one unit per
    column; prices on the symbol's tick. ``now_ms``: pipeline time now (default ``f.sim_now_ms``)."""
    ticks = ticks or {}
    now = f.sim_now_ms if now_ms is None else now_ms
    speed = f" ({f.speed:g}x)" if f.speed != 1.0 else ""
    head = Text.assemble(("Quantum Trader", "bold"), f" · profile {f.profile} · sim ", (sim_date(f.sim_now_ms), "cyan"),
                         speed, f" · stopped after {fmt.human_duration(f.elapsed_s)}" if f.stopped
                         else f" · running {fmt.human_duration(f.elapsed_s)} · Ctrl-C drains and stops")
    hints = " · ".join(x for x in (f"logs: {log_file}" if log_file else "", "qt check", "qt why SYMBOL",
                                   "qt positions", f"API {api_url}" if api_url else "") if x)
    stages = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    stages.add_column("stage")
    stages.add_column("count", justify="right")
    stages.add_column("detail")
    verdicts = {r: n for r, n in f.router_drops.items() if r in HELD_VERDICTS}  # acted on, not dropped
    dropped = {r: n for r, n in f.router_drops.items() if r not in HELD_VERDICTS}
    drops = ", ".join(f"{r} {n}" for r, n in _top(dropped, 4))
    held = " · held positions: " + ", ".join(f"{HELD_VERDICTS[r]} {n}" for r, n in sorted(verdicts.items())) \
        if verdicts else ""
    blocks = ", ".join(f"{r} {n}" for r, n in _top(f.block_reasons, 3))
    stages.add_row("universe", str(f.universe_size), f"hash {f.universe_hash or '-'}")
    stages.add_row("signals", str(f.signals), model_text(f.model))
    stages.add_row("intents", str(f.intents),
                   f"router dropped {sum(dropped.values())}" + (f": {drops}" if drops else "") + held)
    stages.add_row("gate", Text(f"{f.execute} EXECUTE", style="green" if f.execute else ""),
                   Text.assemble((f"{f.blocked} BLOCKED", "red" if f.blocked else ""), f": {blocks}" if blocks else ""))
    stages.add_row("fills", str(f.fills), f"rejected {f.rejects} · fees {fmt.money(f.fees_usd)}")
    stages.add_row("positions", f"{len(f.positions)} open",
                   Text.assemble(f"{f.opened} opened, {f.closed} closed · realised ", _pnl(f.realized_pnl_usd),
                                 " · unrealised ", _pnl(f.unrealized_pnl_usd if f.positions else 0.0)))
    stages.add_row("open_orders", f.open_orders,
                   Text(f"dead letters {f.deadletters}", style="bold red" if f.deadletters else "dim"))
    parts: list[RenderableType] = [head, Text(hints, style="dim"), stages]
    if f.positions:
        unit, ages = fmt.duration_column([max(0, now - p.opened_ts) / 1000.0 / f.speed for p in f.positions])
        t = Table(title="open positions", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        for name in ("symbol", "side", "qty", "entry", "mark", "unrealised", f"open ({unit})"):
            t.add_column(name, justify="left" if name in ("symbol", "side") else "right")
        for p, age in zip(f.positions[:10], ages, strict=False):
            tick = ticks.get(p.symbol)
            t.add_row(p.symbol, p.side, fmt.quantity(p.qty), fmt.price(p.entry_price, tick),
                      fmt.price(p.mark_price, tick) if p.mark_price else Text("no mark", style="yellow"),
                      _pnl(p.unrealized_pnl_usd), age)
        parts.append(t)
    if f.recent:
        unit, ages = fmt.duration_column([max(0, now - r.ts) / 1000.0 / f.speed for r in f.recent])
        t = Table(title="last trades", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        for name in (f"ago ({unit})", "symbol", "side", "qty", "price", "event", "realised"):
            t.add_column(name, justify="left" if name in ("symbol", "side", "event") else "right")
        for r, age in zip(f.recent, ages, strict=True):
            t.add_row(age, r.symbol, r.side, fmt.quantity(r.qty), fmt.price(r.price, ticks.get(r.symbol)),
                      r.event + (f" {r.close_reason}" if r.close_reason else ""), _pnl(r.realized_pnl_usd))
        parts.append(t)
    return Group(*parts)


def summary_text(f: Funnel) -> str:
    """The final funnel as plain lines (what a run without a terminal prints once at the end)."""
    console = Console(width=120, color_system=None, force_terminal=False, record=True, file=io.StringIO())
    console.print(render(f))
    return console.export_text().rstrip()


def summary_fields(f: Funnel) -> dict[str, Any]:
    return {
        "universe": f.universe_size, "signals": f.signals, "fallback_signals": f.fallback_signals,
        "intents": f.intents, "execute": f.execute, "blocked": f.blocked, "fills": f.fills,
        "rejects": f.rejects, "closed": f.closed, "pnl_usd": round(f.realized_pnl_usd, 4),
        "unrealized_pnl_usd": round(f.unrealized_pnl_usd, 4), "open_orders": f.open_orders,
        "deadletters": f.deadletters, "model": f.model.name or "-",
    }


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class FunnelCollector:
    """Reads the profile's streams incrementally and keeps running counts."""

    def __init__(self, client: aredis.Redis, *, keys: Keys, started: float, clock: Clock | None = None,
                 mode: str = "paper") -> None:
        self._redis = client
        self._keys = keys
        self._started = started
        self._clock = clock
        self._mode = mode
        self._last: dict[str, str] = {}
        self._n: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._blocks: Counter[str] = Counter()
        self._pnl = 0.0
        self._fees = 0.0
        self._fills: deque[ExecutionResult] = deque(maxlen=4 * RECENT)
        self._events: deque[PositionEvent] = deque(maxlen=RECENT)
        self._model = ""
        self._model_version = ""
        self._fallback_since_ms = 0  # wall ms of the first fallback signal seen in a fallback stretch

    async def _new(self, stream: str) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        start = self._last.get(stream)
        if start is None:  # count only what happens during this run
            start = f"{int(self._started * 1000)}-0"
        while True:
            # undecoded (core.bus.raw_command): a non-UTF-8 entry must not take the live view down
            rows = await raw_command(self._redis, "XRANGE", stream, f"({start}" if stream in self._last else start,
                                     "+", "COUNT", _CHUNK)
            if not rows:
                break
            for entry_id, fields in rows:
                out.append({_text(a): _text(b) for a, b in (fields or {}).items()})
                start = _text(entry_id)
            self._last[stream] = start
            if len(rows) < _CHUNK:
                break
        return out

    async def _model_in_use(self) -> ModelInUse:
        promoted = str(await self._redis.get(self._keys.model_promoted) or "")
        if not self._model:
            return ModelInUse(promoted=promoted)
        now = time.time() * 1000
        if self._model.startswith(FALLBACK_PREFIX):
            self._fallback_since_ms = self._fallback_since_ms or int(now)
            return ModelInUse(self._model, self._model_version, (now - self._fallback_since_ms) / 1000.0, promoted)
        self._fallback_since_ms = 0
        age: float | None = None
        with contextlib.suppress(ValueError, TypeError):
            card = json.loads(await self._redis.hget(self._keys.model_registry, self._model_version) or "{}")
            created = card.get("created_ms") if isinstance(card, dict) else None
            age = max(0.0, (now - int(created)) / 1000.0) if created is not None else None
        return ModelInUse(self._model, self._model_version, age, promoted)

    async def _positions(self) -> tuple[OpenPosition, ...]:
        raw = {str(k): v for k, v in (await self._redis.hgetall(self._keys.positions)).items()}
        symbols = sorted(raw)
        pipe = self._redis.pipeline(transaction=False)
        for sym in symbols:
            pipe.hget(self._keys.position_snapshot(sym), "mark_price")
        marks = await pipe.execute() if symbols else []
        out = []
        for sym, mark in zip(symbols, marks, strict=True):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                p = json.loads(raw[sym])
                out.append(OpenPosition(str(sym), str(p["side"]), float(p["qty"]), float(p["entry_price"]),
                                        float(mark) if mark else None, int(p.get("opened_ts", 0))))
        return tuple(out)

    async def collect(self) -> Funnel:
        k = self._keys
        for fields in await self._new(k.ai_signal):
            self._n["signals"] += 1
            self._model = str(fields.get("model", "")) or self._model
            self._model_version = str(fields.get("model_version", "")) or self._model_version
            if self._model.startswith(FALLBACK_PREFIX):
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
            with contextlib.suppress(MessageError):
                self._fills.append(ExecutionResult.from_fields(fields))
        for fields in await self._new(k.position_event):
            if fields.get("event") == "CLOSED":
                self._n["closed"] += 1
                with contextlib.suppress(ValueError):
                    self._pnl += float(fields.get("pnl_usd", 0) or 0)
            else:
                self._n["opened"] += 1
            with contextlib.suppress(MessageError):
                self._events.append(PositionEvent.from_fields(fields))
        self._n["dead"] += len(await self._new(k.deadletter))
        sim_now = self._clock.now_ms() if self._clock is not None else int(time.time() * 1000)
        doc = universe_doc.parse_document(await self._redis.get(k.universe_active))
        symbols = universe_doc.active_symbols(doc, now_ms=sim_now)
        universe_hash = str(doc.get("universe_hash", "")) if doc else ""
        if doc and not symbols:
            universe_hash += " (expired or invalid: trading nothing)"
        return Funnel(
            profile=k.profile, elapsed_s=time.time() - self._started, sim_now_ms=sim_now,
            speed=float(getattr(self._clock, "speed", 1.0)), universe_size=len(symbols),
            universe_hash=universe_hash, signals=self._n["signals"], fallback_signals=self._n["fallback"],
            intents=self._n["intents"], router_drops=dict(self._drops), execute=self._n["execute"],
            blocked=self._n["blocked"], block_reasons=dict(self._blocks), fills=self._n["fills"],
            rejects=self._n["rejects"], opened=self._n["opened"], closed=self._n["closed"],
            realized_pnl_usd=self._pnl, fees_usd=self._fees,
            open_orders=str(await self._redis.get(k.open_orders) or "-"), positions=await self._positions(),
            recent=tuple(trades(reversed(self._events), reversed(self._fills), mode=self._mode)),
            deadletters=self._n["dead"], model=await self._model_in_use(),
        )


@contextlib.contextmanager
def scoped_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block (the embedded Redis' credentials for every client of this
    process), restoring the previous values afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Under ``make run``, take the terminal's foreground so Ctrl-C reaches ``qt run`` alone.

    A terminal sends Ctrl-C to its whole foreground process group: make would die of it (exit 130,
    "Interrupt") while ``qt run`` drains and stops cleanly. In a process group of its own, holding the
    terminal, ``qt run`` alone gets the signal; make then sees it exit 0. The terminal goes back to
    make's group afterwards. Outside make (no ``MAKELEVEL``) or without a terminal on stdin and stdout this
    does nothing.
    """
    if not os.environ.get("MAKELEVEL") or not sys.stdin.isatty() or not sys.stdout.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    previous_handler = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may set the terminal
    try:
        previous = os.tcgetpgrp(fd)
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        signal.signal(signal.SIGTTOU, previous_handler)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)
        signal.signal(signal.SIGTTOU, previous_handler)


def _display_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


async def _pipeline(
    profile: TradingProfile, *, redis_url: str, clock: Clock, duration_s: float | None, http_port: int | None,
    view: bool, log: EventLog, log_file: str = "", api_token: str | None = None,
    ticks: Mapping[str, float] | None = None, http_host: str = "127.0.0.1", end_ms: int | None = None,
) -> Funnel:
    from quantum_trader.core.service import run_workers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    diagnostics.install_task_dumps(loop)  # kill -USR2: every task's stack (a run that seems stuck)
    started = time.time()
    client = async_client(redis_url, decode_responses=True, **redis_auth_kwargs())
    clock_map: dict[Any, Any] = clock_fields(
        speed=float(getattr(clock, "speed", 1.0)), wall_ms=int(time.time() * 1000), sim_ms=clock.now_ms())
    with contextlib.suppress(Exception):  # without it qt check / qt why assume wall time = pipeline time
        await client.hset(profile.keys.run_clock, mapping=clock_map)
    collector = FunnelCollector(client, keys=profile.keys, started=started, clock=clock,
                                mode=profile.spec.mode)
    routes = None
    if http_port is not None and api_token is not None:
        from quantum_trader.ops.api import build_router

        routes = build_router(profile=profile, redis_url=redis_url, token=api_token)
    workers = asyncio.create_task(run_workers(
        list(WORKERS), profile=profile, redis_url=redis_url, clock=clock, stop=stop,
        http_host=http_host, http_port=http_port, restart=True, http_routes=routes,
    ))
    funnel = Funnel(profile=profile.name, elapsed_s=0.0, sim_now_ms=clock.now_ms(),
                    speed=float(getattr(clock, "speed", 1.0)))
    api_url = f"http://{_display_host(http_host)}:{http_port}/docs" if routes is not None else ""

    def screen(f: Funnel) -> RenderableType:
        return render(f, log_file=log_file, api_url=api_url, ticks=ticks)

    live = Live(screen(funnel), console=Console(), auto_refresh=False, transient=False) if view else None
    last_line = 0.0
    try:
        if live is not None:
            live.start(refresh=True)
        while not stop.is_set() and not workers.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            with contextlib.suppress(Exception):
                funnel = await collector.collect()
            if live is not None:
                live.update(screen(funnel), refresh=True)
            elif time.time() - last_line >= 10:
                last_line = time.time()
                log.event("FUNNEL", **summary_fields(funnel))
            if duration_s is not None and time.time() - started >= duration_s:
                log.event("RUN_DURATION_REACHED", seconds=duration_s)
                stop.set()
            if end_ms is not None and clock.now_ms() >= end_ms:
                log.event("RUN_REPLAY_END", end=sim_date(end_ms), end_ms=end_ms)
                stop.set()
    finally:
        stop.set()
        try:
            await workers
        finally:
            with contextlib.suppress(Exception):
                funnel = await collector.collect()
            await client.aclose()
            funnel = replace(funnel, stopped=True)
            if live is not None:  # the last frame stays on the screen: the final funnel, shown once
                live.update(screen(funnel))
                live.stop()  # draws the last frame, once
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
    http_host: str = "127.0.0.1",
    data_dir: Path | None = None,
    fresh: bool = False,
    span: tuple[int, int] | None = None,
) -> int:
    """Run all workers until Ctrl-C/SIGTERM, ``duration_s`` or the end of ``span``; the final funnel is
    shown once, then what was kept and where; return 0.

    Without ``redis_url`` the embedded Redis keeps its data in ``data_dir`` (AOF; held by this run
    alone; ``fresh`` removes what an earlier run kept). The embedded Redis starts before ``qt run``
    takes the terminal under make, so it stays out of the Ctrl-C: the workers drain against it
    (leases released, batches acked), then it is stopped.
    """
    embedded: EmbeddedRedis | None = None
    with contextlib.ExitStack() as stack:
        removed: list[str] = []
        resumed = False
        client_env: dict[str, str] = {}
        if not redis_url:
            # the embedded Redis enforces ACLs: the profile's own user (its keys, the commands qt uses), the
            # default user behind a password nobody is told; clients find theirs in a 0600 file (core/acl.py)
            user = acl.ProfileUser(keys=profile.keys, password=secrets.token_urlsafe(32))
            folder = data_dir if data_dir is not None else runstate.data_dir_for(profile.name)
            try:
                stack.enter_context(runstate.hold(folder))
                if fresh:
                    removed = runstate.clear(folder)
                elif span is not None and runstate.has_state(folder):
                    print(f"qt run: the data folder {folder} holds the state of an earlier run; replaying a span "
                          "over it would mix two timelines: add --fresh (or --data-dir for a separate folder)",
                          file=sys.stderr)
                    return 1
                resumed = runstate.has_state(folder)
                embedded = EmbeddedRedis(data_dir=folder, users=[user]).start()
            except (EmbeddedRedisError, runstate.DataDirBusy, OSError) as exc:
                print(f"qt run: {exc}", file=sys.stderr)
                return 1
            stack.callback(embedded.stop)
            client_env = embedded.credentials_env(user.name)
        where = str(embedded.data_dir) if embedded is not None and embedded.data_dir else "the Redis at REDIS_URL"
        with terminal_foreground(), scoped_env(client_env):
            return _run_pipeline(profile, redis_url=redis_url or (embedded.url if embedded else ""), clock=clock,
                                 duration_s=duration_s, http_port=http_port, view=view, url_file=url_file,
                                 log_format=log_format, embedded=embedded is not None, http_host=http_host,
                                 kept=KeptWhere(where=where, resumed=resumed, removed=tuple(removed)), span=span)
    return 1  # unreachable (mypy: ExitStack may swallow exceptions)


@dataclass(frozen=True, slots=True)
class KeptWhere:
    """Where this run's state lives and how the run began with it."""

    where: str
    resumed: bool = False  # the folder held an earlier run's state
    removed: tuple[str, ...] = ()  # --fresh removed these


async def _read_kept(redis_url: str, keys: Keys) -> runstate.KeptState | None:
    client = async_client(redis_url, decode_responses=True, **redis_auth_kwargs())
    try:
        return await runstate.read_state(client, keys)
    except Exception:  # an unreadable Redis must not turn a clean stop into a failure: the log says so
        return None
    finally:
        await client.aclose()


def _log_kept(log: EventLog, state: runstate.KeptState | None, *, where: str, kind: str) -> None:
    if state is None:
        log.event("RUN_STATE_UNREADABLE", where=where)
        return
    for event, fields in runstate.state_events(state, where=where, kind=kind):
        log.event(event, **fields)


def _run_pipeline(
    profile: TradingProfile, *, redis_url: str, clock: Clock, duration_s: float | None,
    http_port: int | None, view: bool, url_file: Path, log_format: logs.LogFormat, embedded: bool,
    http_host: str = "127.0.0.1", kept: KeptWhere | None = None, span: tuple[int, int] | None = None,
) -> int:
    log = EventLog(worker="run", profile=profile.name)
    log_file: Path | None = None
    if view:
        log_file = url_file.with_suffix(".log")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logs.configure(log_format, stream=log_file.open("a", buffering=1))
    try:
        url_file.parent.mkdir(parents=True, exist_ok=True)
        url_file.write_text(redis_url)
        kept = kept or KeptWhere(where="the Redis at REDIS_URL")
        log.event("RUN_STARTED", redis=redis_url, embedded=embedded, exchange=profile.spec.exchange.name,
                  speed=getattr(clock, "speed", 1.0), log_file=str(log_file or "stderr"), data_dir=kept.where,
                  hint="REDIS_URL is found by qt check / qt why while this runs")
        if kept.removed:
            log.event("RUN_FRESH", where=kept.where, removed=",".join(kept.removed))
        if span is not None:
            log.event("RUN_REPLAY_SPAN", start=sim_date(span[0]), end=sim_date(span[1]), start_ms=span[0],
                      end_ms=span[1], speed=getattr(clock, "speed", 1.0))
        _log_kept(log, asyncio.run(_read_kept(redis_url, profile.keys)), where=kept.where,
                  kind="RUN_STATE_RESUMED" if kept.resumed or not embedded else "RUN_STATE_EMPTY")
        api_token: str | None = None
        if http_port is not None:
            from quantum_trader.ops.api import ensure_token

            token_file = url_file.with_suffix(".api-token")
            api_token = ensure_token(token_file)
            log.event("API_LISTENING", url=f"http://{_display_host(http_host)}:{http_port}/docs", host=http_host,
                      token=f"${{QT_API_TOKEN}} or the file {token_file}")
        ticks: dict[str, float] = {}
        if view:
            from quantum_trader.inspect.ticks import tick_sizes

            ticks = tick_sizes(profile)
        funnel = asyncio.run(_pipeline(
            profile, redis_url=redis_url, clock=clock, duration_s=duration_s, http_port=http_port, view=view,
            log=log, log_file=str(log_file or ""), api_token=api_token, ticks=ticks, http_host=http_host,
            end_ms=span[1] if span else None,
        ))
        log.event("RUN_STOPPED", **summary_fields(funnel))
        if not view:
            print(summary_text(funnel))
        state = asyncio.run(_read_kept(redis_url, profile.keys))
        _log_kept(log, state, where=kept.where, kind="RUN_STATE_KEPT")
        if state is not None:
            print(runstate.state_text(state, where=kept.where, ticks=ticks), flush=True)
        return 0
    finally:
        with contextlib.suppress(OSError):
            if url_file.exists() and url_file.read_text() == redis_url:
                url_file.unlink()
