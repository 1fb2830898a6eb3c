"""Chaos run: kill -9 of the gate and the executor, Redis restarts under load, fuzzed entries, a neighbour.

    python -m tests.chaos.harness                 # the full run (make chaos): minutes
    python -m tests.chaos.harness --intents 600 --kills 2 --redis-restarts 1 --chunk 50 --chunk-every 0.3
                                                  # about what make test runs (tests/chaos/test_chaos.py)

One private Redis (AOF on), profile ``chaos``; the gate and the executor run as separate OS
processes (``tests/executor/runner.py``), each replacement under a *new* consumer name (a new
pod), so recovery goes through dead-consumer detection, not a same-name restart. A feeder
publishes intents that alternate per symbol between an opening BUY and a reduce-only SELL
close — order matters — and slips poison entries (bad bytes, NaN, ``-0``, ``yes``, missing
fields, 64 KB values) into every stream the two workers consume. A neighbour profile
(``intruder``) writes intents and poison into its own keys all along: it must not change a
single count of ``chaos``. This run connects as one Redis user, so nothing here stops the
neighbour from writing into ``chaos``'s streams; that refusal is the per-profile ACL users' job
(the operator's and ``qt run``'s), tested in tests/core/test_acl.py: a profile's user is refused
on another profile's keys, streams and scripts.

Printed counts (one line, ``CHAOS key=value``): entries in, decided, executed, duplicates,
losses, out-of-order (and ``out_of_order_in``: the feed's own order, which must be perfect — each
chunk is one MULTI/EXEC), dead-lettered, worker deaths, Redis restarts, recovery seconds after
each kill (first new output of the replacement). Exit 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import (
    DeadLetter,
    ExecutionResult,
    GateDecision,
    Message,
    MessageError,
    TradeIntent,
)
from quantum_trader.core.profile import spec_to_json

from tests.executor.fixtures import make_intent, profile, seed_snapshots_sync

M = TypeVar("M", bound=Message)
ROOT = Path(__file__).resolve().parents[2]
PROFILE = "chaos"
KEYS = Keys(PROFILE)
NEIGHBOUR = Keys("intruder")
SYMBOLS = tuple(f"T{n:03d}USDT" for n in range(40))
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)

POISON: tuple[dict[bytes, bytes], ...] = (
    {b"symbol": b"T000USDT", b"intent_id": b"\xff\xfe", b"ts": b"1"},
    {b"symbol": b"\xc3(", b"v": b"1"},
    {b"ts": b"-0.0"},
    {b"ts": b"NaN"},
    {b"rank": "١".encode()},
    {b"reduce_only": b"yes"},
    {b"position_size_usd": b"inf"},
    {b"leverage": b" 2 "},
    {b"confidence": b"x" * 65_536},
    {b"side": b"\r\nFORGED worker=gate\x1b[2J\x00"},
)


@dataclass
class Config:
    intents: int = 10_000
    kills: int = 10
    redis_restarts: int = 3
    chunk: int = 100
    chunk_every_s: float = 0.5  # the full run feeds for ~50 s: every kill and restart lands under load
    poison_every: int = 97  # one poison entry per this many intents, in each consumed stream
    drain_timeout_s: float = 120.0


@dataclass
class Counts:
    entries_in: int = 0
    acked_in: int = 0
    decided: int = 0
    executed: int = 0
    duplicates: int = 0
    losses: int = 0
    out_of_order: int = 0
    out_of_order_decisions: int = 0
    out_of_order_results: int = 0
    out_of_order_in: int = 0  # the feed itself: intents in the stream before an earlier one (must be 0)
    dead_lettered: int = 0  # distinct entries dead-lettered
    deadletter_repeats: int = 0
    poison_in: int = 0
    deadletter_by_code: dict[str, int] = field(default_factory=dict)
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    worker_deaths: int = 0
    unexpected_deaths: int = 0
    redis_restarts: int = 0
    recovery_s: list[float] = field(default_factory=list)  # kill → dead consumer's entries claimed, it removed
    startup_s: list[float] = field(default_factory=list)  # kill → the replacement's consume loop is up
    neighbour_entries: int = 0
    elapsed_s: float = 0.0
    inversions: list[str] = field(default_factory=list)  # each out-of-order output: which, where (diagnosis)

    def failures(self, *, recovery_limit_s: float = 5.0) -> list[str]:
        bad = []
        if self.duplicates:
            bad.append(f"{self.duplicates} duplicates")
        if self.losses:
            bad.append(f"{self.losses} losses")
        if self.out_of_order:
            bad.append(f"{self.out_of_order} out of order")
        if self.out_of_order_in:
            bad.append(f"the feed itself put {self.out_of_order_in} intents out of order (the counts measure the feeder)")
        if self.dead_lettered != self.poison_in:
            bad.append(f"{self.dead_lettered} dead letters for {self.poison_in} poison entries")
        if self.unexpected_deaths:
            bad.append(f"{self.unexpected_deaths} workers died by themselves")
        claim = self.claim_s()
        if claim and max(claim) > recovery_limit_s:
            bad.append(f"claim after the replacement started took {max(claim):.2f}s (> {recovery_limit_s}s)")
        return bad

    def claim_s(self) -> list[float]:
        """Replacement up → the dead consumer's entries claimed (the bus's part of the recovery)."""
        return [max(0.0, r - s) for r, s in zip(self.recovery_s, self.startup_s, strict=True)]

    def line(self) -> str:
        rec = self.recovery_s
        fields: dict[str, Any] = {
            "entries_in": self.entries_in, "decided": self.decided, "executed": self.executed,
            "duplicates": self.duplicates, "losses": self.losses, "out_of_order": self.out_of_order,
            "out_of_order_decisions": self.out_of_order_decisions, "out_of_order_results": self.out_of_order_results,
            "out_of_order_in": self.out_of_order_in,
            "dead_lettered": self.dead_lettered, "deadletter_repeats": self.deadletter_repeats,
            "poison_in": self.poison_in, "worker_deaths": self.worker_deaths,
            "unexpected_deaths": self.unexpected_deaths, "redis_restarts": self.redis_restarts,
            "recovery_s_median": round(statistics.median(rec), 3) if rec else None,
            "recovery_s_max": round(max(rec), 3) if rec else None,
            "startup_s_median": round(statistics.median(self.startup_s), 3) if rec else None,
            "claim_after_start_s_max": round(max(self.claim_s()), 3) if rec else None,
            "neighbour_entries": self.neighbour_entries, "elapsed_s": round(self.elapsed_s, 1),
        }
        return "CHAOS " + " ".join(f"{k}={v}" for k, v in fields.items())


def _retry(op: Callable[[], Any], *, give_up_s: float = 30.0) -> Any:
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            return op()
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _poison(base: dict[str, str], n: int) -> dict[bytes, bytes]:
    fields = {k.encode(): v.encode() for k, v in base.items()}
    fields.update(POISON[n % len(POISON)])
    return fields


class Feeder(threading.Thread):
    """Publishes the intents (and poison) in chunks; counts what Redis acknowledged."""

    def __init__(self, url: str, cfg: Config) -> None:
        super().__init__(daemon=True)
        self.url, self.cfg = url, cfg
        self.acked: set[str] = set()
        self.poison_in = 0
        self.neighbour = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def _run(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        cfg = self.cfg
        for start in range(0, cfg.intents, cfg.chunk):
            batch = [self._intent(n) for n in range(start, min(cfg.intents, start + cfg.chunk))]

            def send(batch: list[tuple[str, dict[str, str]]] = batch, start: int = start) -> None:
                # MULTI/EXEC, all or nothing: a plain pipeline meeting a Redis that still loads its
                # data after a restart gets its head refused (LOADING) and its tail applied; resent
                # whole, the stream would hold later intents before earlier ones (as the bus's batches)
                pipe = client.pipeline(transaction=True)
                for _, fields in batch:
                    pipe.xadd(KEYS.trade_intent, fields)  # type: ignore[arg-type]
                    pipe.xadd(NEIGHBOUR.trade_intent, fields)  # type: ignore[arg-type]
                poison = [n for n in range(start, start + len(batch)) if n % cfg.poison_every == 0]
                for n in poison:
                    pipe.xadd(KEYS.trade_intent, _poison(batch[0][1], n))  # type: ignore[arg-type]
                    pipe.xadd(KEYS.gate_decision, _poison(batch[0][1], n + 1))  # type: ignore[arg-type]
                    pipe.xadd(NEIGHBOUR.trade_intent, _poison(batch[0][1], n))  # type: ignore[arg-type]
                pipe.execute()
                self.poison_in += 2 * len(poison)
                self.neighbour += len(batch) + len(poison)

            _retry(send)
            self.acked.update(iid for iid, _ in batch)
            time.sleep(cfg.chunk_every_s)
        client.close()

    @staticmethod
    def _intent(n: int) -> tuple[str, dict[str, str]]:
        symbol = SYMBOLS[n % len(SYMBOLS)]
        closing = (n // len(SYMBOLS)) % 2 == 1
        iid = f"c{n:06d}"
        i = make_intent(iid, symbol, side="SELL" if closing else "BUY", reduce_only=closing,
                        size=1000.0 if closing else 10.0, ts=int(time.time() * 1000))
        return iid, i.to_fields()


class Workers:
    """The gate and executor processes; every (re)start gets a new consumer name."""

    def __init__(self, url: str, profile_json: str) -> None:
        self.url, self.profile_json = url, profile_json
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.generation: collections.Counter[str] = collections.Counter()
        self.unexpected = 0

    def start(self, worker: str) -> None:
        self.generation[worker] += 1
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'workers'}"}
        self.procs[worker] = subprocess.Popen(
            [sys.executable, "-m", "tests.executor.runner", worker, "--redis-url", self.url,
             "--profile-json", self.profile_json, "--consumer", f"{worker}-{self.generation[worker]}",
             "--log-level", "INFO" if os.environ.get("CHAOS_LOG_DIR") else "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._log(worker),
        )

    def _log(self, worker: str) -> Any:
        """Worker stderr: to ``$CHAOS_LOG_DIR/<worker>-<n>.log`` when set (INFO level), else dropped."""
        folder = os.environ.get("CHAOS_LOG_DIR")
        if not folder:
            return subprocess.DEVNULL
        Path(folder).mkdir(parents=True, exist_ok=True)
        return open(Path(folder) / f"{worker}-{self.generation[worker]}.log", "ab")

    def kill(self, worker: str) -> None:
        self.procs[worker].send_signal(signal.SIGKILL)
        self.procs[worker].wait(10)

    def check(self) -> None:
        """A worker that died by itself is counted and restarted."""
        for worker, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.unexpected += 1
                self.start(worker)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except TRANSIENT:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _group_idle(client: redis.Redis, stream: str, group: str) -> bool:
    for g in client.xinfo_groups(stream):
        if g["name"] in (group, group.encode()):
            return int(g["pending"]) == 0 and int(g.get("lag") or 0) == 0
    return False


def _chaos_schedule(cfg: Config) -> list[tuple[float, str]]:
    """(fraction of the feed, action) — kills alternate gate/executor; restarts spread between them."""
    events = [((k + 1) / (cfg.kills + 1), "gate" if k % 2 == 0 else "executor") for k in range(cfg.kills)]
    events += [((r + 0.5) / (cfg.redis_restarts + 0.5), "redis") for r in range(cfg.redis_restarts)]
    return sorted(events)


def _consumers_groups(client: redis.Redis, stream: str) -> set[str]:
    if not client.exists(stream):
        return set()
    return {(g["name"].decode() if isinstance(g["name"], bytes) else g["name"]) for g in client.xinfo_groups(stream)}


def _consumers(client: redis.Redis, stream: str, group: str) -> set[str]:
    return {(c["name"].decode() if isinstance(c["name"], bytes) else c["name"])
            for c in client.xinfo_consumers(stream, group)}


def _recovered(client: redis.Redis, stream: str, group: str, dead: str, timeout: float = 30.0) -> None:
    """Until the replacement has claimed the dead consumer's pending entries and removed it."""
    _wait(lambda: dead not in _consumers(client, stream, group), timeout, f"{dead} claimed and removed")


