"""One universe cycle against an exchange, and its publication to Redis (the thin async shell).

:func:`run_cycle` does I/O only to fetch (markets, tickers, klines, backfills)
and calls the pure cores (:mod:`.discovery`, :mod:`.health`, :mod:`.selection`).
It never raises for exchange trouble: an exchange error is a fail-closed
:class:`CycleResult` carrying the reason and the error text.
:func:`publish` writes active / last_ok / funnel and the policy.audit entry in
one MULTI/EXEC transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from quantum_trader.core import metrics
from quantum_trader.core.keys import STREAM_POLICY_AUDIT, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import PolicyAudit
from quantum_trader.core.profile import HealthSettings, UniverseSettings
from quantum_trader.market.base import Exchange, Klines
from quantum_trader.universe import publication as pub
from quantum_trader.universe.discovery import discover
from quantum_trader.universe.health import HealthVerdict, audit, health_verdict, repair_plan
from quantum_trader.universe.model import (
    STAGE_DISCOVERED,
    STAGE_ELIGIBLE,
    STAGE_FEATURED,
    STAGE_HEALTHY,
    STAGE_LISTED,
    STAGE_MERGED,
    STAGE_SELECTED,
    STAGE_VETTED,
    Discovery,
    Drop,
    HealthIssue,
    Ranked,
    Selection,
)
from quantum_trader.universe.selection import compute_selection

FETCH_CONCURRENCY: Final = 16
AUDIT_MAXLEN: Final = 10_000

# Fail-closed reason codes.
FAIL_DISCOVERY: Final = "discovery_failed"
FAIL_NO_LISTINGS: Final = "no_listings"
FAIL_DATA: Final = "data_fetch_failed"

Outcome = Literal["ok", "fail_closed"]


@dataclass(frozen=True, slots=True)
class CycleResult:
    """Everything one cycle decided; ``outcome == "fail_closed"`` means publish nothing."""

    outcome: Outcome
    now_ms: int
    timeframes: tuple[str, ...]
    reason: str = ""
    detail: str = ""
    stages: tuple[tuple[str, int], ...] = ()
    drops: Mapping[str, Drop] = field(default_factory=dict)
    merges: Mapping[str, str] = field(default_factory=dict)
    selected: tuple[Ranked, ...] = ()
    repaired: tuple[str, ...] = ()
    still_unhealthy: tuple[str, ...] = ()
    unhealthy_kept: tuple[str, ...] = ()
    repair_rounds: int = 0
    compute_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def symbols(self) -> list[str]:
        return [r.symbol for r in self.selected]

    def drops_by_reason(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for sym, d in sorted(self.drops.items()):
            out.setdefault(d.reason, []).append(sym)
        return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def checks(self) -> dict[str, bool]:
        """The checks that must all pass before a universe is also copied to ``last_ok``."""
        return {
            "discovery": self.ok,
            "data": self.ok,
            "non_empty": bool(self.selected),
            "all_selected_healthy": not (set(self.symbols) & set(self.unhealthy_kept)),
        }

    def stage_table(self) -> list[dict[str, Any]]:
        """Per stage: symbols in, symbols out, and the drop count per reason at that stage."""
        by_stage: dict[str, dict[str, int]] = {}
        for d in self.drops.values():
            reasons = by_stage.setdefault(d.stage, {})
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        rows: list[dict[str, Any]] = []
        prev: int | None = None
        for stage, out in self.stages:
            dropped = dict(sorted(by_stage.get(stage, {}).items(), key=lambda kv: (-kv[1], kv[0])))
            rows.append({"stage": stage, "in": prev if prev is not None else out, "out": out, "dropped": dropped})
            prev = out
        return rows


def _fail(now_ms: int, timeframes: tuple[str, ...], reason: str, exc: BaseException | str) -> CycleResult:
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return CycleResult(outcome="fail_closed", now_ms=now_ms, timeframes=timeframes, reason=reason, detail=detail)


class _FetchError(Exception):
    def __init__(self, symbol: str, timeframe: str, cause: BaseException) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.cause = cause
        super().__init__(f"{symbol} {timeframe}: {type(cause).__name__}: {cause}")


async def _fetch(
    exchange: Exchange, pairs: Sequence[tuple[str, str]], *, bars: int, concurrency: int
) -> dict[tuple[str, str], Klines]:
    sem = asyncio.Semaphore(concurrency)

    async def one(symbol: str, tf: str) -> tuple[tuple[str, str], Klines]:
        async with sem:
            try:
                return (symbol, tf), await exchange.klines(symbol, tf, limit=bars)
            except Exception as exc:  # any exchange trouble fails the cycle closed
                raise _FetchError(symbol, tf, exc) from exc

    results = await asyncio.gather(*(one(s, tf) for s, tf in pairs))
    return dict(results)


Data = dict[str, dict[str, Klines]]  # symbol → timeframe → klines


async def _klines(
    exchange: Exchange, pairs: Sequence[tuple[str, str]], data: Data, *, bars: int, concurrency: int
) -> None:
    """Fetch (symbol, timeframe) klines into ``data`` (raises :class:`_FetchError`)."""
    for (sym, tf), k in (await _fetch(exchange, pairs, bars=bars, concurrency=concurrency)).items():
        data.setdefault(sym, {})[tf] = k


async def _repair(
    exchange: Exchange,
    data: Data,
    issues: dict[str, list[HealthIssue]],
    *,
    tfs: tuple[str, ...],
    universe: UniverseSettings,
    health: HealthSettings,
    now_ms: int,
    log: EventLog | None,
    concurrency: int,
) -> tuple[dict[str, list[HealthIssue]], int]:
    """Bounded repair rounds (backfill → refetch → re-audit) of the audit's issues; the last issues and rounds done."""
    rounds = 0
    while plan := repair_plan([i for lst in issues.values() for i in lst], rounds_done=rounds, health=health):
        rounds += 1
        repaired_pairs: list[tuple[str, str]] = []
        for issue in plan:
            try:
                await exchange.backfill(issue.symbol, issue.timeframe)
                repaired_pairs.append((issue.symbol, issue.timeframe))
            except Exception as exc:  # a failed backfill leaves the symbol unhealthy, it does not fail the cycle
                if log is not None:
                    log.warn("UNIVERSE_BACKFILL_FAILED", symbol=issue.symbol, timeframe=issue.timeframe,
                             error=f"{type(exc).__name__}: {exc}")
        await _klines(exchange, repaired_pairs, data, bars=universe.bars, concurrency=concurrency)
        issues = audit({s: data[s] for s in issues}, timeframes=tfs, now_ms=now_ms, health=health)
        if log is not None:
            log.event("UNIVERSE_REPAIR_ROUND", round=rounds, backfilled=len(repaired_pairs),
                      still_unhealthy=len(issues))
    return issues, rounds


