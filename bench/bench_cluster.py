"""The pipeline on a Redis Cluster beside a single Redis, measured in the same run.

    .venv/bin/python bench/bench_cluster.py [--intents 5000] [--messages 20000] [--repeats 3] [--json]

Starts a single ``redis-server`` (TCP on 127.0.0.1, no persistence) and a local Redis Cluster
(3 masters + 3 replicas, TCP on 127.0.0.1, no persistence) from the same binary, then, for
each of them in turn (alternating, ``--repeats`` rounds, medians reported):

1. bus: one ``Bus`` publishes ``--messages`` signals (``publish_many``, 100 per pipeline) while
   one ``Bus.consume`` loop (COUNT 100, acks riding on the next read) handles them; messages/s
   from the first publish to the last handled entry.
2. gate + executor: the gate and the paper executor as two OS processes (as in
   bench/bench_pipeline.py); ``--intents`` intents are XADDed in pipelines of 100; intents/s
   until every intent is decided and every EXECUTE executed.

Beside each rate: CPU µs per message/intent of the clients (the bench process for the bus; the
gate + executor processes) and of the Redis server processes (all six nodes for the cluster),
read from /proc — other load on the machine inflates wall time much more than CPU time.
Prints every figure for both servers and the ratio cluster / single.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "workers")]

from quantum_trader.core.bus import Bus, Parsed  # noqa: E402
from quantum_trader.core.embedded import EmbeddedRedis  # noqa: E402
from quantum_trader.core.embedded_cluster import EmbeddedRedisCluster  # noqa: E402
from quantum_trader.core.keys import Keys  # noqa: E402
from quantum_trader.core.messages import Signal  # noqa: E402
from quantum_trader.core.service import redis_client  # noqa: E402

from tests.cluster.gate_executor import GateExecutor  # noqa: E402

FIGURES = (
    ("bus_msgs_per_s", "bus publish+consume+ack, msg/s"),
    ("bus_client_cpu_us", "  client CPU µs/msg"),
    ("bus_server_cpu_us", "  redis-server CPU µs/msg (all nodes)"),
    ("pipeline_intents_per_s", "gate+executor, intents/s"),
    ("pipeline_workers_cpu_us", "  gate+executor CPU µs/intent"),
    ("pipeline_server_cpu_us", "  redis-server CPU µs/intent (all nodes)"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signal(i: int) -> Signal:
    return Signal(signal_id=f"s{i}", symbol=f"T{i % 200:03d}USDT", side="BUY", confidence=0.8, model="m",
                  model_version="1", price=100.0, atr=1.0, regime="trend", rl_gate_pass=True,
                  ts=1_700_000_000_000 + i)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


async def bus_rate(url: str, profile: str, n: int, servers: list[int]) -> tuple[float, float, float]:
    """publish_many + consume + ack of ``n`` signals on one profile → (messages/s, client CPU µs/msg,
    server CPU µs/msg)."""
    client = redis_client(url)
    keys = Keys(profile)
    bus = Bus(client, keys=keys)
    await bus.ensure_group(keys.ai_signal, "bench")
    seen = 0
    done = asyncio.Event()

    async def handler(batch: list[Parsed[Signal]]) -> None:
        nonlocal seen
        seen += len(batch)
        if seen >= n:
            done.set()

    stop = asyncio.Event()
    consumer = asyncio.create_task(bus.consume(stream=keys.ai_signal, group="bench", consumer="c1",
                                               message_type=Signal, handler=handler, stop=stop, count=100,
                                               block_ms=100, order_field=None))
    messages = [_signal(i) for i in range(n)]
    cpu0, server0 = time.process_time(), cpu_of(servers)
    t0 = time.perf_counter()
    for start in range(0, n, 100):
        await bus.publish_many([(keys.ai_signal, m) for m in messages[start:start + 100]])
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - t0
    client_us, server_us = (time.process_time() - cpu0) / n * 1e6, (cpu_of(servers) - server0) / n * 1e6
    stop.set()
    await consumer
    await client.aclose()
    return n / elapsed, client_us, server_us


def pipeline_rate(url: str, profile: str, n: int, servers: list[int]) -> tuple[float, float, float]:
    """gate + executor processes over ``n`` intents → (intents/s, their CPU µs/intent, server CPU µs/intent)."""
    with GateExecutor(url, profile, tag="b") as p:
        time.sleep(0.5)  # both workers blocked in their first read
        workers = [proc.pid for proc in p.procs.values()]
        cpu0, server0 = cpu_of(workers), cpu_of(servers)
        t0 = time.perf_counter()
        p.feed(range(n))
        p.wait_done(n, timeout=300)
        elapsed = time.perf_counter() - t0
        workers_us, server_us = (cpu_of(workers) - cpu0) / n * 1e6, (cpu_of(servers) - server0) / n * 1e6
        p.exactly_once()
    return n / elapsed, workers_us, server_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--intents", type=int, default=5000)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    port = _free_port()
    single = EmbeddedRedis(appendonly=False, port=port).start()
    cluster = EmbeddedRedisCluster(masters=3, replicas=1).start()
    targets = {"single": (f"redis://127.0.0.1:{port}", [single.pid]),
               "cluster": (cluster.url, [n.process.pid for n in cluster.nodes if n.process is not None])}
    figures: dict[str, dict[str, list[float]]] = {t: {k: [] for k, _ in FIGURES} for t in targets}
    try:
        for r in range(args.repeats):
            for target, (url, servers) in targets.items():
                f = figures[target]
                rate, client_us, server_us = asyncio.run(bus_rate(url, f"bench-bus-{r}", args.messages, servers))
                f["bus_msgs_per_s"].append(rate)
                f["bus_client_cpu_us"].append(client_us)
                f["bus_server_cpu_us"].append(server_us)
                rate, workers_us, server_us = pipeline_rate(url, f"bench-gx-{r}", args.intents, servers)
                f["pipeline_intents_per_s"].append(rate)
                f["pipeline_workers_cpu_us"].append(workers_us)
                f["pipeline_server_cpu_us"].append(server_us)
    finally:
        cluster.stop()
        single.stop()

    med = {t: {k: statistics.median(v) for k, v in f.items()} for t, f in figures.items()}
    ratio = {k: med["cluster"][k] / med["single"][k] for k in med["single"]}
    out: dict[str, Any] = {"intents": args.intents, "messages": args.messages, "repeats": args.repeats,
                           "median": med, "ratio_cluster_to_single": ratio, "runs": figures}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"Redis Cluster (3 masters + 3 replicas) vs single Redis, both TCP 127.0.0.1, no persistence; "
          f"median of {args.repeats}")
    print(f"bus: {args.messages} messages; gate+executor: {args.intents} intents")
    print(f"{'figure':<44}{'single':>10}{'cluster':>10}{'cluster/single':>16}")
    for k, label in FIGURES:
        print(f"{label:<44}{med['single'][k]:>10,.0f}{med['cluster'][k]:>10,.0f}{ratio[k]:>16.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work slows both sides)")


if __name__ == "__main__":
    main()