def _seq(intent_id: str) -> int:
    return int(intent_id[1:]) if intent_id.startswith("c") and intent_id[1:].isdigit() else -1


def _inversions(ids_in_stream_order: list[tuple[str, str, str]]) -> list[str]:
    """Per symbol, each output (symbol, intent id, stream id) that came after a later intent's output
    of the same symbol, as ``symbol intent@stream_id after intent@stream_id``."""
    last: dict[str, tuple[int, str, str]] = {}
    bad: list[str] = []
    for symbol, intent_id, entry_id in ids_in_stream_order:
        n = _seq(intent_id)
        before = last.get(symbol)
        if before is not None and n < before[0]:
            bad.append(f"{symbol} {intent_id}@{entry_id} after {before[1]}@{before[2]}")
        if before is None or n > before[0]:
            last[symbol] = (n, intent_id, entry_id)
    return bad


def _parsed(kind: type[M], rows: list[Any]) -> list[M]:
    """The entries of ``rows`` that parse as ``kind`` (the poison ones do not)."""
    return [m for _, m in _parsed_with_ids(kind, rows)]


def _parsed_with_ids(kind: type[M], rows: list[Any]) -> list[tuple[str, M]]:
    """(stream id, message) of the entries of ``rows`` that parse as ``kind``."""
    out: list[tuple[str, M]] = []
    for entry_id, fields in rows:
        try:
            out.append((entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id), kind.from_fields(fields)))
        except MessageError:
            continue
    return out