def assemble(
    found: Discovery, verdict: HealthVerdict, sel: Selection, *, now_ms: int, timeframes: tuple[str, ...],
    eligible: int, rounds: int, compute_ms: float,
) -> CycleResult:
    """The cycle's result from its stages' outputs (pure): the funnel counts and every drop."""
    drops: dict[str, Drop] = {**found.drops, **verdict.drops, **sel.drops}
    stages = (
        (STAGE_LISTED, found.listed),
        (STAGE_DISCOVERED, found.discovered),
        (STAGE_MERGED, found.merged),
        (STAGE_ELIGIBLE, eligible),
        (STAGE_HEALTHY, len(verdict.healthy)),
        (STAGE_FEATURED, sel.featured),
        (STAGE_VETTED, sel.vetted),
        (STAGE_SELECTED, len(sel.selected)),
    )
    return CycleResult(
        outcome="ok", now_ms=now_ms, timeframes=timeframes, stages=stages, drops=drops,
        merges=dict(found.merges), selected=sel.selected, repaired=verdict.repaired,
        still_unhealthy=verdict.still_unhealthy, unhealthy_kept=verdict.unhealthy_kept,
        repair_rounds=rounds, compute_ms=compute_ms,
    )


async def run_cycle(
    exchange: Exchange,
    *,
    universe: UniverseSettings,
    health: HealthSettings,
    now_ms: int,
    log: EventLog | None = None,
    concurrency: int = FETCH_CONCURRENCY,
) -> CycleResult:
    """Discovery → merge → eligibility → klines + health audit/repair → features → vetoes → ranking.

    Fetches (markets, tickers, klines, backfills) are the only I/O; every choice is a pure core's
    (:func:`discover`, :func:`audit`/:func:`repair_plan`, :func:`health_verdict`,
    :func:`compute_selection`, :func:`assemble`). Exchange trouble → a fail-closed result, never a raise.
    """
    tfs = tuple(universe.timeframes)
    try:
        markets = await exchange.markets()
        tickers = await exchange.tickers()
    except Exception as exc:
        return _fail(now_ms, tfs, FAIL_DISCOVERY, exc)
    found = discover(markets, tickers, settings=universe)
    if found.discovered == 0:
        return _fail(now_ms, tfs, FAIL_NO_LISTINGS, "the exchange lists no trading perpetuals")
    candidates = list(found.candidates)
    data: Data = {c.symbol: {} for c in candidates}
    try:
        await _klines(exchange, [(c.symbol, tf) for c in candidates for tf in tfs], data, bars=universe.bars,
                      concurrency=concurrency)
        first = audit(data, timeframes=tfs, now_ms=now_ms, health=health)
        issues, rounds = await _repair(exchange, data, first, tfs=tfs, universe=universe, health=health, now_ms=now_ms,
                                       log=log, concurrency=concurrency)
    except _FetchError as exc:
        return _fail(now_ms, tfs, FAIL_DATA, str(exc))
    verdict = health_verdict(candidates, issues, initially=first, rounds=rounds, health=health)
    started = time.perf_counter()
    # numpy releases the GIL: other workers sharing this event loop (qt run) are not stalled
    sel = await asyncio.to_thread(compute_selection, candidates=list(verdict.healthy), data=data, settings=universe)
    return assemble(found, verdict, sel, now_ms=now_ms, timeframes=tfs, eligible=len(candidates), rounds=rounds,
                    compute_ms=(time.perf_counter() - started) * 1000.0)


