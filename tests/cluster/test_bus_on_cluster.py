"""The bus on a real Redis Cluster: scripts, MULTI and reads stay in the profile's slot; MOVED and ASK followed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.connection import is_cluster_client, sync_client
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster, key_slot
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import ExecutionResult, Signal
from quantum_trader.core.service import redis_client
from quantum_trader.inspect import check, why

from tests.integration.test_check_and_why_cli import (
    KEYS,
    NOW,
    decision,
    heartbeats,
    intent,
    signal,
    universe,
    xadd,
)
from tests.router.helpers import profile

ROOT = Path(__file__).resolve().parents[2]


def signal_msg(i: int, *, symbol: str = "BTCUSDT") -> Signal:
    return Signal(
        signal_id=f"s{i}", symbol=symbol, side="BUY", confidence=0.8, model="m", model_version="1",
        price=100.0 + i, atr=1.0, regime="trend", rl_gate_pass=True, ts=1_700_000_000_000 + i,
    )


def keys_by_master(cluster: EmbeddedRedisCluster, keys: Keys) -> dict[int, list[str]]:
    """master port → the profile's keys stored on it (read on every master, not through the client)."""
    pattern = keys.prefix.replace("{", "\\{").replace("}", "\\}") + "*"
    masters = {port for _, _, port in cluster._slot_ranges()}
    return {port: sorted(cluster.cli(port, "KEYS", pattern).split()) for port in masters}


async def consume_until(bus: Bus, keys: Keys, want: int, *, consumer: str = "c1") -> list[str]:
    seen: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        seen.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(
        stream=keys.ai_signal, group="g", consumer=consumer, message_type=Signal, handler=handler, stop=stop,
        count=50, block_ms=50,
    ))
    deadline = asyncio.get_running_loop().time() + 15
    while len(seen) < want and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return seen


async def test_scripts_multi_and_group_reads_of_one_profile_run_on_the_one_master_of_its_slot(
    cluster: EmbeddedRedisCluster,
) -> None:
    keys = Keys("paper", namespace="cl-bus")
    client = redis_client(cluster.url)
    assert is_cluster_client(client)
    bus = Bus(client, keys=keys)
    await bus.publish_many([(keys.ai_signal, signal_msg(i)) for i in range(40)])
    # the HSETNX + XADD script, alone and in a pipeline (the pipeline path loads the script itself)
    assert await bus.publish_once(keys.ai_signal, signal_msg(40), ledger=keys.published_signals, ledger_field="s40")
    assert not await bus.publish_once(keys.ai_signal, signal_msg(40), ledger=keys.published_signals,
                                      ledger_field="s40")
    once = await bus.publish_once_many(
        [(keys.ai_signal, signal_msg(i), keys.published_signals, f"s{i}", "1") for i in (40, 41, 42)])
    assert once == [False, True, True]
    # a malformed entry: dead-lettered and acked in one MULTI
    await client.xadd(keys.ai_signal, {"signal_id": "bad", "confidence": "lots"})

    seen = await consume_until(bus, keys, 43)

    assert sorted(seen) == sorted(f"s{i}" for i in range(43))
    assert (await client.xpending(keys.ai_signal, "g"))["pending"] == 0
    letters = await bus.range(keys.deadletter)
    assert len(letters) == 1 and letters[0].fields is not None
    assert letters[0].fields[b"group"] == b"g" and letters[0].fields[b"code"] == b"malformed"
    owner = cluster.master_of_slot(key_slot(keys.prefix))
    stored = keys_by_master(cluster, keys)
    assert {keys.ai_signal, keys.published_signals, keys.deadletter} <= set(stored[owner])
    assert all(not found for port, found in stored.items() if port != owner), stored
    await client.aclose()


async def test_reads_follow_ask_during_a_slot_migration_and_moved_after_it(cluster: EmbeddedRedisCluster) -> None:
    keys = Keys("cl-move")
    slot = key_slot(keys.prefix)
    client = redis_client(cluster.url)
    bus = Bus(client, keys=keys)
    await bus.ensure_group(keys.ai_signal, "g")
    await bus.publish_many([(keys.ai_signal, signal_msg(i)) for i in range(5)])
    source = cluster.master_of_slot(slot)
    target = next(port for _, _, port in cluster._slot_ranges() if port != source)
    source_id, target_id = (cluster.cli(p, "CLUSTER", "MYID") for p in (source, target))

    # mid-migration: the stream already moved to the importing node, the slot still belongs to the source
    assert cluster.cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id) == "OK"
    assert cluster.cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id) == "OK"
    assert cluster.cli(source, "MIGRATE", "127.0.0.1", str(target), "", "0", "5000",
                           "KEYS", keys.ai_signal) == "OK"
    assert cluster.cli(source, "EXISTS", keys.ai_signal).startswith("ASK ")  # gone from the source
    got = await bus.read(keys.ai_signal, "g", "c1", count=10, block_ms=None)  # the source answers ASK
    assert [e.fields[b"signal_id"] for e in got if e.fields] == [f"s{i}".encode() for i in range(5)]

    # migration done: the client's slot map still names the source, which answers MOVED
    for port in (target, source, *(p for _, _, p in cluster._slot_ranges() if p not in (source, target))):
        cluster.cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    await bus.publish_many([(keys.ai_signal, signal_msg(i)) for i in range(5, 8)])
    got = await bus.read(keys.ai_signal, "g", "c1", count=10, block_ms=None, ack_first=[e.id for e in got])
    assert [e.fields[b"signal_id"] for e in got if e.fields] == [b"s5", b"s6", b"s7"]
    assert cluster.master_of_slot(slot) == target
    await bus.ack(keys.ai_signal, "g", [e.id for e in got])
    assert (await client.xpending(keys.ai_signal, "g"))["pending"] == 0
    await client.aclose()


def test_qt_check_why_and_pause_work_on_the_cluster_url(
    cluster: EmbeddedRedisCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    r = sync_client(cluster.url)
    universe(r, ["BTCUSDT", "ETHUSDT"])
    heartbeats(r)
    r.set(KEYS.open_orders, "1")
    r.sadd(KEYS.tradable_symbols, "BTCUSDT", "ETHUSDT")
    r.hset(KEYS.position_snapshot("BTCUSDT"), mapping={"mark_price": "1", "ts": str(NOW)})
    xadd(r, KEYS.ai_signal, signal("BTCUSDT", "a"))
    xadd(r, KEYS.trade_intent, intent("BTCUSDT", "a"))
    xadd(r, KEYS.gate_decision, decision("BTCUSDT", "a", "none"))
    xadd(r, KEYS.execution_result, ExecutionResult(
        order_id="PAPER-1", intent_id="int-a", decision_id="d-a", symbol="BTCUSDT", side="SELL", qty=10.0, price=1.0,
        notional_usd=10.0, slippage_bps=1.0, fee_usd=0.004, status="FILLED", reason="none", mode="paper", ts=NOW))

    assert check.run(profile(), as_json=False, window_s=300.0, redis_url=cluster.url) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "GO"
    assert why.run(profile(), "BTCUSDT", as_json=True, redis_url=cluster.url) == 0
    assert json.loads(capsys.readouterr().out)["traded"] is True
    paused = subprocess.run(
        [sys.executable, "-m", "quantum_trader.cli", "pause", "--profile", "examples/paper.yaml", "--reason", "test"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "REDIS_URL": cluster.url}, timeout=60,
        check=False,
    )
    assert paused.returncode == 0, paused.stderr
    assert r.exists(KEYS.control_paused) == 1
    r.close()
