"""The gate + executor pipeline (bus, ledger Lua scripts, MULTI) on a real Redis Cluster.

The gate and the executor are separate OS processes given a ``redis+cluster://`` URL, as
pods are. A manual failover of the profile's master mid-stream loses nothing acknowledged:
every intent gets exactly one decision and every EXECUTE exactly one execution result.
Two profiles of the same name in two namespaces land on two different masters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from quantum_trader.core.clock import WallClock
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster, key_slot
from quantum_trader.core.keys import Keys
from quantum_trader.core.service import run_workers

from tests.cluster.gate_executor import GateExecutor
from tests.executor.fixtures import StaticExchange

N = 1_200


def test_a_failover_mid_stream_loses_no_decision_or_fill_and_the_workers_carry_on(
    cluster: EmbeddedRedisCluster, tmp_path: Path
) -> None:
    with GateExecutor(cluster.url, "cl-fail", logs=tmp_path) as p:
        slot = key_slot(p.keys.prefix)
        old_master = cluster.master_of_slot(slot)
        replica = cluster.replica_of(old_master)
        feeder = threading.Thread(target=lambda: [(p.feed(range(s, s + 100)), time.sleep(0.05))
                                                  for s in range(0, N, 100)], daemon=True)
        feeder.start()
        p.wait(lambda: p.client.xlen(p.keys.gate_decision) >= 300, 30, "300 decisions")
        cluster.failover(replica)  # the replica takes over the slot while intents keep coming
        at_failover = p.client.xlen(p.keys.gate_decision)
        feeder.join(30)
        p.wait_done(N)
        assert cluster.master_of_slot(slot) == replica != old_master
        # and back, while both workers sit in a blocking XREADGROUP (released with UNBLOCKED by the demotion)
        time.sleep(0.3)
        cluster.failover(old_master)
        p.feed(range(N, N + 200))
        p.wait_done(N + 200)
        decisions, executes = p.exactly_once()

    assert cluster.master_of_slot(slot) == old_master
    assert at_failover < N, "the failover was not mid-stream"
    assert decisions == N + 200 and executes > 0


async def test_one_profile_name_in_two_namespaces_runs_on_two_masters(cluster: EmbeddedRedisCluster) -> None:
    a, b = Keys("paper", namespace="desk-a"), Keys("paper", namespace="desk-b")
    master_a, master_b = (cluster.master_of_slot(key_slot(k.prefix)) for k in (a, b))
    assert master_a != master_b, "pick namespaces whose hash tags fall on different masters"
    pa = GateExecutor(cluster.url, "paper", namespace="desk-a", tag="a")
    pb = GateExecutor(cluster.url, "paper", namespace="desk-b", tag="b")
    stop = asyncio.Event()
    runs = [asyncio.create_task(run_workers(  # both profiles' gate and executor in this process
        ["gate", "executor"], profile=p.profile, redis_url=cluster.url, clock=WallClock(), stop=stop,
        http_port=None, exchange_factory=StaticExchange)) for p in (pa, pb)]
    try:
        for p, n in ((pa, 400), (pb, 300)):
            await asyncio.to_thread(p.seed)
            await asyncio.to_thread(p.feed, range(0, n))
        await asyncio.to_thread(pa.wait_done, 400)
        await asyncio.to_thread(pb.wait_done, 300)
    finally:
        stop.set()
        await asyncio.gather(*runs)
    assert pa.exactly_once()[0] == 400 and pb.exactly_once()[0] == 300

    for keys, master, other in ((a, master_a, master_b), (b, master_b, master_a)):
        pattern = keys.prefix.replace("{", "\\{").replace("}", "\\}") + "*"
        on_master = set(cluster.cli(master, "KEYS", pattern).split())
        assert {keys.trade_intent, keys.gate_decision, keys.execution_result, keys.decided_intents} <= on_master
        assert cluster.cli(other, "KEYS", pattern) == ""
