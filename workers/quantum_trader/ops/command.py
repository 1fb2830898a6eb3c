"""``qt pause|resume|flatten|positions|trades|risk|audit|api``: run an :class:`~quantum_trader.ops.service.Ops`
call against the profile's Redis and print it (rich tables, or one JSON document with ``--json``).

Exit codes: 0 done, 1 refused (the reason code is printed) or Redis unreadable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis
from rich.console import Console, RenderableType

from quantum_trader.core.bus import redis_auth_kwargs
from quantum_trader.core.connection import async_client
from quantum_trader.core.profile import TradingProfile
from quantum_trader.inspect.ticks import tick_sizes
from quantum_trader.ops import core, render
from quantum_trader.ops.core import Result
from quantum_trader.ops.service import Ops, local_actor

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1

Shown = tuple[Result, RenderableType | None, Any]  # result, what a person sees, what --json prints


def console(*, stderr: bool = False) -> Console:
    """Colour only on a terminal and never with NO_COLOR (rich honours it); piped output is not cut to 80
    columns."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _run(profile: TradingProfile, redis_url: str, call: Callable[[Ops], Awaitable[Shown]], *,
         as_json: bool, raw: bool = False) -> int:
    async def go() -> Shown:
        client = async_client(redis_url, socket_timeout=10, **redis_auth_kwargs())
        try:
            return await call(Ops(client, profile=profile, actor=local_actor(), via="cli"))
        finally:
            await client.aclose()

    try:
        result, shown, doc = asyncio.run(go())
    except (redis.RedisError, OSError) as exc:
        print(f"qt: cannot reach Redis at {redis_url}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if raw:
        sys.stdout.write(str(doc))
    elif as_json:
        print(json.dumps(doc, separators=(",", ":"), default=str))
    else:
        out = console()
        if shown is not None:
            out.print(shown)
        if result.message:
            (out if result.ok else console(stderr=True)).print(render.result_line(result))
    return EXIT_OK if result.ok else EXIT_REFUSED


def pause(profile: TradingProfile, redis_url: str, *, reason: str, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        r = await ops.pause(reason=reason)
        return r, None, r.to_json()

    return _run(profile, redis_url, call, as_json=as_json)


def resume(profile: TradingProfile, redis_url: str, *, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        r = await ops.resume()
        return r, None, r.to_json()

    return _run(profile, redis_url, call, as_json=as_json)


def flatten(profile: TradingProfile, redis_url: str, *, symbol: str | None, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        r = await ops.flatten(symbol)
        return r, None, r.to_json()

    return _run(profile, redis_url, call, as_json=as_json)


def positions(profile: TradingProfile, redis_url: str, *, as_json: bool) -> int:
    ticks = {} if as_json else tick_sizes(profile)

    async def call(ops: Ops) -> Shown:
        r = await ops.positions()
        data = dict(r.data or {})
        r = Result("positions", True, "")
        table = render.positions_table(data["positions"], ticks=ticks, total_upnl=data["unrealized_pnl_usd"])
        return r, table, data

    return _run(profile, redis_url, call, as_json=as_json)


def trades(profile: TradingProfile, redis_url: str, *, limit: int, symbol: str | None, as_csv: bool,
           as_json: bool) -> int:
    ticks = {} if as_json or as_csv else tick_sizes(profile)

    async def call(ops: Ops) -> Shown:
        r, rows = await ops.trades(limit=limit, symbol=symbol, export=as_csv)
        r = Result("trades", True, "", data=r.data)
        if as_csv:
            return r, None, core.trades_csv(rows)
        ages = await ops.wall_ages_ms([t.ts for t in rows])
        return r, render.trades_table(rows, ticks=ticks, ages_ms=ages), dict(r.data or {})

    return _run(profile, redis_url, call, as_json=as_json, raw=as_csv)


def risk_show(profile: TradingProfile, redis_url: str, *, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        risk = await ops.risk()
        r = Result("risk", "error" not in risk, str(risk.get("error", "")),
                   "unreadable" if "error" in risk else "none")
        return r, render.risk_table(risk), risk

    return _run(profile, redis_url, call, as_json=as_json)


def risk_reset(profile: TradingProfile, redis_url: str, *, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        r = await ops.risk_reset()
        after = dict((r.data or {}).get("after", {}))
        return r, render.risk_table(after) if after else None, r.to_json()

    return _run(profile, redis_url, call, as_json=as_json)


def audit(profile: TradingProfile, redis_url: str, *, limit: int, as_json: bool) -> int:
    async def call(ops: Ops) -> Shown:
        entries = await ops.audit_log(limit=limit)
        r = Result("audit", True, "")
        return r, render.audit_table(entries, now_ms=ops.clock.now_ms()), entries

    return _run(profile, redis_url, call, as_json=as_json)


def serve_api(profile: TradingProfile, redis_url: str, *, host: str, port: int) -> int:
    """``qt api``: the operations API alone, until SIGTERM/Ctrl-C."""
    import signal

    import uvicorn

    from quantum_trader.ops.api import TOKEN_ENV, build_api_app, token_from_env

    token = token_from_env()
    if token is None:
        print(f"qt api: {TOKEN_ENV} is not set: every /api/v1 endpoint will answer 503 "
              "api_token_not_configured", file=sys.stderr)
    app = build_api_app(profile=profile, redis_url=redis_url, token=token)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        await server.serve()

    asyncio.run(main())
    return EXIT_OK
