"""Gate + executor benchmark, each figure next to raw Redis XADD → XREADGROUP measured in the same run.

    .venv/bin/python bench/bench_pipeline.py [--intents 20000] [--rate 1000] [--seconds 10] [--json]

Runs an embedded Redis (AOF everysec, unix socket); the gate and the paper
executor run as two separate OS processes (tests/executor/runner.py), like two
pods. Intents cycle over 200 symbols, alternating an open and a reduce-only
close per symbol, so positions stay bounded and both stages do full work
(every intent is decided; every EXECUTE produces an execution result).

1. throughput: publish N intents (pipelined) and time until every intent is
   decided and every EXECUTE executed; raw: one process XADDs N 15-field
   entries (pipelined 100), another XREADGROUP COUNT 100 + XACKs them.
   Also reported: CPU µs per intent of the gate, executor and redis-server processes
   (from /proc), which the machine's other load does not inflate the way wall time is.
2. latency at a fixed rate: a sender process XADDs one intent per 1/rate s and
   records send times; the bench reads ``execution.result`` (XREAD BLOCK) and
   records receive times → intent → execution-result latency. Raw: the same
   sender/reader harness on a plain stream with XREADGROUP BLOCK.
Targets (issue 4): ≥ 5,000 intents/s; p99 ≤ 10 × raw p99.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "workers")]

import numpy as np  # noqa: E402
import redis  # noqa: E402
from quantum_trader.core.embedded import EmbeddedRedis  # noqa: E402
from quantum_trader.core.keys import Keys  # noqa: E402
from quantum_trader.core.profile import spec_to_json  # noqa: E402

from tests.executor.fixtures import SYMBOLS, make_intent, profile, seed_snapshots_sync  # noqa: E402

RAW_STREAM = "bench:raw"


def intent_fields(n: int, tag: str) -> dict[str, str]:
    symbol = SYMBOLS[n % len(SYMBOLS)]
    closing = (n // len(SYMBOLS)) % 2 == 1
    i = make_intent(f"{tag}{n:07d}", symbol, side="SELL" if closing else "BUY", reduce_only=closing,
                    size=1000.0 if closing else 10.0, ts=int(time.time() * 1000))
    return i.to_fields()


# -- sender / reader processes -------------------------------------------------------------------


def _send_burst(url: str, stream: str, fields: list[dict[str, str]]) -> None:
    r = redis.Redis.from_url(url)
    for start in range(0, len(fields), 100):
        pipe = r.pipeline(transaction=False)
        for f in fields[start:start + 100]:
            pipe.xadd(stream, f)  # type: ignore[arg-type]
        pipe.execute()
    r.close()


def _send_paced(url: str, stream: str, fields: list[dict[str, str]], rate: float, out: Any) -> None:
    """XADD one entry every 1/rate s; report {id: send wall time}."""
    r = redis.Redis.from_url(url)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for n, f in enumerate(fields):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # no busy-wait: the sender must not steal a core from the pipeline
        sent[f["mid"] if "mid" in f else f["intent_id"]] = time.time()
        r.xadd(stream, f)  # type: ignore[arg-type]
    out.put(sent)
    r.close()


def _raw_reader(url: str, n: int, out: Any) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    got = 0
    recv: dict[str, float] = {}
    while got < n:
        resp = r.xreadgroup("raw", "c1", {RAW_STREAM: ">"}, count=100, block=1000)
        if not resp:
            continue
        rows = resp[0][1]
        now = time.time()
        for _, f in rows:
            recv[f["mid"]] = now
        r.xack(RAW_STREAM, "raw", *[i for i, _ in rows])
        got += len(rows)
    out.put(recv)
    r.close()


# -- raw baseline ----------------------------------------------------------------------------------


def raw_throughput(url: str, n: int) -> float:
    r = redis.Redis.from_url(url)
    r.delete(RAW_STREAM)
    r.xgroup_create(RAW_STREAM, "raw", id="0", mkstream=True)
    fields = [{**intent_fields(i, "r"), "mid": str(i)} for i in range(n)]
    q: Any = mp.Queue()
    reader = mp.Process(target=_raw_reader, args=(url, n, q))
    reader.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    sender = mp.Process(target=_send_burst, args=(url, RAW_STREAM, fields))
    sender.start()
    q.get(timeout=120)
    elapsed = time.perf_counter() - t0
    sender.join()
    reader.join()
    r.delete(RAW_STREAM)
    r.close()
    return n / elapsed


def raw_latency(url: str, rate: float, seconds: float) -> np.ndarray:
    n = int(rate * seconds)
    r = redis.Redis.from_url(url)
    r.delete(RAW_STREAM)
    r.xgroup_create(RAW_STREAM, "raw", id="$", mkstream=True)
    fields = [{**intent_fields(i, "q"), "mid": str(i)} for i in range(n)]
    qr: Any = mp.Queue()
    qs: Any = mp.Queue()
    reader = mp.Process(target=_raw_reader, args=(url, n, qr))
    reader.start()
    time.sleep(0.3)
    sender = mp.Process(target=_send_paced, args=(url, RAW_STREAM, fields, rate, qs))
    sender.start()
    sent = qs.get(timeout=seconds * 3 + 30)
    recv = qr.get(timeout=60)
    sender.join()
    reader.join()
    r.delete(RAW_STREAM)
    r.close()
    return np.array([recv[k] - sent[k] for k in recv if k in sent]) * 1000.0


# -- gate + executor -------------------------------------------------------------------------------


class Pipeline:
    """Gate and executor as two OS processes on one profile."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.keys = Keys(name)
        prof = profile(name)
        self.profile_json = json.dumps({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                                        "metadata": {"name": name}, "spec": spec_to_json(prof.spec)})
        self.client = redis.Redis.from_url(url, decode_responses=True)
        seed_snapshots_sync(self.client, self.keys, SYMBOLS, ts_ms=int(time.time() * 1000))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'workers'}"}
        for worker in ("gate", "executor"):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.executor.runner", worker, "--redis-url", self.url,
                 "--profile-json", self.profile_json, "--consumer", f"{worker}-bench"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        k = self.keys
        deadline = time.monotonic() + 30
        while not (self.client.exists(k.open_orders) and self._has_group(k.trade_intent, "gate")
                   and self._has_group(k.gate_decision, "executor")):
            if time.monotonic() > deadline:
                raise RuntimeError("gate/executor did not start")
            time.sleep(0.02)

    def _has_group(self, stream: str, group: str) -> bool:
        try:
            return any(g["name"] == group for g in self.client.xinfo_groups(stream))
        except redis.ResponseError:
            return False

    def done(self, n: int) -> bool:
        k = self.keys
        if self.client.hlen(k.decided_intents) < n or self.client.hlen(k.pending_intents):
            return False
        for g in self.client.xinfo_groups(k.gate_decision):
            if g["name"] == "executor":
                return int(g["pending"]) == 0 and int(g.get("lag") or 0) == 0
        return False

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.client.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_throughput(url: str, n: int, *, redis_pid: int) -> tuple[float, int, dict[str, float]]:
    pl = Pipeline(url, "bench-tp")
    pl.start()
    fields = [intent_fields(i, "t") for i in range(n)]
    pids = {"gate": pl.procs[0].pid, "executor": pl.procs[1].pid, "redis": redis_pid}
    try:
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        t0 = time.perf_counter()
        sender = mp.Process(target=_send_burst, args=(url, pl.keys.trade_intent, fields))
        sender.start()
        while not pl.done(n):
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        cpu_us = {k: round((cpu_seconds(p) - cpu0[k]) / n * 1e6, 1) for k, p in pids.items()}
        sender.join()
        results = int(pl.client.xlen(pl.keys.execution_result))
    finally:
        pl.stop()
    return n / elapsed, results, cpu_us


