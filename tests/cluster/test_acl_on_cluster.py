"""Per-profile ACL users on a Redis Cluster: the operator creates the user on every node, and the
profile's workers, as that user, run the bus through the cluster client with nothing refused."""

from __future__ import annotations

import asyncio

from quantum_operator.redis_acl import ensure_user
from quantum_trader.core import acl
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.connection import async_client
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster, key_slot
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Signal

from tests.cluster.test_bus_on_cluster import signal_msg


async def test_the_operator_creates_the_profile_user_on_every_node_and_the_bus_runs_as_that_user(
    cluster: EmbeddedRedisCluster,
) -> None:
    keys = Keys("paper", namespace="cl-acl")
    user = acl.ProfileUser(keys=keys, password="s3cret-for-the-test")
    admin = async_client(cluster.url)  # the operator's client (the default user may manage ACLs here)
    outcome = await ensure_user(admin, user)
    assert outcome.changed and not outcome.error, outcome
    assert (await ensure_user(admin, user)).changed is False  # converged: nothing to change the second time
    await admin.aclose()
    for node in cluster.nodes:
        assert cluster.cli(node.port, "ACL", "GETUSER", user.name) != "", f"no {user.name} on {node.port}"

    client = async_client(cluster.url, decode_responses=True, username=user.name, password=user.password)
    bus = Bus(client, keys=keys)
    await bus.publish_many([(keys.ai_signal, signal_msg(i)) for i in range(20)])
    assert await bus.publish_once(keys.ai_signal, signal_msg(20), ledger=keys.published_signals, ledger_field="s20")
    await client.xadd(keys.ai_signal, {"signal_id": "bad"})  # dead-lettered and acked in one MULTI
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(stream=keys.ai_signal, group="g", consumer="c1", message_type=Signal,
                                           handler=handler, stop=stop, count=50, block_ms=50))
    for _ in range(500):
        if len(seen) >= 21:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    await client.aclose()

    assert sorted(seen) == sorted(f"s{i}" for i in range(21))
    owner = cluster.master_of_slot(key_slot(keys.prefix))
    assert cluster.cli(owner, "XLEN", keys.deadletter) == "1"
    refused = {n.port: cluster.cli(n.port, "ACL", "LOG") for n in cluster.nodes}
    assert all(log == "" for log in refused.values()), refused
