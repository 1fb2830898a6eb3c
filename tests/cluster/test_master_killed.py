"""kill -9 of the profile's master on a real Redis Cluster: its replica takes over and the workers carry on.

Replication is asynchronous, so writes the dead master acknowledged in its last moments may
never reach the replica (Redis's documented trade-off; a manual failover, tested in
test_pipeline_on_cluster.py, loses nothing). What must hold: the workers reconnect to the
new master by themselves, every intent the new master has gets exactly one decision and
every EXECUTE one execution result, and every intent sent after the takeover is handled.
"""

from __future__ import annotations

import asyncio
import time

from quantum_trader.core.clock import WallClock
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster, key_slot
from quantum_trader.core.service import run_workers

from tests.cluster.gate_executor import GateExecutor
from tests.executor.fixtures import StaticExchange


async def test_killed_master_is_replaced_and_the_workers_reconnect_and_finish_the_stream(
    cluster: EmbeddedRedisCluster,
) -> None:
    p = GateExecutor(cluster.url, "cl-kill", tag="k")
    slot = key_slot(p.keys.prefix)
    master = cluster.master_of_slot(slot)
    replica = cluster.replica_of(master)
    await asyncio.to_thread(p.seed)
    stop = asyncio.Event()
    run = asyncio.create_task(run_workers(["gate", "executor"], profile=p.profile, redis_url=cluster.url,
                                          clock=WallClock(), stop=stop, http_port=None, exchange_factory=StaticExchange))
    try:
        await asyncio.to_thread(p.feed, range(0, 600))
        await asyncio.to_thread(p.wait, lambda: p.client.xlen(p.keys.gate_decision) >= 200, 30, "200 decisions")
        cluster.kill(master)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.wait_promoted, replica)
        takeover_s = time.monotonic() - killed_at
        await asyncio.to_thread(p.seed)  # through the client that was connected to the dead master
        await asyncio.to_thread(p.feed, range(600, 1000))
        await asyncio.to_thread(p.wait, lambda: p.done(int(p.client.xlen(p.keys.trade_intent))), 60,
                                "every surviving intent handled")
    finally:
        stop.set()
        await run
    decisions, executes = p.exactly_once()
    kept = {f["intent_id"] for _, f in p.client.xrange(p.keys.trade_intent)}
    assert {f"k{n:06d}" for n in range(600, 1000)} <= kept, "an intent sent after the takeover was lost"
    assert executes > 0 and decisions == len(kept) >= 400
    assert cluster.master_of_slot(slot) == replica
    assert takeover_s < 15
    print(f"takeover_s={takeover_s:.2f} kept={len(kept)}/1000")