def pipeline_latency(url: str, rate: float, seconds: float) -> np.ndarray:
    n = int(rate * seconds)
    pl = Pipeline(url, "bench-lat")
    pl.start()
    fields = [intent_fields(i, "l") for i in range(n)]
    qs: Any = mp.Queue()
    recv: dict[str, float] = {}
    try:
        sender = mp.Process(target=_send_paced, args=(url, pl.keys.trade_intent, fields, rate, qs))
        last = "$"
        sender.start()
        deadline = time.monotonic() + seconds * 3 + 30
        checked = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - checked > 0.5:  # the completion check is heavier than a read
                checked = time.monotonic()
                if pl.done(n):
                    break
            resp = pl.client.xread({pl.keys.execution_result: last}, count=500, block=200)
            now = time.time()
            for _, rows in resp or []:
                for entry_id, f in rows:
                    recv[f["intent_id"]] = now
                    last = entry_id
        sent = qs.get(timeout=30)
        sender.join()
    finally:
        pl.stop()
    return np.array([recv[k] - sent[k] for k in recv if k in sent]) * 1000.0


def _wait_ready(url: str) -> None:
    """The socket file can appear a moment before the server accepts connections."""
    probe = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    probe.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=["throughput", "latency"], default=None)
    args = ap.parse_args()
    raw_tp = pipe_tp = 0.0
    results = 0
    cpu_us: dict[str, float] = {}
    raw_lat = pipe_lat = np.array([0.0])
    # a fresh server per pair, so the throughput phase's data (AOF size, rewrites) cannot stall the latency phase
    if args.only != "latency":
        with EmbeddedRedis() as server:
            _wait_ready(server.url)
            raw_tp = raw_throughput(server.url, args.intents)
            pipe_tp, results, cpu_us = pipeline_throughput(server.url, args.intents, redis_pid=server.pid)
    if args.only != "throughput":
        with EmbeddedRedis() as server:
            _wait_ready(server.url)
            raw_lat = raw_latency(server.url, args.rate, args.seconds)
            pipe_lat = pipeline_latency(server.url, args.rate, args.seconds)
    p = {q: float(np.percentile(pipe_lat, q)) for q in (50, 99)}
    r = {q: float(np.percentile(raw_lat, q)) for q in (50, 99)}
    out = {
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "intents": args.intents,
        "throughput_intents_per_s": round(pipe_tp),
        "execution_results": results,
        "raw_xadd_xreadgroup_msgs_per_s": round(raw_tp),
        "cpu_us_per_intent": cpu_us,
        "rate_per_s": args.rate,
        "latency_samples": len(pipe_lat),
        "latency_ms_p50": round(p[50], 3),
        "latency_ms_p99": round(p[99], 3),
        "raw_latency_ms_p50": round(r[50], 3),
        "raw_latency_ms_p99": round(r[99], 3),
        "p99_ratio_vs_raw": round(p[99] / r[99], 2) if r[99] > 0 else None,
        "target_throughput_met": pipe_tp >= 5000,
        "target_p99_met": p[99] <= 10 * r[99],
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"gate+executor throughput : {out['throughput_intents_per_s']:>8} intents/s "
          f"({results} execution results)   raw XADD→XREADGROUP: {out['raw_xadd_xreadgroup_msgs_per_s']} msg/s")
    print(f"CPU per intent (µs): {cpu_us}  → CPU-bound ceiling on {os.cpu_count()} idle cores ≈ "
          f"{round((os.cpu_count() or 1) * 1e6 / max(1e-9, sum(cpu_us.values()))) if cpu_us else 0} intents/s")
    print(f"latency @ {args.rate:.0f}/s intent→result: p50 {p[50]:.2f} ms  p99 {p[99]:.2f} ms   "
          f"raw XADD→XREADGROUP: p50 {r[50]:.2f} ms  p99 {r[99]:.2f} ms   p99 ratio {out['p99_ratio_vs_raw']}×")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work slows both sides)")
    print(f"targets: ≥5000/s {'MET' if out['target_throughput_met'] else 'MISSED'}; "
          f"p99 ≤ 10× raw {'MET' if out['target_p99_met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