# -- documents ----------------------------------------------------------------------------------


def symbol_rows(result: CycleResult) -> list[dict[str, Any]]:
    return [
        {
            "symbol": r.symbol,
            "rank": r.rank,
            "score": r.score,
            "volume_24h": r.volume_24h,
            "leverage": r.leverage,
            **{k: round(v, 6) for k, v in r.features.items()},
        }
        for r in result.selected
    ]


def funnel_summary(result: CycleResult) -> dict[str, Any]:
    """The compact funnel of the policy.audit entry (counts only)."""
    return {
        "stages": [[stage, n] for stage, n in result.stages],
        "drops": {reason: len(syms) for reason, syms in result.drops_by_reason().items()},
        "merged": len(result.merges),
        "repaired": len(result.repaired),
        "still_unhealthy": len(result.still_unhealthy),
        "repair_rounds": result.repair_rounds,
    }


def funnel_document(result: CycleResult, *, universe_hash: str) -> dict[str, Any]:
    """``cfg:universe:funnel``: every symbol's fate (rank or stage + reason), for ``qt why``."""
    fates: dict[str, dict[str, Any]] = {}
    for r in result.selected:
        fates[r.symbol] = {"fate": "selected", "rank": r.rank, "score": r.score}
    for sym, d in result.drops.items():
        fates[sym] = {"fate": "dropped", "stage": d.stage, "reason": d.reason, "detail": d.detail}
    return {
        "generated_at": result.now_ms,
        "universe_hash": universe_hash,
        "stages": result.stage_table(),
        "drops_by_reason": result.drops_by_reason(),
        "merges": dict(result.merges),
        "repair": {
            "rounds": result.repair_rounds,
            "repaired": list(result.repaired),
            "still_unhealthy": list(result.still_unhealthy),
            "unhealthy_kept": list(result.unhealthy_kept),
        },
        "symbols": dict(sorted(fates.items())),
    }


@dataclass(frozen=True, slots=True)
class Published:
    document: dict[str, Any]
    last_ok: bool
    hash_changed: bool
    audit_id: str


async def publish(
    redis: Any,
    keys: Keys,
    result: CycleResult,
    *,
    universe: UniverseSettings,
    previous: Mapping[str, Any] | None,
) -> Published:
    """Write active (+ last_ok when every check passed) + funnel + one policy.audit entry, atomically."""
    if not result.ok:
        raise ValueError("a fail-closed cycle publishes nothing")
    rows = symbol_rows(result)
    new_hash = pub.universe_hash(r["symbol"] for r in rows)
    checks = result.checks()
    doc = pub.build_document(
        symbols=rows,
        timeframes=result.timeframes,
        generated_at=result.now_ms,
        valid_for_s=universe.valid_for,
        hash_since=pub.next_hash_since(previous, new_hash=new_hash, generated_at=result.now_ms),
        checks=checks,
    )
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    all_ok = all(checks.values())
    entry = PolicyAudit(
        ts=result.now_ms,
        version=doc["version"],
        generator=doc["generator"],
        features_window=doc["features_window"],
        universe_hash=new_hash,
        universe_count=len(rows),
        symbols=[r["symbol"] for r in rows],
        valid_until=doc["valid_until"],
        funnel={**funnel_summary(result), "last_ok": all_ok},
    )
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.universe_active, text)
    if all_ok:
        pipe.set(keys.universe_last_ok, text)
    pipe.set(keys.universe_funnel, json.dumps(funnel_document(result, universe_hash=new_hash), separators=(",", ":")))
    pipe.xadd(keys.policy_audit, entry.to_fields(), maxlen=AUDIT_MAXLEN, approximate=True)
    replies = await pipe.execute()
    metrics.BUS_PUBLISHED.labels(keys.profile, STREAM_POLICY_AUDIT).inc()  # the XADD bypassed the Bus (MULTI)
    audit_id = replies[-1]
    return Published(
        document=doc,
        last_ok=all_ok,
        hash_changed=previous is None or previous.get("universe_hash") != new_hash,
        audit_id=audit_id.decode() if isinstance(audit_id, bytes) else str(audit_id),
    )
