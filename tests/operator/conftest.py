"""Fixtures: a kmock Kubernetes API on a real port, an HTTP client for it, the operator in a thread.

Every emulator enforces the chart's own Role and ClusterRole (rendered by the real helm binary),
so each operator test also proves the chart grants what the operator does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import kmock
import pytest
import yaml
from quantum_operator.config import OperatorConfig

from tests.deploy.conftest import CHART, NAMESPACE, RELEASE, load_tool, run_helm

from .emulator import Api, Emulator, OperatorThread, make_config

ChartRbac = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def chart_rbac() -> ChartRbac | None:
    """(Role rules, ClusterRole rules) of `helm template` of charts/quantum-trader; None without helm."""
    fetch = load_tool("fetch_helm")
    try:
        helm = fetch.ensure_helm()
    except fetch.HelmUnavailable:
        return None
    res = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--show-only", "templates/rbac.yaml"
    )
    assert res.returncode == 0, res.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(res.stdout) if d}
    return docs["Role"]["rules"], docs["ClusterRole"]["rules"]


@pytest.fixture
async def k8s(chart_rbac: ChartRbac | None) -> AsyncIterator[tuple[Emulator, str]]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        if chart_rbac is not None:
            emulator.enforce(*chart_rbac)
        yield emulator, str(server.url)


@pytest.fixture
async def api(k8s: tuple[Emulator, str]) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(k8s[1], session)


@pytest.fixture
async def run_operator(k8s: tuple[Emulator, str]) -> AsyncIterator[Callable[..., Any]]:
    started: list[OperatorThread] = []

    async def start(
        config: OperatorConfig | None = None, *, webhook_port: int | None = None,
        webhook_server: Any = None,
    ) -> OperatorThread:
        op = OperatorThread(k8s[1], config or make_config(), webhook_port=webhook_port,
                            webhook_server=webhook_server)
        await op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        await op.stop()
