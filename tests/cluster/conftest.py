"""A real Redis Cluster for the tests of this folder: 3 masters + 3 replicas from redis-server binaries.

One cluster per module (started in ~2 s, killed and removed after). Skipped, with the reason,
only when ``redis-cli`` (which ships with redis-server) is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from quantum_trader.core.embedded import EmbeddedRedisError
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster, find_cli_binary


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    try:
        find_cli_binary()
    except EmbeddedRedisError as exc:
        pytest.skip(f"Redis Cluster tests need redis-cli: {exc}")
    with EmbeddedRedisCluster(masters=3, replicas=1) as c:
        yield c


@pytest.fixture(autouse=True)
def _worker_logs_at_warning() -> Iterator[None]:
    """Workers run in the test process here: their per-intent INFO lines are not wanted (thousands per
    test), and a root handler an earlier test left on a closed stream would turn each into a traceback."""
    logger = logging.getLogger("quantum_trader")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)
