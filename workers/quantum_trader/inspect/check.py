"""``qt check``: the GO/NO-GO checklist over live Redis state.

:func:`gather` reads Redis into a frozen :class:`CheckInputs` (the only I/O);
:func:`evaluate` is pure and turns it into items, each PASS, WARN or FAIL with
its figure; :func:`run` prints the table (or one JSON document) and returns 0
for GO (no FAIL) and 1 for NO-GO.

Time follows :mod:`quantum_trader.inspect.timebase`: the window is wall time by
default (entries *written* in the last ``--window``, by their Redis ids — what the
live view of ``qt run`` counts, at any ``--speed``), or pipeline time with
``--clock sim`` (entries whose ``ts`` lies in the window). Universe validity is
judged in pipeline time, as the workers judge it; heartbeats are wall time.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import redis

from quantum_trader.core.bus import redis_auth_kwargs
from quantum_trader.core.connection import sync_client
from quantum_trader.core.keys import WORKERS, Keys
from quantum_trader.core.profile import SnapshotSettings, TradingProfile
from quantum_trader.inspect import fmt, streams
from quantum_trader.inspect.timebase import ClockMode, TimeBase, parse_clock
from quantum_trader.router import core as router_core
from quantum_trader.router.core import read_capacity
from quantum_trader.snapshot import core as snap

Status = Literal["PASS", "WARN", "FAIL"]

INFRA_REASONS: Final = ("no_exchange_snapshot", "stale_snapshot")
HEARTBEAT_MAX_AGE_MS: Final = 30_000
FALLBACK_PREFIX: Final = "fallback-"


@dataclass(frozen=True, slots=True)
class Row:
    """One stream entry reduced to what the checklist needs."""

    symbol: str
    ts: int
    kind: str = ""  # decision (EXECUTE|BLOCKED), execution status, signal model
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CheckInputs:
    profile: str
    environment: str
    spec_paused: bool
    paused_flag: bool
    snapshot: SnapshotSettings
    now_ms: int  # pipeline time now (validity is judged on it)
    wall_ms: int  # wall time now
    window_s: float
    decisions: tuple[Row, ...]
    executions: tuple[Row, ...]
    intents: tuple[Row, ...]
    signals: tuple[Row, ...]
    tradable: frozenset[str] | None
    snapshot_symbols: frozenset[str]  # intent symbols (in window) whose snapshot hash exists
    active: snap.UniverseView | None
    last_ok: snap.UniverseView | None
    heartbeats: Mapping[str, int | None]
    open_orders_raw: str | None
    router_drops: tuple[Row, ...] = ()  # stream:router.drop in the window (reason = the fate's reason code)
    clock: ClockMode = "wall"  # the clock windows and ages are measured on
    timebase: TimeBase = field(default_factory=TimeBase)

    def age_ms(self, sim_ts: int) -> int:
        """How long ago a pipeline-time stamp was, on this report's clock."""
        return self.timebase.age_ms(sim_ts=sim_ts, wall_now_ms=self.wall_ms, clock=self.clock)

    def span_ms(self, sim_span_ms: int) -> int:
        return self.timebase.span_ms(sim_span_ms, clock=self.clock)


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    title: str
    status: Status
    figure: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    profile: str
    environment: str
    window_s: float
    now_ms: int
    items: tuple[Item, ...]
    clock: ClockMode = "wall"
    timebase: TimeBase = field(default_factory=TimeBase)

    @property
    def go(self) -> bool:
        return all(i.status != "FAIL" for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "environment": self.environment,
            "window": fmt.human_duration(self.window_s),
            "window_s": self.window_s,
            "clock": self.clock,
            "speed": self.timebase.speed,
            "now_ms": self.now_ms,
            "verdict": "GO" if self.go else "NO-GO",
            "go": self.go,
            "failing": [i.key for i in self.items if i.status == "FAIL"],
            "items": [{**asdict(i), "detail": dict(i.detail)} for i in self.items],
        }


# -- pure evaluation --------------------------------------------------------------------------


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "0%"


def _ago(ms: int) -> str:
    return fmt.human_duration(max(0, ms) / 1000.0)


