"""Data health audit per symbol and timeframe (pure; seed 004).

A timeframe of a symbol is unhealthy when it has

- ``no_klines``: no bars at all;
- ``bad_timestamps``: bar open times not strictly increasing or not on the timeframe grid;
- ``too_few_bars``: fewer than ``health.minBars`` bars;
- ``stale``: the last bar closed more than ``health.maxStalenessBars`` bars before now;
- ``gaps``: more than ``health.maxGapBars`` bars missing inside the window.

The first problem found is reported. :func:`repair_plan` says which
symbol/timeframes the next repair round backfills (bounded by
``health.maxRepairRounds``); the async loop lives in :mod:`.cycle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from quantum_trader.core.profile import HealthSettings
from quantum_trader.market.base import TIMEFRAME_MS, Klines
from quantum_trader.universe.model import (
    R_BAD_TIMESTAMPS,
    R_GAPS,
    R_NO_KLINES,
    R_STALE,
    R_TOO_FEW_BARS,
    REPAIRABLE,
    STAGE_HEALTHY,
    Candidate,
    Drop,
    HealthIssue,
)


def bars_behind(klines: Klines, *, timeframe: str, now_ms: int) -> float:
    """How many whole bars ago the last bar closed (0 for a bar that just closed)."""
    tf_ms = TIMEFRAME_MS[timeframe]
    last_close = int(klines.ts[-1]) + tf_ms
    return max(0.0, (now_ms - last_close) / tf_ms)


def audit_klines(
    klines: Klines | None, *, symbol: str, timeframe: str, now_ms: int, health: HealthSettings
) -> HealthIssue | None:
    """The first health problem of one symbol/timeframe, or None when healthy."""
    if klines is None or len(klines) == 0:
        return HealthIssue(symbol, timeframe, R_NO_KLINES, f"{timeframe}: no bars")
    tf_ms = TIMEFRAME_MS[timeframe]
    steps = np.diff(klines.ts)
    if steps.size and (bool((steps <= 0).any()) or bool((steps % tf_ms != 0).any())):
        return HealthIssue(symbol, timeframe, R_BAD_TIMESTAMPS, f"{timeframe}: bar times not on a {timeframe} grid")
    n = len(klines)
    if n < health.min_bars:
        return HealthIssue(symbol, timeframe, R_TOO_FEW_BARS, f"{timeframe}: {n} bars < {health.min_bars}")
    behind = bars_behind(klines, timeframe=timeframe, now_ms=now_ms)
    if behind > health.max_staleness_bars:
        return HealthIssue(
            symbol,
            timeframe,
            R_STALE,
            f"{timeframe}: last bar {behind:.1f} bars old > {health.max_staleness_bars}",
        )
    missing = int((steps // tf_ms - 1).sum()) if steps.size else 0
    if missing > health.max_gap_bars:
        return HealthIssue(
            symbol, timeframe, R_GAPS, f"{timeframe}: {missing} missing bars > {health.max_gap_bars}"
        )
    return None


def audit(
    data: Mapping[str, Mapping[str, Klines | None]],
    *,
    timeframes: Iterable[str],
    now_ms: int,
    health: HealthSettings,
) -> dict[str, list[HealthIssue]]:
    """Every unhealthy timeframe per unhealthy symbol (timeframe order); healthy symbols are absent."""
    tfs = tuple(timeframes)
    out: dict[str, list[HealthIssue]] = {}
    for symbol, by_tf in data.items():
        issues = [
            issue
            for tf in tfs
            if (issue := audit_klines(by_tf.get(tf), symbol=symbol, timeframe=tf, now_ms=now_ms, health=health))
            is not None
        ]
        if issues:
            out[symbol] = issues
    return out


def repair_plan(issues: Iterable[HealthIssue], *, rounds_done: int, health: HealthSettings) -> list[HealthIssue]:
    """What the next repair round backfills: nothing when repair is off or the rounds are used up."""
    if not health.auto_repair or rounds_done >= health.max_repair_rounds:
        return []
    return [i for i in issues if i.reason in REPAIRABLE]


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """Which candidates go on to the compute stage after the audit and its repair rounds."""

    healthy: tuple[Candidate, ...]
    drops: Mapping[str, Drop] = field(default_factory=dict)  # strict: the unhealthy, at stage ``healthy``
    repaired: tuple[str, ...] = ()  # unhealthy at first, healthy after repair
    still_unhealthy: tuple[str, ...] = ()
    unhealthy_kept: tuple[str, ...] = ()  # not strict: unhealthy but kept (the cycle is not last_ok)


def health_verdict(
    candidates: Sequence[Candidate],
    issues: Mapping[str, list[HealthIssue]],
    *,
    initially: Iterable[str],
    rounds: int,
    health: HealthSettings,
) -> HealthVerdict:
    """``health.strict``: drop every still-unhealthy symbol with its first issue; else keep them (flagged)."""
    first_bad = set(initially)
    still = tuple(sorted(issues))
    repaired = tuple(sorted(first_bad - set(issues)))
    if not health.strict:
        return HealthVerdict(tuple(candidates), {}, repaired, still, still)
    drops: dict[str, Drop] = {}
    for sym, lst in issues.items():
        first: HealthIssue = lst[0]
        suffix = f" (after {rounds} repair round{'s' if rounds != 1 else ''})" if first_bad else ""
        drops[sym] = Drop(STAGE_HEALTHY, first.reason, first.detail + suffix)
    healthy = tuple(c for c in candidates if c.symbol not in issues)
    return HealthVerdict(healthy, drops, repaired, still, ())
