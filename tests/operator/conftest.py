"""Fixtures: a kmock Kubernetes API on a real port, an HTTP client for it, the operator in a thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import kmock
import pytest
from quantum_operator.config import OperatorConfig

from .emulator import Api, Emulator, OperatorThread, make_config


@pytest.fixture
async def k8s() -> AsyncIterator[tuple[Emulator, str]]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        yield emulator, str(server.url)


@pytest.fixture
async def api(k8s: tuple[Emulator, str]) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(k8s[1], session)


@pytest.fixture
async def run_operator(k8s: tuple[Emulator, str]) -> AsyncIterator[Callable[..., Any]]:
    started: list[OperatorThread] = []

    async def start(
        config: OperatorConfig | None = None, *, webhook_port: int | None = None
    ) -> OperatorThread:
        op = OperatorThread(k8s[1], config or make_config(), webhook_port=webhook_port)
        await op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        await op.stop()