def check_gate_distribution(inp: CheckInputs) -> Item:
    total = len(inp.decisions)
    counts = Counter(d.reason for d in inp.decisions)
    top = counts.most_common(5)
    detail = {"total": total, "reasons": dict(counts)}
    if total == 0:
        return Item("gate_distribution", "gate reason distribution", "WARN", "no gate decisions in the window", detail)
    figure = f"{total} decisions: " + ", ".join(f"{r} {n} ({_pct(n, total)})" for r, n in top)
    infra = sum(n for r, n in counts.items() if r in INFRA_REASONS)
    status: Status = "FAIL" if infra * 2 > total else ("WARN" if infra else "PASS")
    return Item("gate_distribution", "gate reason distribution", status, figure, detail)


def check_snapshot_misses(inp: CheckInputs) -> Item:
    misses = [d for d in inp.decisions if d.reason in INFRA_REASONS]
    symbols = sorted({d.symbol for d in misses})
    figure = f"{len(misses)} decisions blocked for a missing/stale snapshot" + (
        f" ({', '.join(symbols[:8])})" if symbols else ""
    )
    return Item("snapshot_misses", "symbols missing snapshots", "FAIL" if misses else "PASS", figure,
                {"count": len(misses), "symbols": symbols})


# router fates that mean "no trade worth taking", not a fault: the entry rule and one position per symbol
ENTRY_RULE_DROPS: Final = frozenset({router_core.HOLD, router_core.LOW_CONFIDENCE, router_core.NEGATIVE_EDGE,
                                     router_core.POSITION_OPEN}) | router_core.HELD_VERDICTS


def check_execute_flow(inp: CheckInputs) -> Item:
    execute = sum(1 for d in inp.decisions if d.kind == "EXECUTE")
    filled = sum(1 for e in inp.executions if e.kind == "FILLED")
    rejected = Counter(e.reason for e in inp.executions if e.kind == "REJECTED")
    figure = f"EXECUTE {execute}, filled {filled}, rejected {sum(rejected.values())}"
    if rejected:
        figure += " (" + ", ".join(f"{r} {n}" for r, n in rejected.most_common(3)) + ")"
    detail = {"execute": execute, "filled": filled, "rejected": dict(rejected)}
    if execute == 0:
        drops = Counter(d.reason.split(":", 1)[0] for d in inp.router_drops)
        if inp.signals and not inp.intents and not inp.decisions and drops and set(drops) <= ENTRY_RULE_DROPS:
            # a healthy pipeline whose entry rule found no trade worth its costs: not a fault, but say so
            why = ", ".join(f"{r} {n}" for r, n in drops.most_common(3))
            return Item("execute_flow", "EXECUTE decisions and executions", "WARN",
                        f"{figure}: no intent — the router's entry rule took none of {len(inp.router_drops)} signals "
                        f"({why}); `qt why SYMBOL` shows the numbers, a trained model (`qt train`) trades more",
                        {**detail, "router_drops": dict(drops)})
        return Item("execute_flow", "EXECUTE decisions and executions", "FAIL",
                    figure + ": nothing reached execution", detail)
    if filled == 0:
        return Item("execute_flow", "EXECUTE decisions and executions", "FAIL",
                    figure + ": no fills for EXECUTE decisions", detail)
    return Item("execute_flow", "EXECUTE decisions and executions", "PASS", figure, detail)


def check_tradable_overlap(inp: CheckInputs) -> Item:
    title = "tradable vs intent symbols"
    intent_symbols = sorted({i.symbol for i in inp.intents})
    if not inp.tradable:
        return Item("tradable_overlap", title, "FAIL", "cfg:tradable_symbols is missing or empty",
                    {"intent_symbols": intent_symbols, "tradable": 0})
    if not intent_symbols:
        return Item("tradable_overlap", title, "WARN", f"no intents in the window; {len(inp.tradable)} tradable",
                    {"intent_symbols": [], "tradable": len(inp.tradable)})
    covered = [s for s in intent_symbols if s in inp.tradable and s in inp.snapshot_symbols]
    missing = [s for s in intent_symbols if s not in covered]
    ratio = len(covered) / len(intent_symbols)
    figure = f"{len(covered)}/{len(intent_symbols)} intent symbols tradable with a snapshot (coverage {ratio:.2f})"
    if missing:
        figure += "; missing: " + ", ".join(missing[:8])
    status: Status = "PASS" if ratio >= 1.0 else ("WARN" if ratio >= 0.5 else "FAIL")
    return Item("tradable_overlap", title, status, figure,
                {"coverage": ratio, "covered": covered, "missing": missing, "tradable": len(inp.tradable)})


