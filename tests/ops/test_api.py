"""The operations REST API through HTTP: a real uvicorn server on a loopback port, a real Redis."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aredis
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.service import serve_http
from quantum_trader.executor.state import Position
from quantum_trader.ops.api import build_api_app
from quantum_trader.ops.core import OpsAudit

from tests.executor.fixtures import profile, snapshot_mapping

KEYS = Keys("gx")
TOKEN = "t0ken-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(redis_url: str, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    stop = asyncio.Event()
    app = build_api_app(profile=profile(), redis_url=redis_url, token=token)
    task = asyncio.create_task(serve_http(app, host="127.0.0.1", port=port, stop=stop, log=EventLog(worker="api")))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(200):
            try:
                await client.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
        yield client
    stop.set()
    await task


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(redis_url, TOKEN):
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_every_api_endpoint_needs_the_token(api: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/api/v1/status"), ("GET", "/api/v1/positions"), ("POST", "/api/v1/pause"),
                         ("POST", "/api/v1/risk/reset")):
        missing = await api.request(method, path)
        wrong = await api.request(method, path, headers={"Authorization": "Bearer nope"})
        assert (missing.status_code, missing.json()["detail"]["reason"]) == (401, "missing_token"), path
        assert (wrong.status_code, wrong.json()["detail"]["reason"]) == (401, "bad_token"), path


async def test_without_a_configured_token_the_api_refuses_everything(redis_url: str) -> None:
    async for client in serve(redis_url, None):
        response = await client.get("/api/v1/status", headers=AUTH)
        assert response.status_code == 503
        assert response.json()["detail"]["reason"] == "api_token_not_configured"


async def test_openapi_page_lists_the_read_and_write_endpoints(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/status", "/api/v1/positions", "/api/v1/trades", "/api/v1/funnel", "/api/v1/why/{symbol}",
            "/api/v1/pause", "/api/v1/resume", "/api/v1/flatten", "/api/v1/risk/reset"} <= set(paths)


async def test_pause_and_resume_over_http_are_audited_and_a_refusal_is_409(
    api: httpx.AsyncClient, aredis_client: aredis.Redis,
) -> None:
    first = await api.post("/api/v1/pause", headers=AUTH, json={"reason": "exchange maintenance"})
    assert first.status_code == 200 and first.json()["ok"]
    second = await api.post("/api/v1/pause", headers=AUTH)
    assert (second.status_code, second.json()["reason"]) == (409, "already_paused")
    status = (await api.get("/api/v1/status", headers=AUTH)).json()
    assert status["paused"] and status["paused_by"] == "qt"
    assert (await api.post("/api/v1/resume", headers=AUTH)).status_code == 200
    trail = [OpsAudit.from_fields(f) for _, f in await aredis_client.xrange(KEYS.ops_audit)]
    assert [(a.action, a.outcome, a.actor, a.via) for a in trail] == [
        ("pause", "ok", "api:127.0.0.1", "api"), ("pause", "refused", "api:127.0.0.1", "api"),
        ("resume", "ok", "api:127.0.0.1", "api")]
    assert trail[0].detail == {"reason": "exchange maintenance"}
    listed = (await api.get("/api/v1/audit", headers=AUTH, params={"limit": 2})).json()
    assert [e["action"] for e in listed] == ["resume", "pause"]


async def test_positions_trades_funnel_and_why_read_the_profiles_redis(
    api: httpx.AsyncClient, aredis_client: aredis.Redis,
) -> None:
    p = Position("T000USDT", "BUY", 0.2, 100.0, 90.0, 120.0, 1, "PAPER-1", leverage=2.0)
    await aredis_client.hset(KEYS.positions, "T000USDT", p.to_json())
    await aredis_client.hset(KEYS.position_snapshot("T000USDT"), mapping=snapshot_mapping(105.0, 1))
    positions = (await api.get("/api/v1/positions", headers=AUTH)).json()
    assert positions["positions"][0]["unrealized_pnl_usd"] == pytest.approx(1.0)
    trades = await api.get("/api/v1/trades", headers=AUTH, params={"format": "csv"})
    assert trades.headers["content-type"].startswith("text/csv")
    assert trades.text.splitlines()[0].startswith("time_utc,ts,symbol,side")
    funnel = await api.get("/api/v1/funnel", headers=AUTH, params={"window": "1h30m"})
    assert funnel.status_code == 200 and funnel.json()["window_s"] == 5400.0 and funnel.json()["verdict"] == "NO-GO"
    bad = await api.get("/api/v1/funnel", headers=AUTH, params={"window": "soon"})
    assert (bad.status_code, bad.json()["detail"]["reason"]) == (422, "bad_window")
    why = (await api.get("/api/v1/why/t000usdt", headers=AUTH)).json()
    assert why["symbol"] == "T000USDT" and why["traded"]


async def test_flatten_over_http_publishes_a_reduce_only_intent(
    api: httpx.AsyncClient, aredis_client: aredis.Redis,
) -> None:
    p = Position("T000USDT", "BUY", 0.2, 100.0, 0.0, 0.0, 1, "PAPER-1", leverage=2.0)
    await aredis_client.hset(KEYS.positions, "T000USDT", p.to_json())
    missing = await api.post("/api/v1/flatten", headers=AUTH, json={"symbol": "T001USDT"})
    assert (missing.status_code, missing.json()["reason"]) == (409, "no_position")
    done = await api.post("/api/v1/flatten", headers=AUTH, json={"symbol": "T000USDT"})
    assert done.status_code == 200
    ((_, fields),) = await aredis_client.xrange(KEYS.trade_intent)
    assert fields[b"reduce_only"] == b"true" and fields[b"side"] == b"SELL"
