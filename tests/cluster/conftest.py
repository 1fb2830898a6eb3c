"""A real Redis Cluster for the tests of this folder: 3 masters + 3 replicas from redis-server binaries.

One cluster per module (started in ~2 s, killed and removed after). Skipped, with the reason,
only when ``redis-cli`` (which ships with redis-server) is missing.
"""

from __future__ import annotations

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