def check_model(inp: CheckInputs) -> Item:
    title = "model in use"
    production = inp.environment == "production"
    models = Counter(s.kind for s in inp.signals)
    fallback = {m: n for m, n in models.items() if m.startswith(FALLBACK_PREFIX)}
    detail = {"signals": len(inp.signals), "models": dict(models), "fallback": sum(fallback.values())}
    if not inp.signals:
        return Item("model", title, "FAIL" if production else "WARN", "no signals in the window", detail)
    if fallback:
        figure = f"fallback model in use: {', '.join(sorted(fallback))} ({sum(fallback.values())}/{len(inp.signals)} signals)"
        return Item("model", title, "FAIL" if production else "WARN", figure, detail)
    return Item("model", title, "PASS", f"{len(inp.signals)} signals from " + ", ".join(sorted(models)), detail)


def check_universe(inp: CheckInputs) -> Item:
    title = "universe age and validity"
    required = inp.snapshot.allowlist_source == "universe"
    missing_status: Status = "FAIL" if required else "WARN"
    view = inp.active
    if view is None:
        return Item("universe", title, missing_status, "cfg:universe:active is missing or malformed", {})
    detail = {"count": len(view.symbols), "generated_at": view.generated_at, "valid_until": view.valid_until,
              "universe_hash": view.universe_hash}
    age = inp.age_ms(view.generated_at)
    if view.valid_until <= inp.now_ms:
        return Item("universe", title, missing_status,
                    f"expired {_ago(inp.age_ms(view.valid_until))} ago ({len(view.symbols)} symbols, age {_ago(age)})",
                    detail)
    if not snap.active_symbols(view, now_ms=inp.now_ms):
        return Item("universe", title, missing_status,
                    f"invalid (empty or hash mismatch), {len(view.symbols)} symbols", detail)
    return Item("universe", title, "PASS",
                f"{len(view.symbols)} symbols, age {_ago(age)}, valid for {_ago(inp.span_ms(view.valid_until - inp.now_ms))}",
                detail)


def check_allowlist(inp: CheckInputs) -> Item:
    allow = snap.resolve_allowlist(inp.snapshot, active=inp.active, last_ok=inp.last_ok, now_ms=inp.now_ms)
    detail = {"source": allow.source, "count": len(allow.symbols)}
    if allow.symbols:
        return Item("allowlist", "allowlist", "PASS", f"source={allow.source} count={len(allow.symbols)}", detail)
    if allow.source == "env":
        cause = "snapshot.allowlistSource is env and snapshot.allowlist is empty"
    else:
        cause = "no valid universe (cfg:universe:active and last_ok missing or expired) and snapshot.allowlist is empty"
    return Item("allowlist", "allowlist", "FAIL", f"allowlist empty: {cause}: nothing can be snapshotted or traded",
                detail)


def check_heartbeats(inp: CheckInputs) -> Item:
    ages = {w: (inp.wall_ms - ts if ts is not None else None) for w, ts in inp.heartbeats.items()}
    missing = sorted(w for w, a in ages.items() if a is None)
    stale = sorted(w for w, a in ages.items() if a is not None and a > HEARTBEAT_MAX_AGE_MS)
    detail = {"age_ms": ages, "missing": missing, "stale": stale}
    if not missing and not stale:
        worst = max((a for a in ages.values() if a is not None), default=0)
        return Item("heartbeats", "worker heartbeats", "PASS", f"{len(ages)} workers fresh (oldest {_ago(worst)})",
                    detail)
    parts = []
    if missing:
        parts.append("missing: " + ", ".join(missing))
    if stale:
        parts.append("stale: " + ", ".join(stale))
    return Item("heartbeats", "worker heartbeats", "FAIL", "; ".join(parts), detail)