def _unparseable(kind: type[Message], rows: list[Any]) -> int:
    """Entries of ``rows`` that do not parse (poison, counted in the stream: a retried pipeline may
    have added some twice)."""
    return len(rows) - len(_parsed(kind, rows))


def tally(client: redis.Redis, feeder: Feeder, counts: Counts) -> None:
    """Read every stream back and fill ``counts``."""
    intent_rows = [(i, m) for i, m in _parsed_with_ids(TradeIntent, client.xrange(KEYS.trade_intent))
                   if _seq(m.intent_id) >= 0]
    intents = {m.intent_id for _, m in intent_rows}
    first = {m.intent_id: (m.symbol, m.intent_id, i) for i, m in reversed(intent_rows)}  # first copy of each
    late_in = _inversions(sorted(first.values(), key=lambda row: tuple(int(p) for p in row[2].split("-"))))
    counts.entries_in = len(intents)
    counts.acked_in = len(feeder.acked)
    decision_rows = [(i, d) for i, d in _parsed_with_ids(GateDecision, client.xrange(KEYS.gate_decision))
                     if _seq(d.intent_id) >= 0]
    decisions = [d for _, d in decision_rows]
    per_intent = collections.Counter(d.intent_id for d in decisions)
    counts.decided = len(per_intent)
    executes = {d.intent_id for d in decisions if d.decision == "EXECUTE"}
    counts.blocked_by_reason = dict(collections.Counter(d.reason.split(":")[0] for d in decisions
                                                        if d.decision == "BLOCKED"))
    result_rows = _parsed_with_ids(ExecutionResult, client.xrange(KEYS.execution_result))
    results = [r for _, r in result_rows]
    per_result = collections.Counter(r.intent_id for r in results)
    counts.executed = len(per_result)
    counts.duplicates = sum(c - 1 for c in per_intent.values()) + sum(c - 1 for c in per_result.values())
    counts.losses = (len(feeder.acked - intents) + len(intents - set(per_intent))
                     + len(executes - set(per_result)) + len(set(per_result) - executes))
    late_decisions = _inversions([(d.symbol, d.intent_id, i) for i, d in decision_rows])
    late_results = _inversions([(r.symbol, r.intent_id, i) for i, r in result_rows])
    counts.out_of_order_decisions, counts.out_of_order_results = len(late_decisions), len(late_results)
    counts.out_of_order_in = len(late_in)
    counts.inversions = ([f"intent {x}" for x in late_in] + [f"decision {x}" for x in late_decisions]
                         + [f"result {x}" for x in late_results])
    counts.out_of_order = counts.out_of_order_decisions + counts.out_of_order_results
    counts.poison_in = sum(_unparseable(kind, client.xrange(stream)) for kind, stream in (
        (TradeIntent, KEYS.trade_intent), (GateDecision, KEYS.gate_decision)))
    letters = [DeadLetter.from_fields(f) for _, f in client.xrange(KEYS.deadletter)]
    counts.dead_lettered = len({(letter.source_stream, letter.source_id) for letter in letters})
    counts.deadletter_repeats = len(letters) - counts.dead_lettered  # a MULTI retried across a restart
    counts.deadletter_by_code = dict(collections.Counter(letter.code for letter in letters))
    counts.neighbour_entries = feeder.neighbour


