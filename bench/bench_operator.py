"""Operator benchmark against the kmock Kubernetes emulator: reconcile latency and operator RSS.

    .venv/bin/python bench/bench_operator.py [--profiles 20] [--json]

The parent process serves kmock (+ a real Redis for heartbeats) and creates
TradingProfiles over HTTP; the operator runs for real in a child process
(``kopf.operator`` logged in to kmock), so its RSS is its own. Figures:

* latency create → all 9 objects applied (ConfigMap, 6 Deployments, Service, CronJob), one profile at a time
* latency create → first status written
* the operator's own duration of a first reconcile (its RECONCILE log line, created=9)
* burst: N profiles created at once → all objects applied
* operator RSS idle, and after N profiles
* baseline: one GET round trip to kmock (the machine is noisy: compare ratios)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(url: str) -> None:
    """The operator process: production settings except the login (kmock) and a 5 s timer."""
    import kopf
    from quantum_operator.config import OperatorConfig
    from quantum_operator.handlers import build_operator
    from quantum_trader.core import logs

    logs.configure("text", level=int(os.environ.get("QT_BENCH_LOG_LEVEL", "20")))
    op = build_operator(
        OperatorConfig(worker_image="bench:1", redis_secret="qt-redis", reconcile_interval=5.0), login=False
    )
    op.settings.scanning.disabled = True

    @kopf.on.login(registry=op.registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    ready = threading.Event()

    def announce() -> None:
        ready.wait()
        print("READY", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    kopf.run(
        registry=op.registry, settings=op.settings, standalone=True, namespaces=["default"], ready_flag=ready
    )


async def parent(n: int, as_json: bool) -> dict[str, Any]:
    import aiohttp
    import kmock
    from quantum_trader.core.embedded import EmbeddedRedis

    from tests.operator.emulator import (
        CONFIGMAPS,
        CRONJOBS,
        DEPLOYMENTS,
        SERVICES,
        TP,
        Api,
        Emulator,
        add_secret,
        profile_body,
    )

    redis_server = EmbeddedRedis().start()
    figures: dict[str, Any] = {}
    try:
        async with (
            Emulator() as emulator,
            kmock.Server(emulator) as server,
            aiohttp.ClientSession() as session,
        ):
            url = str(server.url).rstrip("/")
            add_secret(emulator, "qt-redis", {"url": redis_server.url})
            api = Api(url, session)

            # baseline: kmock GET round trip from this process
            rtts = []
            for _ in range(50):
                t0 = time.perf_counter()
                async with session.get(f"{url}/api/v1/namespaces/default/secrets/qt-redis") as r:
                    await r.read()
                rtts.append(time.perf_counter() - t0)
            figures["kmock_get_rtt_ms"] = round(statistics.median(rtts) * 1000, 2)

            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--child",
                url,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ},
                cwd=str(ROOT),
            )
            first_reconcile_ms: list[float] = []

            async def read_logs() -> None:
                assert proc.stderr is not None
                async for raw in proc.stderr:
                    line = raw.decode(errors="replace")
                    if " RECONCILE " in line and " created=9 " in line:
                        first_reconcile_ms.append(float(line.rsplit(" ms=", 1)[1].split()[0]))

            log_task = asyncio.create_task(read_logs())
            try:
                assert proc.stdout is not None
                t0 = time.perf_counter()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
                if b"READY" not in line:
                    raise RuntimeError(f"operator did not start: {line!r}")
                figures["operator_start_s"] = round(time.perf_counter() - t0, 2)
                await asyncio.sleep(0.5)
                figures["operator_rss_idle_mib"] = round(rss_mib(proc.pid), 1)

                def applied(name: str) -> bool:
                    keys = [
                        (CONFIGMAPS, f"{name}-profile"),
                        (SERVICES, f"{name}-metrics"),
                        (CRONJOBS, f"{name}-train"),
                    ]
                    keys += [
                        (DEPLOYMENTS, f"{name}-{w}")
                        for w in ("universe", "ai", "router", "snapshot", "gate", "executor")
                    ]
                    return all((k, "default", nm) in emulator.objects for k, nm in keys)

                def has_status(name: str) -> bool:
                    key = (TP, "default", name)
                    return key in emulator.objects and bool(
                        emulator.objects[key].raw.get("status", {}).get("phase")
                    )

                async def until(pred: Any, *args: Any, timeout: float = 30.0) -> float:
                    start = time.perf_counter()
                    while not pred(*args):
                        if time.perf_counter() - start > timeout:
                            raise TimeoutError(f"{pred.__name__}{args}")
                        await asyncio.sleep(0.001)
                    return time.perf_counter() - start

                applied_s, status_s = [], []
                for i in range(n):
                    name = f"seq-{i}"
                    t0 = time.perf_counter()
                    await api.create_profile(profile_body(name))
                    await until(applied, name)
                    applied_s.append(time.perf_counter() - t0)
                    await until(has_status, name)
                    status_s.append(time.perf_counter() - t0)

                def pct(values: list[float], q: float) -> float:
                    return round(sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

                figures["profiles"] = n
                figures["create_to_applied_ms_p50"] = pct(applied_s, 0.5)
                figures["create_to_applied_ms_p90"] = pct(applied_s, 0.9)
                figures["create_to_applied_ms_max"] = round(max(applied_s) * 1000, 1)
                figures["create_to_status_ms_p50"] = pct(status_s, 0.5)
                figures["operator_first_reconcile_ms_p50"] = round(
                    statistics.median(first_reconcile_ms[:n]), 1
                )
                figures["applied_latency_in_kmock_rtts"] = round(
                    statistics.median(applied_s) * 1000 / figures["kmock_get_rtt_ms"], 1
                )

                t0 = time.perf_counter()
                await asyncio.gather(*(api.create_profile(profile_body(f"burst-{i}")) for i in range(n)))
                for i in range(n):
                    await until(applied, f"burst-{i}", timeout=120)
                figures["burst_all_applied_s"] = round(time.perf_counter() - t0, 2)
                await asyncio.sleep(1.0)
                figures["operator_rss_after_mib"] = round(rss_mib(proc.pid), 1)
                figures["profiles_total"] = 2 * n
            finally:
                log_task.cancel()
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    finally:
        redis_server.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    figures = asyncio.run(parent(args.profiles, args.json))
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