def check_trading_enabled(inp: CheckInputs) -> Item:
    title = "trading enabled"
    capacity = read_capacity(inp.open_orders_raw)
    if inp.spec_paused or inp.paused_flag:
        why = "spec.paused is true" if inp.spec_paused else "control:paused is set"
        return Item("trading", title, "FAIL", f"paused ({why}): the router publishes nothing", {"paused": True})
    if capacity is None:
        state = "missing" if inp.open_orders_raw is None else f"unparseable ({inp.open_orders_raw!r})"
        return Item("trading", title, "FAIL", f"state:open_orders {state}: the router fails closed (CAPACITY_UNKNOWN)",
                    {"open_orders": None})
    return Item("trading", title, "PASS", f"not paused, open_orders={capacity}", {"open_orders": capacity})


def evaluate(inp: CheckInputs) -> Report:
    items = (
        check_gate_distribution(inp),
        check_snapshot_misses(inp),
        check_execute_flow(inp),
        check_tradable_overlap(inp),
        check_model(inp),
        check_universe(inp),
        check_allowlist(inp),
        check_heartbeats(inp),
        check_trading_enabled(inp),
    )
    return Report(profile=inp.profile, environment=inp.environment, window_s=inp.window_s, now_ms=inp.now_ms,
                  items=items, clock=inp.clock, timebase=inp.timebase)


# -- rendering --------------------------------------------------------------------------------


def window_text(report: Report) -> str:
    """``last 5m of wall time`` (+ the same span on the pipeline's clock when it runs at another speed)."""
    text = f"last {fmt.human_duration(report.window_s)} of {'wall' if report.clock == 'wall' else 'pipeline'} time"
    tb = report.timebase
    if tb.speed != 1.0:
        other = tb.window_in_other_clock(report.window_s, clock=report.clock)
        text += f" (= {fmt.human_duration(other)} of {'pipeline' if report.clock == 'wall' else 'wall'} time at {tb.speed:g}x)"
    return text


def render(report: Report) -> str:
    head = (f"qt check — profile {report.profile} ({report.environment}), {window_text(report)}: "
            f"{'GO' if report.go else 'NO-GO'}")
    width = max(len(i.title) for i in report.items)
    lines = [head, "", f"{'STATUS':<6}  {'CHECK':<{width}}  FIGURE"]
    for i in report.items:
        lines.append(f"{i.status:<6}  {i.title:<{width}}  {i.figure}")
    failing = [i for i in report.items if i.status == "FAIL"]
    lines.append("")
    if failing:
        lines.append(f"NO-GO: {len(failing)} failing: " + "; ".join(f"{i.title}: {i.figure}" for i in failing))
    else:
        lines.append("GO")
    return "\n".join(lines)


# -- gathering (the only I/O) -----------------------------------------------------------------


def _row(fields: streams.Fields, *, kind: str = "", reason: str = "") -> Row:
    return Row(symbol=fields.get("symbol", ""), ts=streams.ts_of(fields), kind=fields.get(kind, "") if kind else "",
               reason=fields.get(reason, "") if reason else "")


def redis_wall_ms(client: redis.Redis) -> int:
    """Wall time by the Redis server's clock: the clock that stamps stream entry ids."""
    sec, usec = client.time()
    return int(sec) * 1000 + int(usec) // 1000


def read_timebase(client: redis.Redis, keys: Keys) -> TimeBase:
    raw = client.hgetall(keys.run_clock)
    return parse_clock({streams._s(k): streams._s(v) for k, v in (raw or {}).items()})


def pipeline_now(client: redis.Redis, keys: Keys, tb: TimeBase, *, wall_ms: int) -> int:
    """The pipeline's clock now: from ``run:clock``, else the later of wall time and the newest ``ts``."""
    if tb.recorded:
        return tb.sim_at(wall_ms)
    newest = [streams.newest_ts(client, s) for s in
              (keys.ai_signal, keys.trade_intent, keys.gate_decision, keys.execution_result)]
    return max([wall_ms, *(t for t in newest if t is not None)])