def _dump_streams(client: redis.Redis, path: Path) -> None:
    """Every entry of the consumed streams, one line each (``stream id field=value ...``), for a diagnosis."""
    with path.open("w", encoding="utf-8") as out:
        for stream in (KEYS.trade_intent, KEYS.gate_decision, KEYS.execution_result, KEYS.deadletter):
            for entry_id, fields in client.xrange(stream):
                shown = {k.decode(errors="replace"): v.decode(errors="replace")[:40] for k, v in fields.items()
                         if k in (b"intent_id", b"symbol", b"side", b"decision", b"source_id", b"code", b"status")}
                out.write(f"{stream.rsplit(':', 1)[-1]} {entry_id.decode()} {shown}\n")


def run(cfg: Config, *, log: Callable[[str], None] = print) -> Counts:
    counts = Counts()
    started = time.monotonic()
    server = EmbeddedRedis().start()
    workers: Workers | None = None
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        prof = profile(PROFILE, snapshot={"allowlistSource": "env", "allowlist": list(SYMBOLS)})
        profile_json = json.dumps({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                                   "metadata": {"name": PROFILE}, "spec": spec_to_json(prof.spec)})
        seed_snapshots_sync(client, KEYS, SYMBOLS, ts_ms=int(time.time() * 1000))
        workers = Workers(server.url, profile_json)
        workers.start("gate")
        workers.start("executor")
        _wait(lambda: bool(client.exists(KEYS.open_orders)), 30, "executor start")
        for stream, group in ((KEYS.trade_intent, "gate"), (KEYS.gate_decision, "executor")):
            _wait(lambda st=stream, g=group: g in _consumers_groups(client, st), 30, f"{group} group")
        feeder = Feeder(server.url, cfg)
        feeder.start()
        inputs = {"gate": KEYS.trade_intent, "executor": KEYS.gate_decision}
        for fraction, action in _chaos_schedule(cfg):
            _wait(lambda f=fraction: len(feeder.acked) >= f * cfg.intents or not feeder.is_alive(), 120,
                  f"feed at {fraction:.0%}")
            workers.check()
            if action == "redis":
                server.restart(down_s=0.3)
                counts.redis_restarts += 1
                log(f"CHAOS_EVENT redis_restart acked={len(feeder.acked)} at_ms={int(time.time() * 1000)}")
                continue
            dead = f"{action}-{workers.generation[action]}"
            pending = sum(int(c["pending"]) for c in _retry(lambda a=action: client.xinfo_consumers(inputs[a], a))
                          if c["name"] in (dead, dead.encode()))
            workers.kill(action)
            log(f"CHAOS_EVENT killed worker={action} consumer={dead} at_ms={int(time.time() * 1000)}")
            counts.worker_deaths += 1
            killed_at = time.monotonic()
            workers.start(action)
            alive = KEYS.consumer_alive(action, f"{action}-{workers.generation[action]}")
            _wait(lambda k=alive: bool(client.exists(k)), 60, f"{action} replacement up")
            counts.startup_s.append(time.monotonic() - killed_at)
            _recovered(client, inputs[action], action, dead)
            counts.recovery_s.append(time.monotonic() - killed_at)
            log(f"CHAOS_EVENT kill worker={action} stranded={pending} startup_s={counts.startup_s[-1]:.2f} "
                f"recovery_s={counts.recovery_s[-1]:.2f}")
        feeder.join(cfg.drain_timeout_s)
        if feeder.error is not None:
            raise feeder.error
        _wait(lambda: _group_idle(client, KEYS.trade_intent, "gate")
              and _group_idle(client, KEYS.gate_decision, "executor")
              and client.hlen(KEYS.pending_intents) == 0, cfg.drain_timeout_s, "drain")
        workers.check()
        counts.unexpected_deaths = workers.unexpected
        tally(client, feeder, counts)
        if os.environ.get("CHAOS_LOG_DIR") and counts.inversions:
            _dump_streams(client, Path(os.environ["CHAOS_LOG_DIR"]) / "streams.txt")
        client.close()
    finally:
        if workers is not None:
            workers.stop()
        server.stop()
    counts.elapsed_s = time.monotonic() - started
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--intents", type=int, default=Config.intents)
    p.add_argument("--kills", type=int, default=Config.kills)
    p.add_argument("--redis-restarts", type=int, default=Config.redis_restarts)
    p.add_argument("--chunk", type=int, default=Config.chunk, help="intents per feeder round trip")
    p.add_argument("--chunk-every", type=float, default=Config.chunk_every_s, help="seconds between chunks")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON document too")
    args = p.parse_args(argv)
    counts = run(Config(intents=args.intents, kills=args.kills, redis_restarts=args.redis_restarts,
                        chunk=args.chunk, chunk_every_s=args.chunk_every))
    print(counts.line())
    for inversion in counts.inversions:
        print(f"CHAOS_OUT_OF_ORDER {inversion}")
    print(f"CHAOS_DETAIL deadletter_by_code={json.dumps(counts.deadletter_by_code, sort_keys=True)} "
          f"blocked_by_reason={json.dumps(counts.blocked_by_reason, sort_keys=True)} "
          f"recovery_s={[round(r, 2) for r in counts.recovery_s]}")
    if args.json:
        print(json.dumps(asdict(counts), sort_keys=True))
    bad = counts.failures()
    if bad:
        print("CHAOS_FAILED " + "; ".join(bad), file=sys.stderr)
        return 1
    print("CHAOS_OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
