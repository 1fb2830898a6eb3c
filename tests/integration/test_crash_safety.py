"""Crash safety: kill -9 the gate and the executor mid-stream, restart them, lose and duplicate nothing.

5,000 intents over 200 symbols (every symbol has a fresh snapshot and is
allowed; limits are loose). Intents alternate per symbol between opening a long
and a reduce-only close, so decisions and fills depend on timing — the
invariants must hold whatever the interleaving:
- every intent has exactly one decision (stream and ledger agree);
- every EXECUTE has exactly one execution result, nothing else has one;
- ``state:open_orders`` equals the open positions, and the positions equal the
  replay of the position.event stream; no EXECUTE is left pending.
The gate and the executor are separate OS processes (tests/executor/runner.py)
restarted with the same consumer name, so they re-read their own pending entries.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import ExecutionResult, GateDecision, PositionEvent
from quantum_trader.core.profile import spec_to_json
from quantum_trader.gate.core import decision_id_for

from tests.executor.fixtures import SYMBOLS, make_intent, profile, seed_snapshots_sync

N_INTENTS = 5_000
CHUNK = 250
CHUNK_EVERY_S = 0.1
ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("crash")


def _intent(n: int) -> dict[str, str]:
    symbol = SYMBOLS[n % len(SYMBOLS)]
    closing = (n // len(SYMBOLS)) % 2 == 1
    i = make_intent(f"c{n:05d}", symbol, side="SELL" if closing else "BUY", reduce_only=closing,
                    size=1000.0 if closing else 10.0, ts=int(time.time() * 1000))
    return i.to_fields()


def _spawn(worker: str, url: str, profile_json: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'workers'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.executor.runner", worker, "--redis-url", url,
         "--profile-json", profile_json, "--consumer", f"{worker}-1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _group_idle(client: redis.Redis, stream: str, group: str) -> bool:
    for g in client.xinfo_groups(stream):
        if g["name"] == group:
            return int(g["pending"]) == 0 and int(g.get("lag") or 0) == 0
    return False


def test_kill_9_gate_and_executor_mid_stream_keeps_exactly_once_and_open_orders_true(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prof = profile("crash")
    profile_json = json.dumps({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                               "metadata": {"name": "crash"}, "spec": spec_to_json(prof.spec)})
    seed_snapshots_sync(client, KEYS, SYMBOLS, ts_ms=int(time.time() * 1000))

    def feed() -> None:
        feeder = redis.Redis.from_url(redis_url, decode_responses=True)
        for start in range(0, N_INTENTS, CHUNK):
            pipe = feeder.pipeline(transaction=False)
            for n in range(start, start + CHUNK):
                pipe.xadd(KEYS.trade_intent, _intent(n))
            pipe.execute()
            time.sleep(CHUNK_EVERY_S)
        feeder.close()

    procs: dict[str, subprocess.Popen[bytes]] = {}
    kills: list[tuple[str, int]] = []
    try:
        procs["gate"] = _spawn("gate", redis_url, profile_json)
        procs["executor"] = _spawn("executor", redis_url, profile_json)
        _wait(lambda: client.exists(KEYS.open_orders), 20, "executor start")
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        def kill_and_restart(worker: str, progress: str, at: int) -> None:
            _wait(lambda: client.xlen(progress) >= at, 30, f"{worker} progress {at}")
            procs[worker].send_signal(signal.SIGKILL)
            procs[worker].wait(5)
            kills.append((worker, int(client.xlen(progress))))
            procs[worker] = _spawn(worker, redis_url, profile_json)

        kill_and_restart("gate", KEYS.gate_decision, 800)
        kill_and_restart("executor", KEYS.execution_result, 300)
        kill_and_restart("gate", KEYS.gate_decision, 2500)
        kill_and_restart("executor", KEYS.execution_result, 900)
        feeder.join(30)
        _wait(lambda: client.hlen(KEYS.decided_intents) >= N_INTENTS, 40, "all intents decided")
        _wait(lambda: _group_idle(client, KEYS.gate_decision, "executor")
              and client.hlen(KEYS.pending_intents) == 0, 40, "executor drained")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            if p.stderr:
                p.stderr.close()

    assert [w for w, _ in kills] == ["gate", "executor", "gate", "executor"]
    assert all(at < N_INTENTS for _, at in kills), f"kills were not mid-stream: {kills}"

    decisions = [GateDecision.from_fields(f) for _, f in client.xrange(KEYS.gate_decision)]
    per_intent = collections.Counter(d.intent_id for d in decisions)
    assert len(per_intent) == N_INTENTS and set(per_intent.values()) == {1}
    assert client.hlen(KEYS.decided_intents) == N_INTENTS
    executes = {d.intent_id for d in decisions if d.decision == "EXECUTE"}
    assert executes, "nothing was executed"

    results = [ExecutionResult.from_fields(f) for _, f in client.xrange(KEYS.execution_result)]
    per_result = collections.Counter(r.intent_id for r in results)
    assert set(per_result) == executes and set(per_result.values()) == {1}
    assert client.hlen(KEYS.executed_intents) == len(executes)
    assert all(r.decision_id == decision_id_for(r.intent_id) for r in results)
    ledger = client.hgetall(KEYS.executed_intents)
    assert all(ledger[r.intent_id] == r.order_id for r in results if r.status == "FILLED")

    open_now: dict[str, str] = {}
    for _, f in client.xrange(KEYS.position_event):
        e = PositionEvent.from_fields(f)
        if e.event == "OPENED":
            assert e.symbol not in open_now, f"{e.symbol} opened twice"
            open_now[e.symbol] = e.order_id
        else:
            assert open_now.pop(e.symbol) == e.order_id
    positions = client.hgetall(KEYS.positions)
    assert {s: json.loads(v)["order_id"] for s, v in positions.items()} == open_now
    assert int(client.get(KEYS.open_orders) or -1) == len(positions)
    notional = sum(json.loads(v)["qty"] * json.loads(v)["entry_price"] for v in positions.values())
    assert abs(float(client.hget(KEYS.risk_state, "open_notional_usd") or 0.0) - notional) < 1e-6
    summary = client.hgetall(KEYS.pending_summary)
    assert all(int(v) <= 0 for f, v in summary.items() if f != "_notional"), summary
    assert abs(float(summary.get("_notional", 0.0))) < 1e-6
    filled = sum(r.status == "FILLED" for r in results)
    assert filled > 0
    print(f"kills={kills} executes={len(executes)} filled={filled} open={len(positions)}")
    client.close()
