"""``qt why SYMBOL``: one symbol through every stage, with a one-line verdict on top.

:func:`gather` reads Redis (newest-first ``XREVRANGE`` scans of the capped
streams, the universe documents, the snapshot hash, the positions hash) into a
frozen :class:`WhyInputs`; :func:`explain` is pure and follows the chain of ids
(``signal_id`` → ``intent_id`` → decision → execution) of the symbol's latest
signal to say where it stopped:

    GALAUSDT: not traded — gate blocked: kill_score_warning_risk_increase

Ages are wall time by default and pipeline time with ``--clock sim``
(:mod:`quantum_trader.inspect.timebase`); prices are shown on the symbol's tick.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from quantum_trader.core.bus import redis_auth_kwargs
from quantum_trader.core.connection import sync_client
from quantum_trader.core.messages import (
    ExecutionResult,
    GateDecision,
    Message,
    MessageError,
    PositionEvent,
    RouterFate,
    Signal,
    TradeIntent,
)
from quantum_trader.core.profile import TradingProfile
from quantum_trader.inspect import fmt, streams
from quantum_trader.inspect.timebase import ClockMode, TimeBase, parse_clock
from quantum_trader.snapshot import core as snap

SYMBOL_RE: Final = re.compile(r"^[A-Z0-9]{2,40}$")
HISTORY: Final = 20  # newest entries per stream kept for matching ids


@dataclass(frozen=True, slots=True)
class WhyInputs:
    symbol: str
    now_ms: int
    funnel: Mapping[str, Any] | None  # this symbol's entry in cfg:universe:funnel
    funnel_present: bool
    active: snap.UniverseView | None
    allowlist: snap.Allowlist
    signals: tuple[Signal, ...]  # newest first
    intents: tuple[TradeIntent, ...]
    fates: tuple[RouterFate, ...]
    decisions: tuple[GateDecision, ...]
    executions: tuple[ExecutionResult, ...]
    position_events: tuple[PositionEvent, ...]
    snapshot: Mapping[str, str] | None
    snapshot_ttl_ms: int | None
    tradable: bool | None  # None: cfg:tradable_symbols missing
    position: Mapping[str, Any] | None
    wall_ms: int | None = None  # wall time now; None: the wall instant of now_ms
    clock: ClockMode = "wall"  # the clock ages are measured on
    timebase: TimeBase = field(default_factory=TimeBase)
    tick: float | None = None  # the symbol's price tick, when known
    snapshot_skipped: str | None = None  # "reason|detail" when the snapshot skipped this symbol last cycle

    def age_ms(self, ts: int) -> int:
        """How long ago a pipeline-time stamp was, on this report's clock (never negative)."""
        wall = self.timebase.wall_at(self.now_ms) if self.wall_ms is None else self.wall_ms
        return self.timebase.age_ms(sim_ts=ts, wall_now_ms=wall, clock=self.clock)

    def price(self, value: object) -> str:
        try:
            return fmt.price(float(str(value)), self.tick)
        except ValueError:
            return str(value)


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WhyReport:
    symbol: str
    verdict: str
    traded: bool
    stages: tuple[Stage, ...]
    clock: ClockMode = "wall"

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "verdict": self.verdict,
            "traded": self.traded,
            "clock": self.clock,
            "stages": {s.name: {"text": s.text, **dict(s.data)} for s in self.stages},
        }


def _ago(inp: WhyInputs, ts: int) -> str:
    return fmt.ago(inp.age_ms(ts))


def _first(items: tuple[Any, ...], pred: Any) -> Any:
    return next((x for x in items if pred(x)), None)


# -- stages (pure) ----------------------------------------------------------------------------


def universe_stage(inp: WhyInputs) -> Stage:
    sym = inp.symbol
    rank = inp.active.ranks.get(sym) if inp.active is not None else None
    in_active = inp.active is not None and sym in snap.active_symbols(inp.active, now_ms=inp.now_ms)
    f = inp.funnel or {}
    data: dict[str, Any] = {"in_allowlist": sym in inp.allowlist.as_set, "allowlist_source": inp.allowlist.source,
                            "funnel": dict(f)}
    if in_active and rank is not None:
        n = len(inp.active.symbols) if inp.active is not None else 0
        data["rank"] = rank
        text = f"rank {rank} of {n} in the active universe"
    elif f.get("fate") == "dropped" or (f.get("reason") and f.get("fate") != "selected"):
        detail = f" ({f['detail']})" if f.get("detail") else ""
        text = f"dropped at {f.get('stage', '?')}: {f.get('reason', '?')}{detail}"
    elif f.get("fate") == "selected" or f.get("rank") is not None:
        text = f"selected at rank {f.get('rank')} in the last cycle, but not in the valid active universe"
    elif not inp.funnel_present:
        text = "not in the active universe (no universe funnel recorded)"
    else:
        text = "not in the active universe and not seen by the last universe cycle"
    if inp.allowlist.source in ("env", "profile"):
        text += f"; allowlist ({inp.allowlist.source}): {'yes' if sym in inp.allowlist.as_set else 'no'}"
    return Stage("universe", text, data)


