"""The gate and the paper executor as two OS processes on one profile, on any Redis URL (cluster or not).

Used by the cluster tests and bench/bench_cluster.py. Intents cycle over 200 symbols,
alternating an open and a reduce-only close per symbol (as the crash-safety test and the
pipeline benchmark do), so both stages do full work and positions stay bounded.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from quantum_trader.core.connection import sync_client
from quantum_trader.core.messages import ExecutionResult, GateDecision
from quantum_trader.core.profile import parse_profile, spec_to_json

from tests.executor.fixtures import SYMBOLS, make_intent, profile, seed_snapshots_sync

ROOT = Path(__file__).resolve().parents[2]


def intent_fields(n: int, tag: str) -> dict[str, str]:
    symbol = SYMBOLS[n % len(SYMBOLS)]
    closing = (n // len(SYMBOLS)) % 2 == 1
    i = make_intent(f"{tag}{n:06d}", symbol, side="SELL" if closing else "BUY", reduce_only=closing,
                    size=1000.0 if closing else 10.0, ts=int(time.time() * 1000))
    return i.to_fields()


class GateExecutor:
    """``with GateExecutor(url, "name") as p: p.feed(range(0, 500)); p.wait_done(500)``."""

    def __init__(self, url: str, name: str, *, namespace: str = "", tag: str = "i", logs: Path | None = None) -> None:
        self.url = url
        self.logs = logs
        self.tag = tag
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        self.profile_json = json.dumps({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                                        "metadata": metadata, "spec": spec_to_json(profile(name).spec)})
        self.profile = parse_profile(json.loads(self.profile_json))
        self.keys = self.profile.keys
        self.client: redis.Redis = sync_client(url, decode_responses=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def seed(self) -> None:
        """Fresh snapshots of every symbol (the gate refuses stale ones)."""
        seed_snapshots_sync(self.client, self.keys, SYMBOLS, ts_ms=int(time.time() * 1000))

    def __enter__(self) -> GateExecutor:
        self.seed()
        for worker in ("gate", "executor"):
            self.spawn(worker)
        self.wait(lambda: self.client.exists(self.keys.open_orders) and self._group(self.keys.trade_intent, "gate")
                  is not None and self._group(self.keys.gate_decision, "executor") is not None, 30, "workers up")
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.client.close()

    def spawn(self, worker: str) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'workers'}"}
        err = (self.logs / f"{worker}.log").open("ab") if self.logs is not None else subprocess.DEVNULL
        self.procs[worker] = subprocess.Popen(
            [sys.executable, "-m", "tests.executor.runner", worker, "--redis-url", self.url,
             "--profile-json", self.profile_json, "--consumer", f"{worker}-1", "--log-level", "INFO"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )

    def feed(self, numbers: range, *, chunk: int = 100) -> None:
        for start in range(numbers.start, numbers.stop, chunk):
            pipe = self.client.pipeline(transaction=False)
            for n in range(start, min(start + chunk, numbers.stop)):
                pipe.xadd(self.keys.trade_intent, intent_fields(n, self.tag))  # type: ignore[arg-type]
            pipe.execute()

    def _group(self, stream: str, group: str) -> dict[str, Any] | None:
        try:
            return next((g for g in self.client.xinfo_groups(stream) if g["name"] == group), None)
        except redis.ResponseError:
            return None

    def done(self, n: int) -> bool:
        """Every one of ``n`` intents decided, every EXECUTE executed, nothing pending."""
        if self.client.hlen(self.keys.decided_intents) < n or self.client.hlen(self.keys.pending_intents):
            return False
        return self.caught_up(self.keys.gate_decision, "executor")

    def caught_up(self, stream: str, group: str) -> bool:
        """Nothing pending and the last entry delivered (not XINFO's ``lag``: after a failover Redis 7.0
        reports a stale lag — the group's entries-read counter is not carried over to the replica)."""
        g = self._group(stream, group)
        if g is None or int(g["pending"]):
            return False
        last = self.client.xrevrange(stream, count=1)
        return not last or g["last-delivered-id"] == last[0][0]

    def wait_done(self, n: int, *, timeout: float = 60.0) -> None:
        try:
            self.wait(lambda: self.done(n), timeout, f"{n} intents decided and executed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {self.state()}") from None

    def state(self) -> str:
        k = self.keys
        return (f"intents={self.client.xlen(k.trade_intent)} decided={self.client.hlen(k.decided_intents)} "
                f"pending_intents={self.client.hlen(k.pending_intents)} "
                f"gate={self._group(k.trade_intent, 'gate')} executor={self._group(k.gate_decision, 'executor')}")

    @staticmethod
    def wait(pred: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if pred():
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # a failover in progress: look again
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def exactly_once(self) -> tuple[int, int]:
        """Assert one decision per intent and one execution result per EXECUTE; → (decisions, executes)."""
        k = self.keys
        intents = [f["intent_id"] for _, f in self.client.xrange(k.trade_intent)]
        decisions = [GateDecision.from_fields(f) for _, f in self.client.xrange(k.gate_decision)]
        per_intent = collections.Counter(d.intent_id for d in decisions)
        assert set(per_intent) == set(intents), "an intent without a decision, or a decision without an intent"
        assert set(per_intent.values()) == {1}, [i for i, c in per_intent.items() if c > 1][:5]
        assert self.client.hlen(k.decided_intents) == len(intents)
        executes = {d.intent_id for d in decisions if d.decision == "EXECUTE"}
        results = [ExecutionResult.from_fields(f) for _, f in self.client.xrange(k.execution_result)]
        per_result = collections.Counter(r.intent_id for r in results)
        assert set(per_result) == executes and set(per_result.values()) <= {1}
        assert self.client.hlen(k.executed_intents) == len(executes)
        return len(decisions), len(executes)
