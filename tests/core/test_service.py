"""The service shell: heartbeat, HTTP endpoints, crash restart, graceful stop."""

from __future__ import annotations

import asyncio
import socket

import httpx
import redis.asyncio as aredis
from quantum_trader.core.clock import WallClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.profile import default_profile
from quantum_trader.core.service import WorkerContext, run_workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_worker_heartbeat_and_http_endpoints(redis_url: str) -> None:
    profile = default_profile("svc")
    stop = asyncio.Event()
    port = free_port()

    async def idle(ctx: WorkerContext) -> None:
        ctx.mark_ready()
        ctx.processed(3)
        await ctx.stop.wait()

    task = asyncio.create_task(run_workers(
        ["gate"], profile=profile, redis_url=redis_url, clock=WallClock(), stop=stop,
        http_host="127.0.0.1", http_port=port, mains={"gate": idle},
    ))
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    key = Keys("svc").heartbeat("gate")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(100):
            try:
                ready = await http.get("/readyz")
                if ready.status_code == 200 and await client.exists(key):
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        assert (await http.get("/healthz")).status_code == 200
        assert ready.status_code == 200
        body = (await http.get("/metrics")).text
        assert 'qt_worker_up{profile="svc",worker="gate"} 1.0' in body
    beat = await client.hgetall(key)
    assert beat["processed"] == "3" and beat["ready"] == "1" and int(beat["ts"]) > 0
    assert 0 < await client.ttl(key) <= 30
    stop.set()
    await asyncio.wait_for(task, 10)
    await client.aclose()


async def test_crashed_worker_is_restarted_when_supervised(redis_url: str) -> None:
    profile = default_profile("svc")
    stop = asyncio.Event()
    runs: list[int] = []

    async def flaky(ctx: WorkerContext) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        ctx.mark_ready()
        await ctx.stop.wait()

    task = asyncio.create_task(run_workers(
        ["router"], profile=profile, redis_url=redis_url, clock=WallClock(), stop=stop, http_port=None,
        restart=True, mains={"router": flaky},
    ))
    for _ in range(100):
        if len(runs) >= 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(runs) == 2


async def test_sleep_returns_early_when_stopping(redis_url: str) -> None:
    stop = asyncio.Event()
    ctx = WorkerContext(name="ai", profile=default_profile("svc"), redis=aredis.Redis.from_url(redis_url),
                        clock=WallClock(), stop=stop)
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(ctx.sleep(60), 2) is True
    await ctx.redis.aclose()