def signal_stage(inp: WhyInputs) -> Stage:
    s = inp.signals[0] if inp.signals else None
    if s is None:
        return Stage("signal", "no signal in the stream", {})
    text = (f"{s.side} conf {s.confidence:.3f} model {s.model} regime {s.regime} "
            f"rl_gate {'pass' if s.rl_gate_pass else 'fail'}, price {inp.price(s.price)}, {_ago(inp, s.ts)} "
            f"(signal_id {s.signal_id})")
    return Stage("signal", text, {"signal_id": s.signal_id, "side": s.side, "confidence": s.confidence,
                                  "model": s.model, "ts": s.ts, "age_ms": inp.age_ms(s.ts)})


def router_stage(inp: WhyInputs) -> Stage:
    s = inp.signals[0] if inp.signals else None
    intent = _first(inp.intents, lambda i: s is not None and i.signal_id == s.signal_id)
    fate = _first(inp.fates, lambda f: s is not None and f.signal_id == s.signal_id)
    if intent is None and fate is None:
        intent = inp.intents[0] if inp.intents else None
        fate = inp.fates[0] if inp.fates else None
        if intent is not None and fate is not None:
            if fate.ts > intent.ts:
                intent = None
            else:
                fate = None
    if intent is not None:
        return Stage("router", f"intent {intent.intent_id} rank {intent.rank} {intent.side} "
                               f"size {fmt.money(intent.position_size_usd)} (boost {intent.size_boost:g}), "
                               f"entry {inp.price(intent.entry_price)}, {_ago(inp, intent.ts)}",
                     {"intent_id": intent.intent_id, "signal_id": intent.signal_id, "rank": intent.rank})
    if fate is not None:
        return Stage("router", f"dropped: {fate.reason} ({_ago(inp, fate.ts)}, signal_id {fate.signal_id})",
                     {"reason": fate.reason, "signal_id": fate.signal_id})
    return Stage("router", "no intent and no drop record", {})


def snapshot_stage(inp: WhyInputs) -> Stage:
    tradable = {None: "cfg:tradable_symbols missing", True: "tradable", False: "not in cfg:tradable_symbols"}[
        inp.tradable
    ]
    if not inp.snapshot:
        if inp.snapshot_skipped:
            reason, _, detail = inp.snapshot_skipped.partition("|")
            return Stage("snapshot", f"no snapshot: skipped, {reason}{f' ({detail})' if detail else ''}; {tradable}",
                         {"tradable": inp.tradable, "skipped": reason, "detail": detail})
        return Stage("snapshot", f"no snapshot; {tradable}", {"tradable": inp.tradable})
    try:
        ts = int(inp.snapshot.get("ts", "0"))
    except ValueError:
        ts = 0
    ttl = ""
    if inp.snapshot_ttl_ms and inp.snapshot_ttl_ms > 0:  # a Redis TTL: wall time
        ttl = f", expires in {fmt.human_duration(inp.snapshot_ttl_ms / 1000.0)}"
    age = inp.age_ms(ts)
    text = (f"mark {inp.price(inp.snapshot.get('mark_price', '?'))} position {inp.snapshot.get('position_amt', '0')}, "
            f"age {fmt.human_duration(age / 1000.0)}{ttl}; {tradable}")
    return Stage("snapshot", text, {**dict(inp.snapshot), "age_ms": age, "tradable": inp.tradable})


def gate_stage(inp: WhyInputs, intent_id: str | None) -> Stage:
    d = _first(inp.decisions, lambda x: x.intent_id == intent_id) if intent_id else None
    d = d or (inp.decisions[0] if inp.decisions else None)
    if d is None:
        return Stage("gate", "no decision", {})
    text = f"{d.decision} {d.reason} (kill score {d.kill_score:.2f}) for {d.intent_id}, {_ago(inp, d.ts)}"
    return Stage("gate", text, {"decision": d.decision, "reason": d.reason, "intent_id": d.intent_id})


