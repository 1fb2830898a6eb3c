"""The operations REST API: the ``qt`` operations over HTTP, with an OpenAPI page.

Served by ``qt run`` next to ``/metrics`` (same port) and by ``qt api`` alone (what a
Kubernetes Deployment runs). Every ``/api/v1`` endpoint needs ``Authorization: Bearer
<token>``; the token comes from ``QT_API_TOKEN`` (in Kubernetes: a Secret). Without a
token configured every ``/api/v1`` endpoint answers 503 ``api_token_not_configured``
(fail closed). Write endpoints leave an audit entry (actor ``api:<client address>``);
a refused operation answers 409 with its reason code. ``/docs`` is the OpenAPI page.
"""

import asyncio
import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from quantum_trader.core.bus import redis_auth_kwargs
from quantum_trader.core.connection import async_client, sync_client
from quantum_trader.core.profile import TradingProfile
from quantum_trader.inspect import check, why
from quantum_trader.inspect.fmt import DurationError, parse_duration_arg
from quantum_trader.ops import core
from quantum_trader.ops.core import Result
from quantum_trader.ops.service import Ops

TOKEN_ENV: Final = "QT_API_TOKEN"
PREFIX: Final = "/api/v1"


class PauseBody(BaseModel):
    reason: str = Field("", max_length=200, description="Why; recorded in the audit entry.")


class FlattenBody(BaseModel):
    symbol: str | None = Field(None, pattern=r"^[A-Z0-9]{2,40}$", description="One symbol; omit for all.")


def token_from_env() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def ensure_token(path: Path) -> str:
    """``QT_API_TOKEN``, else a new random token written to ``path`` (mode 0600) for local use."""
    token = token_from_env()
    if token:
        return token
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _refusal(result: Result) -> JSONResponse:
    return JSONResponse(result.to_json(), status_code=200 if result.ok else 409)


def build_router(*, profile: TradingProfile, redis_url: str, token: str | None) -> APIRouter:
    """The ``/api/v1`` routes for one profile's Redis."""
    client = async_client(redis_url, decode_responses=True, **redis_auth_kwargs())

    def authorised(request: Request) -> str:
        if token is None:
            raise HTTPException(503, detail={"reason": "api_token_not_configured",
                                             "message": f"set {TOKEN_ENV} (a Secret in Kubernetes)"})
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(401, detail={"reason": "missing_token", "message": "Authorization: Bearer <token>"},
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, detail={"reason": "bad_token", "message": "token not accepted"},
                                headers={"WWW-Authenticate": "Bearer"})
        host = request.client.host if request.client is not None else "unknown"
        return f"api:{host}"

    Actor = Annotated[str, Depends(authorised)]

    def ops(actor: str) -> Ops:
        return Ops(client, profile=profile, actor=actor, via="api")

    router = APIRouter(prefix=PREFIX)

    @router.get("/status", summary="Paused or not, workers, open orders, kill score, serving model")
    async def status(actor: Actor) -> dict[str, Any]:
        return await ops(actor).status()

    @router.get("/positions", summary="Open positions with unrealised PnL at the snapshot mark")
    async def positions(actor: Actor) -> dict[str, Any]:
        return dict((await ops(actor).positions(audited=False)).data or {})

    @router.get("/trades", summary="Recent fills (newest first) with realised PnL; format=csv for a file",
                response_model=None)
    async def trades(actor: Actor, limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
                     symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,40}$")] = None,
                     format: Literal["json", "csv"] = "json") -> Response | dict[str, Any]:
        result, rows = await ops(actor).trades(limit=limit, symbol=symbol, audited=format == "csv",
                                               export=format == "csv")
        if format == "csv":
            return Response(core.trades_csv(rows), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{profile.name}-trades.csv"'})
        return dict(result.data or {})

    @router.get("/funnel", summary="The qt check GO/NO-GO checklist and the funnel counts over a window")
    async def funnel(actor: Actor, window: str = "5m", clock: Literal["wall", "sim"] = "wall") -> dict[str, Any]:
        try:
            window_s = parse_duration_arg(window)
        except DurationError as exc:
            raise HTTPException(422, detail={"reason": "bad_window", "message": str(exc)}) from None
        if window_s <= 0:
            raise HTTPException(422, detail={"reason": "bad_window", "message": "window must be positive"})

        def read() -> dict[str, Any]:
            sync = sync_client(redis_url, socket_timeout=10, **redis_auth_kwargs())
            try:
                return check.evaluate(check.gather(sync, profile, window_s=window_s, clock=clock)).to_json()
            finally:
                sync.close()

        return await asyncio.to_thread(read)

    @router.get("/why/{symbol}", summary="One symbol through every stage (qt why)")
    async def why_symbol(actor: Actor, symbol: str, clock: Literal["wall", "sim"] = "wall") -> dict[str, Any]:
        sym = symbol.strip().upper()
        if not why.SYMBOL_RE.match(sym):
            raise HTTPException(422, detail={"reason": "bad_symbol", "message": f"{symbol!r} is not a symbol"})

        def read() -> dict[str, Any]:
            sync = sync_client(redis_url, socket_timeout=10, **redis_auth_kwargs())
            try:
                return why.explain(why.gather(sync, profile, sym, clock=clock)).to_json()
            finally:
                sync.close()

        return await asyncio.to_thread(read)

    @router.get("/audit", summary="The newest operations, done or refused, with who asked")
    async def audit(actor: Actor, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        return await ops(actor).audit_log(limit=limit)

    @router.post("/pause", summary="Pause: the router publishes nothing, the gate blocks every new position",
                 responses={409: {"description": "refused, with its reason code"}})
    async def pause(actor: Actor, body: PauseBody | None = None) -> JSONResponse:
        return _refusal(await ops(actor).pause(reason=body.reason if body else ""))

    @router.post("/resume", summary="Resume a pause set by qt or this API",
                 responses={409: {"description": "refused, with its reason code"}})
    async def resume(actor: Actor) -> JSONResponse:
        return _refusal(await ops(actor).resume())

    @router.post("/flatten", summary="Close one symbol's position, or all, with reduce-only intents",
                 responses={409: {"description": "refused, with its reason code"}})
    async def flatten(actor: Actor, body: FlattenBody | None = None) -> JSONResponse:
        return _refusal(await ops(actor).flatten(body.symbol if body else None))

    @router.post("/risk/reset", summary="Reset the kill score's inputs after review (drawdown, streak, errors)")
    async def risk_reset(actor: Actor) -> JSONResponse:
        return _refusal(await ops(actor).risk_reset())

    return router


def build_api_app(*, profile: TradingProfile, redis_url: str, token: str | None) -> FastAPI:
    """The API alone (``qt api``): ``/api/v1``, ``/docs``, ``/openapi.json`` and ``/healthz``."""
    app = FastAPI(title=f"Quantum Trader operations — profile {profile.name}", version="1",
                  description=__doc__ or "")
    app.include_router(build_router(profile=profile, redis_url=redis_url, token=token))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