def gather(client: redis.Redis, profile: TradingProfile, *, window_s: float, clock: ClockMode = "wall",
           now_ms: int | None = None, wall_ms: int | None = None) -> CheckInputs:
    keys = profile.keys
    wall_ms = redis_wall_ms(client) if wall_ms is None else wall_ms
    tb = read_timebase(client, keys)
    if now_ms is None:
        now_ms = pipeline_now(client, keys, tb, wall_ms=wall_ms)

    def window(stream: str) -> list[streams.Fields]:
        if clock == "wall":
            return streams.scan_written_since(client, stream, since_wall_ms=wall_ms - int(window_s * 1000))
        return streams.scan_since(client, stream, since_ms=now_ms - int(window_s * 1000))

    decisions = tuple(_row(f, kind="decision", reason="reason") for f in window(keys.gate_decision))
    executions = tuple(_row(f, kind="status", reason="reason") for f in window(keys.execution_result))
    intents = tuple(_row(f) for f in window(keys.trade_intent))
    signals = tuple(_row(f, kind="model") for f in window(keys.ai_signal))
    router_drops = tuple(_row(f, reason="reason") for f in window(keys.router_drop))
    intent_symbols = sorted({i.symbol for i in intents if i.symbol})
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.tradable_symbols)
    pipe.get(keys.universe_active)
    pipe.get(keys.universe_last_ok)
    pipe.exists(keys.control_paused)
    pipe.get(keys.open_orders)
    for s in intent_symbols:
        pipe.exists(keys.position_snapshot(s))
    for w in WORKERS:
        pipe.hget(keys.heartbeat(w), "ts")
    replies = pipe.execute()
    tradable_raw, active_raw, last_ok_raw, paused, open_raw = replies[:5]
    snaps = replies[5:5 + len(intent_symbols)]
    beats = replies[5 + len(intent_symbols):]
    tradable = frozenset(streams._s(t) for t in tradable_raw or ())
    heartbeats: dict[str, int | None] = {}
    for w, ts in zip(WORKERS, beats, strict=True):
        try:
            heartbeats[w] = int(streams._s(ts)) if ts is not None else None
        except ValueError:
            heartbeats[w] = None
    return CheckInputs(
        profile=profile.name,
        environment=profile.spec.environment,
        spec_paused=profile.spec.paused,
        paused_flag=bool(paused),
        snapshot=profile.spec.snapshot,
        now_ms=now_ms,
        wall_ms=wall_ms,
        window_s=window_s,
        decisions=decisions,
        executions=executions,
        intents=intents,
        signals=signals,
        router_drops=router_drops,
        tradable=tradable or None,
        snapshot_symbols=frozenset(s for s, ok in zip(intent_symbols, snaps, strict=True) if ok),
        active=snap.parse_universe(active_raw),
        last_ok=snap.parse_universe(last_ok_raw),
        heartbeats=heartbeats,
        open_orders_raw=streams._s(open_raw) if open_raw is not None else None,
        clock=clock,
        timebase=tb,
    )


def run(profile: TradingProfile, *, as_json: bool, window_s: float, redis_url: str, clock: ClockMode = "wall",
        now_ms: int | None = None) -> int:
    """Print the checklist; 0 GO, 1 NO-GO (also when Redis cannot be read: one line on stderr)."""
    if window_s <= 0:
        print("qt check: --window must be positive", file=sys.stderr)
        return 1
    client = sync_client(redis_url, socket_timeout=10, **redis_auth_kwargs())
    try:
        inputs = gather(client, profile, window_s=window_s, clock=clock, now_ms=now_ms)
    except redis.RedisError as exc:
        print(f"qt check: cannot read Redis at {redis_url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    report = evaluate(inputs)
    if as_json:
        print(json.dumps(report.to_json(), separators=(",", ":"), default=str))
    else:
        fmt.print_styled(render(report))
    return 0 if report.go else 1


__all__ = ["CheckInputs", "Item", "Report", "Row", "evaluate", "gather", "render", "run"]