def execution_stage(inp: WhyInputs, intent_id: str | None) -> Stage:
    e = _first(inp.executions, lambda x: x.intent_id == intent_id) if intent_id else None
    e = e or (inp.executions[0] if inp.executions else None)
    if e is None:
        return Stage("execution", "no execution", {})
    reason = f" {e.reason}" if e.status == "REJECTED" else ""
    text = (f"{e.status}{reason} {e.side} qty {fmt.quantity(e.qty)} @ {inp.price(e.price)} "
            f"({e.mode}, order {e.order_id or '-'}) for {e.intent_id}, {_ago(inp, e.ts)}")
    return Stage("execution", text, {"status": e.status, "reason": e.reason, "intent_id": e.intent_id,
                                     "order_id": e.order_id})


def position_stage(inp: WhyInputs) -> Stage:
    p = inp.position
    last = inp.position_events[0] if inp.position_events else None
    closed = ""
    if last is not None and last.event == "CLOSED":
        closed = f"last closed {last.close_reason} pnl {fmt.money(last.pnl_usd, signed=True)} {_ago(inp, last.ts)}"
    if p:
        text = f"open {p.get('side')} qty {p.get('qty')} @ {inp.price(p.get('entry_price'))}"
        return Stage("position", text + (f"; {closed}" if closed else ""), {"open": True, **dict(p)})
    return Stage("position", closed or "none", {"open": False})


def verdict(inp: WhyInputs, stages: Mapping[str, Stage]) -> tuple[str, bool]:
    sym = inp.symbol
    if inp.position:
        return f"{sym}: traded — position open {inp.position.get('side')} qty {inp.position.get('qty')}", True
    router = stages["router"].data
    uni = stages["universe"].text
    if not inp.signals:
        if "dropped at" in uni:
            return f"{sym}: not traded — universe {uni}", False
        if "rank" not in stages["universe"].data:
            return f"{sym}: not traded — {uni}", False
        return f"{sym}: not traded — no signal from the ai yet", False
    if "reason" in router and "intent_id" not in router:
        return f"{sym}: not traded — router dropped the signal: {router['reason']}", False
    intent_id = router.get("intent_id")
    if intent_id is None:
        return f"{sym}: not traded — latest signal not routed yet (router buffering, standby or down)", False
    gate = stages["gate"].data
    if gate.get("intent_id") != intent_id:
        return f"{sym}: not traded yet — intent {intent_id} has no gate decision", False
    if gate["decision"] == "BLOCKED":
        return f"{sym}: not traded — gate blocked: {gate['reason']}", False
    ex = stages["execution"].data
    if ex.get("intent_id") != intent_id:
        return f"{sym}: not traded yet — EXECUTE for {intent_id} has no execution result", False
    if ex["status"] == "REJECTED":
        return f"{sym}: not traded — execution rejected: {ex['reason']}", False
    closed = stages["position"].text
    tail = f"; {closed}" if closed != "none" else ""
    return f"{sym}: traded — filled (order {ex.get('order_id') or '-'}){tail}", True


def explain(inp: WhyInputs) -> WhyReport:
    uni = universe_stage(inp)
    sig = signal_stage(inp)
    rt = router_stage(inp)
    intent_id = rt.data.get("intent_id")
    stages = (uni, sig, rt, snapshot_stage(inp), gate_stage(inp, intent_id), execution_stage(inp, intent_id),
              position_stage(inp))
    text, traded = verdict(inp, {s.name: s for s in stages})
    return WhyReport(symbol=inp.symbol, verdict=text, traded=traded, stages=stages, clock=inp.clock)


def render(report: WhyReport) -> str:
    lines = [report.verdict, ""]
    for s in report.stages:
        lines.append(f"  {s.name:<10} {s.text}")
    return "\n".join(lines)


# -- gathering --------------------------------------------------------------------------------


def _parse(kind: type[Any], rows: list[streams.Fields]) -> tuple[Any, ...]:
    out: list[Message] = []
    for r in rows:
        try:
            out.append(kind.from_fields(r))
        except MessageError:
            continue
    return tuple(out)


