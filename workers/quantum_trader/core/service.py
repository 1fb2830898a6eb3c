"""The service shell every worker runs in: context, heartbeat, HTTP endpoints, graceful drain.

A worker is ``async def main(ctx: WorkerContext) -> None`` that returns when
``ctx.stop`` is set. The shell around it (:func:`run_workers`) writes the
heartbeat hash (``P:worker:<name>:heartbeat``, TTL), serves ``/healthz``,
``/readyz`` and ``/metrics`` (FastAPI + prometheus-client), restarts a crashed
worker with backoff when running several in one process (``qt run``), and on
SIGTERM sets ``stop`` so every consume loop finishes its batch and returns.

Heartbeats use wall time (they are infrastructure, read by the operator);
decision code gets time only from ``ctx.clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as aredis

from quantum_trader import __version__
from quantum_trader.core import metrics
from quantum_trader.core.bus import Bus, Handler, Window, redis_auth_from_env
from quantum_trader.core.clock import Clock
from quantum_trader.core.connection import async_client
from quantum_trader.core.keys import WORKERS
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import TradingProfile

if TYPE_CHECKING:  # the exchange contract, for types only: core never imports the market layer at runtime
    from quantum_trader.market.base import Exchange

WorkerMain = Callable[["WorkerContext"], Awaitable[None]]
# A worker's entry point: ``main(ctx, config)``, where ``config`` is that worker's own frozen settings
# type (``RouterConfig``, ``GateConfig``, ...). The profile never reaches a worker: the composition
# (``quantum_trader.compose``) builds each worker's config from it, and :func:`worker_main` binds the two.
WorkerEntry = Callable[["WorkerContext", Any], Awaitable[None]]
ExchangeFactory = Callable[[], "Exchange"]

WORKER_ENTRYPOINTS: Final[dict[str, str]] = {
    "universe": "quantum_trader.universe.worker:main",
    "ai": "quantum_trader.ai.worker:main",
    "router": "quantum_trader.router.worker:main",
    "snapshot": "quantum_trader.snapshot.worker:main",
    "gate": "quantum_trader.gate.worker:main",
    "executor": "quantum_trader.executor.worker:main",
}
# The composition: the profile → one worker's config (named by string, like the workers: core sits below it).
COMPOSE_ENTRYPOINT: Final = "quantum_trader.compose:worker_config"
# The market layer's composition hooks, resolved by name like the workers (core sits below market):
# build the profile's exchange; attach the shared request-weight budget (no-op for sim/replay).
EXCHANGE_ENTRYPOINTS: Final[dict[str, str]] = {
    "build": "quantum_trader.market.factory:build_exchange",
    "budget": "quantum_trader.market.binance_budget:attach_shared_budget",
}
HEARTBEAT_INTERVAL_S: Final = 5.0
HEARTBEAT_TTL_S: Final = 30
DEFAULT_HTTP_PORT: Final = 8000


def _resolve(target: str) -> Any:
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def load_entrypoint(name: str) -> WorkerEntry:
    """Import a worker's ``main(ctx, config)`` lazily (an idle worker imports only what it needs)."""
    if name not in WORKER_ENTRYPOINTS:
        raise ValueError(f"unknown worker {name!r}; choose one of {', '.join(WORKERS)}")
    main: WorkerEntry = _resolve(WORKER_ENTRYPOINTS[name])
    return main


def worker_main(name: str, profile: TradingProfile) -> WorkerMain:
    """The worker ``name`` bound to its own config, built from ``profile`` by the composition."""
    main = load_entrypoint(name)
    config = _resolve(COMPOSE_ENTRYPOINT)(name, profile)

    async def run(ctx: WorkerContext) -> None:
        await main(ctx, config)

    return run


def release_free_memory() -> None:
    """Return freed heap to the OS after a large burst of work (glibc keeps it otherwise).

    Workers that build big temporary arrays once per cycle (the universe) call this so an idle
    worker's RSS stays small. A no-op where ``malloc_trim`` does not exist.
    """
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def freeze_startup_heap() -> None:
    """Move everything allocated at start-up (modules, settings, models) out of the GC's reach.

    Later collections then scan only the objects created while working, which keeps GC
    pauses — and so the latency tail of every stage — short.
    """
    import gc

    gc.collect()
    gc.freeze()


def redis_client(url: str) -> aredis.Redis:
    """The async client every worker uses (``decode_responses=True``: str in, str out).

    ``redis+cluster://`` URLs give a Redis Cluster client (:mod:`quantum_trader.core.connection`).
    """
    # the password comes from REDIS_PASSWORD_FILE / REDIS_PASSWORD (or the URL), never from argv
    auth = redis_auth_from_env()
    return async_client(url, auth=auth, decode_responses=True, health_check_interval=10)


