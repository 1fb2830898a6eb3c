"""Every Redis client of the workers, the qt commands and the operator comes from core/connection.py.

So a ``redis+cluster://`` URL works wherever a URL is taken: a client built anywhere else
would silently talk to one node of a cluster (and fail on the first key of another slot).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACTORY = ROOT / "workers" / "quantum_trader" / "core" / "connection.py"
# the embedded server's own readiness probe talks to its unix socket: never a cluster
ALLOWED = {ROOT / "workers" / "quantum_trader" / "core" / "embedded.py"}
CLIENT = re.compile(r"\b(?:redis|aredis|asyncio|cluster)\.(?:Redis|StrictRedis)\s*(?:\.from_url)?\s*\("
                    r"|\bRedisCluster\s*(?:\.from_url)?\s*\(|\bConnectionPool\s*(?:\.from_url)?\s*\(")


def test_no_redis_client_is_built_outside_the_connection_factory() -> None:
    sources = [*(ROOT / "workers" / "quantum_trader").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in sources if p != FACTORY and p not in ALLOWED
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if CLIENT.search(line) and not line.lstrip().startswith("#")]
    assert found == [], "build Redis clients with quantum_trader.core.connection.async_client/sync_client:\n" + \
        "\n".join(found)