def gather(client: redis.Redis, profile: TradingProfile, symbol: str, *, clock: ClockMode = "wall",
           now_ms: int | None = None, tick: float | None = None) -> WhyInputs:
    keys = profile.keys

    def latest(stream: str) -> list[streams.Fields]:
        return streams.find_latest(client, stream, lambda f: f.get("symbol") == symbol, want=HISTORY)

    signals = _parse(Signal, latest(keys.ai_signal))
    intents = _parse(TradeIntent, latest(keys.trade_intent))
    fates = _parse(RouterFate, latest(keys.router_drop))
    decisions = _parse(GateDecision, latest(keys.gate_decision))
    executions = _parse(ExecutionResult, latest(keys.execution_result))
    events = _parse(PositionEvent, latest(keys.position_event))
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.universe_active)
    pipe.get(keys.universe_last_ok)
    pipe.get(keys.universe_funnel)
    pipe.hgetall(keys.position_snapshot(symbol))
    pipe.pttl(keys.position_snapshot(symbol))
    pipe.exists(keys.tradable_symbols)
    pipe.sismember(keys.tradable_symbols, symbol)
    pipe.hget(keys.positions, symbol)
    pipe.hgetall(keys.run_clock)
    pipe.hget(keys.snapshot_skipped, symbol)
    (active_raw, last_ok_raw, funnel_raw, snap_raw, snap_ttl, has_tradable, is_tradable, pos_raw, clock_raw,
     skipped_raw) = pipe.execute()
    server_time = client.time()  # not in the pipeline: a Redis Cluster pipeline refuses keyless commands
    tb = parse_clock({streams._s(k): streams._s(v) for k, v in (clock_raw or {}).items()})
    wall = int(server_time[0]) * 1000 + int(server_time[1]) // 1000
    if now_ms is None and tb.recorded:
        now_ms = tb.sim_at(wall)
    elif now_ms is None:
        seen = [m.ts for group in (signals, intents, fates, decisions, executions, events) for m in group[:1]]
        now_ms = max([wall, *seen])
        tb = TimeBase(anchor_wall_ms=wall, anchor_sim_ms=now_ms)  # unrecorded clock: ages count from the newest
    funnel_doc: Any = None
    if funnel_raw is not None:
        try:
            funnel_doc = json.loads(funnel_raw)
        except ValueError:
            funnel_doc = None
    entry = None
    if isinstance(funnel_doc, dict) and isinstance(funnel_doc.get("symbols"), dict):
        e = funnel_doc["symbols"].get(symbol)
        entry = e if isinstance(e, dict) else None
    position: dict[str, Any] | None = None
    if pos_raw is not None:
        try:
            loaded = json.loads(pos_raw)
            position = loaded if isinstance(loaded, dict) else None
        except ValueError:
            position = {"raw": streams._s(pos_raw)}
    active = snap.parse_universe(active_raw)
    last_ok = snap.parse_universe(last_ok_raw)
    return WhyInputs(
        symbol=symbol,
        now_ms=now_ms,
        funnel=entry,
        funnel_present=isinstance(funnel_doc, dict),
        active=active,
        allowlist=snap.resolve_allowlist(profile.spec.snapshot, active=active, last_ok=last_ok, now_ms=now_ms),
        signals=signals,
        intents=intents,
        fates=fates,
        decisions=decisions,
        executions=executions,
        position_events=events,
        snapshot={streams._s(k): streams._s(v) for k, v in (snap_raw or {}).items()} or None,
        snapshot_ttl_ms=int(snap_ttl) if snap_ttl is not None and int(snap_ttl) >= 0 else None,
        tradable=bool(is_tradable) if has_tradable else None,
        position=position,
        wall_ms=wall,
        clock=clock,
        timebase=tb,
        tick=tick,
        snapshot_skipped=streams._s(skipped_raw) if skipped_raw is not None else None,
    )


def run(profile: TradingProfile, symbol: str, *, as_json: bool, redis_url: str, clock: ClockMode = "wall",
        now_ms: int | None = None, tick: float | None = None) -> int:
    """Print the symbol's path through the pipeline; 0, or 1 with one stderr line on bad input/Redis error."""
    sym = symbol.strip().upper()
    if not SYMBOL_RE.match(sym):
        print(f"qt why: {symbol!r} is not a symbol (expected e.g. BTCUSDT)", file=sys.stderr)
        return 1
    client = sync_client(redis_url, socket_timeout=10, **redis_auth_kwargs())
    try:
        inputs = gather(client, profile, sym, clock=clock, now_ms=now_ms, tick=tick)
    except redis.RedisError as exc:
        print(f"qt why: cannot read Redis at {redis_url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    report = explain(inputs)
    if as_json:
        print(json.dumps(report.to_json(), separators=(",", ":"), default=str))
    else:
        fmt.print_styled(render(report))
    return 0