def default_exchange_factory(profile: TradingProfile, clock: Clock) -> ExchangeFactory:
    def build() -> Exchange:
        exchange: Exchange = _resolve(EXCHANGE_ENTRYPOINTS["build"])(
            profile.spec.exchange, clock=clock, environment=profile.spec.environment
        )
        return exchange

    return build


class WorkerContext:
    """Everything a worker's shell may use besides its own config. Built by :func:`run_workers`.

    It carries the profile's name and keys, not the profile: a worker's settings come only
    through its entry point's config argument (see :data:`WorkerEntry`).
    """

    def __init__(
        self,
        *,
        name: str,
        profile: TradingProfile,
        redis: aredis.Redis,
        clock: Clock,
        stop: asyncio.Event,
        exchange_factory: ExchangeFactory | None = None,
        consumer: str | None = None,
        bus_maxlen: int = 100_000,
    ) -> None:
        self.name = name
        self.profile_name = profile.name
        self.keys = profile.keys
        self.redis = redis
        self.clock = clock
        self.stop = stop
        self.log = EventLog(worker=name, profile=profile.name)
        self.bus = Bus(redis, keys=self.keys, maxlen=bus_maxlen, worker=name, log=self.log)
        self.consumer = consumer or f"{name}-{socket.gethostname()}-{os.getpid()}"
        self._exchange_factory = exchange_factory or default_exchange_factory(profile, clock)
        self._exchange: Exchange | None = None
        self.ready = False
        self.processed_total = 0
        self.errors_total = 0
        self.started_at = time.time()

    @property
    def exchange(self) -> Exchange:
        """The profile's exchange, built on first use."""
        if self._exchange is None:
            self._exchange = self._exchange_factory()
            # real exchanges share one request-weight budget across workers (no-op for sim/replay)
            _resolve(EXCHANGE_ENTRYPOINTS["budget"])(self._exchange, redis=self.redis, key=self.keys.rate_budget, clock=self.clock,
                                 log=self.log)
        return self._exchange

    def mark_ready(self) -> None:
        self.ready = True
        metrics.WORKER_READY.labels(self.profile_name, self.name).set(1)

    def processed(self, n: int = 1) -> None:
        self.processed_total += n

    def error(self, kind: str) -> None:
        self.errors_total += 1
        metrics.WORKER_ERRORS.labels(self.profile_name, self.name, kind).inc()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` of clock time; return True (early) when the worker is stopping."""
        speed = float(getattr(self.clock, "speed", 1.0))
        try:
            await asyncio.wait_for(self.stop.wait(), max(0.0, seconds) / speed)
            return True
        except TimeoutError:
            return self.stop.is_set()

    async def consume(
        self,
        *,
        stream: str,
        message_type: type[Any],
        handler: Handler[Any],
        group: str | None = None,
        count: int = 100,
        block_ms: int = 1000,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        window: Window[Any] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """:meth:`Bus.consume` with this worker's group, consumer name and stop event.

        ``window``: decide admitted entries together when due (the router's batch window);
        ``stop``: a narrower stop event than the worker's (the router's: lease lost or stopping).
        """
        await self.bus.consume(
            stream=stream, group=group or self.name, consumer=self.consumer, message_type=message_type,
            handler=handler, stop=stop or self.stop, count=count, block_ms=block_ms, min_idle_ms=min_idle_ms,
            max_deliveries=max_deliveries, on_processed=self.processed, window=window,
        )


# -- heartbeat and HTTP -----------------------------------------------------------------------


async def write_heartbeat(ctx: WorkerContext) -> None:
    now = time.time()
    key = ctx.keys.heartbeat(ctx.name)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(
        key,
        mapping={
            "ts": str(int(now * 1000)),
            "version": __version__,
            "pid": str(os.getpid()),
            "host": socket.gethostname(),
            "processed": str(ctx.processed_total),
            "errors": str(ctx.errors_total),
            "ready": "1" if ctx.ready else "0",
        },
    )
    pipe.expire(key, HEARTBEAT_TTL_S)
    await pipe.execute()
    metrics.WORKER_HEARTBEAT_TS.labels(ctx.profile_name, ctx.name).set(now)


class Health:
    """Liveness/readiness shared by the HTTP endpoints of one process."""

    def __init__(self, contexts: list[WorkerContext]) -> None:
        self.contexts = contexts
        self.last_beat: dict[str, float] = {}
        self.redis_ok = False

    def live(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        stale = [
            c.name for c in self.contexts
            if now - self.last_beat.get(c.name, now) > HEARTBEAT_INTERVAL_S * 6
        ]
        return not stale, {"workers": [c.name for c in self.contexts], "stale_heartbeat_loops": stale}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        not_ready = [c.name for c in self.contexts if not c.ready]
        ok = self.redis_ok and not not_ready
        return ok, {"redis": self.redis_ok, "not_ready": not_ready}


async def heartbeat_loop(ctx: WorkerContext, health: Health) -> None:
    while not ctx.stop.is_set():
        try:
            await write_heartbeat(ctx)
            health.redis_ok = True
        except Exception as exc:
            health.redis_ok = False
            ctx.log.warn("HEARTBEAT_FAILED", error=type(exc).__name__)
        health.last_beat[ctx.name] = time.monotonic()
        try:
            await asyncio.wait_for(ctx.stop.wait(), HEARTBEAT_INTERVAL_S)
        except TimeoutError:
            pass


def build_app(health: Health, *, routes: Any | None = None) -> Any:
    """FastAPI app with /healthz, /readyz, /metrics; with ``routes`` (an APIRouter) also those and /docs."""
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if routes is None:
        app = FastAPI(title="quantum-trader worker", docs_url=None, redoc_url=None, openapi_url=None)
    else:
        app = FastAPI(title="Quantum Trader", version=__version__)
        app.include_router(routes)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ok, body = health.live()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ok, body = health.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def serve_http(app: Any, *, host: str, port: int, stop: asyncio.Event, log: EventLog) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the shell owns SIGTERM/SIGINT
            yield

        def install_signal_handlers(self) -> None:  # older uvicorn
            return None

    server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    log.event("HTTP_LISTENING", host=host, port=port)
    await stop.wait()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 5)


# -- running workers ---------------------------------------------------------------------------


async def supervise(ctx: WorkerContext, main: WorkerMain, *, restart: bool) -> None:
    """Run ``main``; if it crashes, log it and (with ``restart``) start it again with backoff."""
    metrics.WORKER_UP.labels(ctx.profile_name, ctx.name).set(1)
    backoff = 1.0
    try:
        while not ctx.stop.is_set():
            started = time.monotonic()
            try:
                ctx.log.event("WORKER_STARTED", version=__version__, consumer=ctx.consumer)
                await main(ctx)
                if ctx.stop.is_set():
                    break
                ctx.log.warn("WORKER_RETURNED", note="main returned before stop; restarting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ctx.error("crash")
                ctx.log.error("WORKER_CRASHED", error=f"{type(exc).__name__}: {exc}")
                if not restart:
                    raise
            if time.monotonic() - started > 60:
                backoff = 1.0
            if await ctx.sleep(backoff * float(getattr(ctx.clock, "speed", 1.0))):
                break
            backoff = min(backoff * 2, 30.0)
    finally:
        metrics.WORKER_UP.labels(ctx.profile_name, ctx.name).set(0)
        ctx.log.event("WORKER_STOPPED", processed=ctx.processed_total, errors=ctx.errors_total)


async def run_workers(
    names: list[str],
    *,
    profile: TradingProfile,
    redis_url: str,
    clock: Clock,
    stop: asyncio.Event,
    http_host: str = "0.0.0.0",
    http_port: int | None = DEFAULT_HTTP_PORT,
    exchange_factory: ExchangeFactory | None = None,
    restart: bool = False,
    mains: dict[str, WorkerMain] | None = None,
    on_started: Callable[[list[WorkerContext]], None] | None = None,
    http_routes: Any | None = None,
) -> list[WorkerContext]:
    """Run the named workers in this process until ``stop`` is set; return their contexts."""
    metrics.BUILD_INFO.labels(profile.name).info({"version": __version__})
    metrics.initialise(profile.name, workers=names, exchange=profile.spec.exchange.name, mode=profile.spec.mode)
    client = redis_client(redis_url)
    shared: dict[str, Exchange] = {}

    def shared_exchange() -> Exchange:  # one exchange per process (the sim's order book is shared)
        if "x" not in shared:
            shared["x"] = (exchange_factory or default_exchange_factory(profile, clock))()
        return shared["x"]

    contexts = [
        WorkerContext(name=n, profile=profile, redis=client, clock=clock, stop=stop,
                      exchange_factory=shared_exchange)
        for n in names
    ]
    health = Health(contexts)
    loaded = {n: (mains or {}).get(n) or worker_main(n, profile) for n in names}
    freeze_startup_heap()
    tasks: list[asyncio.Task[None]] = []
    for ctx in contexts:
        tasks.append(asyncio.create_task(supervise(ctx, loaded[ctx.name], restart=restart), name=ctx.name))
        tasks.append(asyncio.create_task(heartbeat_loop(ctx, health), name=f"{ctx.name}-heartbeat"))
    if http_port is not None:
        tasks.append(asyncio.create_task(
            serve_http(build_app(health, routes=http_routes), host=http_host, port=http_port, stop=stop,
                       log=contexts[0].log)
        ))
    if on_started is not None:
        on_started(contexts)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                stop.set()
                raise t.exception()  # type: ignore[misc]
    finally:
        stop.set()
        for t in tasks:
            if not t.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(t, 10)
        if shared:
            with contextlib.suppress(Exception):
                await shared["x"].close()
        with contextlib.suppress(Exception):
            await client.aclose()
    return contexts
