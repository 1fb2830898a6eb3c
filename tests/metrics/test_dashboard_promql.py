"""Every Grafana dashboard query returns series on a healthy `qt run`, evaluated by a real Prometheus.

`qt run` (sim, 60x) serves /metrics; Debian's `prometheus` (installed by .ci/run) scrapes it every
second; each query of every dashboard, with Grafana's variables filled in, goes to Prometheus's HTTP
API. A query that returns no series is a panel that cannot tell zero from broken: the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_S = 1
VARIABLES = {"$__rate_interval": "10s", "$__range": "1m", "$profile": "paper"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


def wait_for(check: Any, *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({last})")


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed: .ci/run installs Debian's package")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return found


@pytest.fixture
def running(redis_url: str, prometheus_binary: str, tmp_path: Path) -> Iterator[str]:
    """A `qt run` scraped by a Prometheus; yields the Prometheus base URL."""
    metrics_port, prom_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "XDG_RUNTIME_DIR": str(tmp_path)}
    run = subprocess.Popen(
        [sys.executable, "-m", "quantum_trader.cli", "run", "--no-view", "--speed", "60", "--duration", "120",
         "--http-port", str(metrics_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "run.log").open("w"),
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
        f"scrape_configs:\n  - job_name: qt\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        yield base
    finally:
        for proc in (prom, run):
            proc.terminate()
        for proc in (prom, run):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def queries() -> list[tuple[str, str, str]]:
    tool = load_tool("dashboards")
    return [(name, title, expr) for name, build in tool.DASHBOARDS.items() for title, expr in tool.iter_exprs(build())]


def instant(base: str, expr: str) -> list[Any]:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    doc = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert doc["status"] == "success", (expr, doc)
    result: list[Any] = doc["data"]["result"]
    return result


def test_every_dashboard_query_returns_series_on_a_healthy_run(running: str) -> None:
    base = running
    wait_for(lambda: instant(base, 'up{job="qt"} == 1'), seconds=60, what="Prometheus to scrape qt run")
    # 20 scrapes: enough samples for every rate() window, and the universe has published
    wait_for(lambda: instant(base, 'count_over_time(qt_worker_up{worker="gate"}[1m]) >= 20')
             and instant(base, "qt_universe_size > 0"), seconds=90, what="20 scrapes and a universe")
    empty = [f"{name} / {title}: {expr}" for name, title, expr in queries() if not instant(base, expr)]
    assert empty == [], "queries without series:\n" + "\n".join(empty)
