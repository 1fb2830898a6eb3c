"""Features → vetoes → score → rank → select (pure, vectorised over all candidates).

Input: the eligible, healthy candidates and their klines per timeframe; output:
the ranked selection, a reason for every dropped candidate and the features of
every candidate that had usable data. No I/O, no clock.

Decisions use the *slow* timeframe (the last of ``universe.timeframes``, 1h by
default) for trend, volatility and predictability, and the mean ROC over all
timeframes as momentum:

- ``low_efficiency``    efficiency ratio < ``universe.efficiencyMin.<asset class>``
- ``toxic_persistence`` Hurst > ``universe.toxicHurst`` and momentum < 0
- ``high_friction``     round-trip cost % (spread + 2·fee) >= |momentum| %
                        (when ``universe.frictionVeto``)

Score (0..100) = weighted mean of cross-sectional percentile ranks (among the
candidates that passed the vetoes) of |trend|, |momentum| and volatility
quality = -|log(ATR% / median ATR%)| (volatility close to the cross-section's
median scores best: neither dead nor blown-out), weights ``universe.weights``.
Direction-agnostic on purpose: the AI trades both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from quantum_trader.core.profile import UniverseSettings
from quantum_trader.market.base import TIMEFRAME_MS, Klines
from quantum_trader.universe import features as ft
from quantum_trader.universe.model import (
    R_BAD_PRICES,
    R_CLUSTER,
    R_CONSTANT,
    R_CUTOFF,
    R_FRICTION,
    R_LOW_EFFICIENCY,
    R_NAN,
    R_NON_FINITE,
    R_TOO_FEW_BARS,
    R_TOXIC,
    R_ZERO_VOLUME,
    STAGE_FEATURED,
    STAGE_SELECTED,
    STAGE_VETTED,
    Candidate,
    Drop,
    Ranked,
    Selection,
)

# vector: one 2-D block per timeframe (the worker); rowwise: the same numpy code one symbol at a
# time; loop: the textbook per-symbol reference (:mod:`.reference`). The last two exist for tests
# and bench/bench_universe.py.
Engine = Literal["vector", "rowwise", "loop"]

# Seed 002's leverage table: ATR% (slow timeframe) above the threshold → leverage.
LEVERAGE_TABLE: Final = ((3.0, 6.0), (2.0, 8.0), (1.5, 10.0))
LEVERAGE_DEFAULT: Final = 10.0  # calmer than 1.5 %: stays at 10 (the gate's default maxLeverage)
CORR_BARS: Final = 100  # returns (slow timeframe) used for the correlation clusters
_PROBLEM_REASON: Final = {
    ft.PROBLEM_NAN: R_NAN,
    ft.PROBLEM_BAD_PRICES: R_BAD_PRICES,
    ft.PROBLEM_CONSTANT: R_CONSTANT,
    ft.PROBLEM_ZERO_VOLUME: R_ZERO_VOLUME,
}
_DECISION_FEATURES: Final = ("trend", "momentum", "atr_pct", "er", "hurst", "friction")


def leverage_for(atr_pct: float) -> float:
    """Suggested leverage from volatility (seed 002): > 3 % → 6, > 2 % → 8, > 1.5 % → 10, else 10."""
    for threshold, lev in LEVERAGE_TABLE:
        if atr_pct > threshold:
            return lev
    return LEVERAGE_DEFAULT


def percentile_ranks(x: ft.F64) -> ft.F64:
    """Rank of each value in [0, 1] (ties share their average rank); a single value gets 1."""
    n = x.shape[0]
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.ones(1)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    # average the ranks of ties
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if counts.max() > 1:
        sums = np.bincount(inverse, weights=ranks)
        ranks = sums[inverse] / counts[inverse]
    result: ft.F64 = ranks / (n - 1)
    return result


def _block(
    data: Mapping[str, Mapping[str, Klines]], symbols: Sequence[str], tf: str, n: int, *, bars_per_day: int
) -> dict[str, ft.F64]:
    """Stack the last ``n`` closes of each symbol into a (len(symbols), n) float64 array.

    High/low are only used for ATR (the last ``ATR_BARS`` bars) and volume only for the last
    day, so only those tails are stacked (a third of the copying).
    """
    rows = len(symbols)
    series = [data[s][tf] for s in symbols]

    def stack(attr: str, width: int) -> ft.F64:
        flat = np.concatenate([getattr(k, attr)[-width:] for k in series]).astype(np.float64, copy=False)
        result: ft.F64 = flat.reshape(rows, width)
        return result

    wicks = min(n, ft.ATR_BARS + 1)
    return {
        "close": stack("close", n),
        "high": stack("high", wicks),
        "low": stack("low", wicks),
        "volume": stack("volume", min(n, bars_per_day)),
    }


def timeframe_table(
    data: Mapping[str, Mapping[str, Klines]],
    symbols: Sequence[str],
    *,
    timeframe: str,
    bars: int,
    engine: Engine = "vector",
) -> tuple[dict[str, ft.F64], np.ndarray]:
    """Features of one timeframe for ``symbols`` (NaN where unusable) and a reason code per symbol ('' = ok).

    Symbols are grouped by their number of bars (normally one group) and each group is computed
    as one 2-D block.
    """
    n_sym = len(symbols)
    out = {name: np.full(n_sym, np.nan) for name in ft.TIMEFRAME_FEATURES}
    reasons = np.full(n_sym, "", dtype=object)
    bars_per_day = max(1, 86_400_000 // TIMEFRAME_MS[timeframe])
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(symbols):
        k = data.get(s, {}).get(timeframe)
        n = min(len(k), bars) if k is not None else 0
        if n < ft.MIN_FEATURE_BARS:
            reasons[i] = R_TOO_FEW_BARS
            continue
        groups.setdefault(n, []).append(i)
    for n, idx in groups.items():
        blk = _block(data, [symbols[i] for i in idx], timeframe, n, bars_per_day=bars_per_day)
        feats, problems = block_features(blk, bars_per_day=bars_per_day, engine=engine)
        index = np.asarray(idx)
        for name, values in feats.items():
            out[name][index] = values
        for row, code in enumerate(problems.tolist()):
            if code != ft.OK:
                reasons[idx[row]] = _PROBLEM_REASON[code]
    return out, reasons


def block_features(
    blk: Mapping[str, ft.F64], *, bars_per_day: int, engine: Engine = "vector"
) -> tuple[dict[str, ft.F64], npt.NDArray[np.int8]]:
    """Features and input-problem codes of one (N, T) block (close/high/low/volume)."""
    close, high, low, volume = blk["close"], blk["high"], blk["low"], blk["volume"]
    problems = ft.input_problems(close=close, high=high, low=low, volume=volume, bars_per_day=bars_per_day)
    if engine == "vector":
        return (
            ft.timeframe_features(close=close, high=high, low=low, volume=volume, bars_per_day=bars_per_day),
            problems,
        )
    from quantum_trader.universe.reference import symbol_features

    rows = close.shape[0]
    feats = {name: np.full(rows, np.nan) for name in ft.TIMEFRAME_FEATURES}
    for row in range(rows):
        if problems[row] != ft.OK:
            continue
        if engine == "rowwise":
            one_row = ft.timeframe_features(
                close=close[row : row + 1], high=high[row : row + 1], low=low[row : row + 1],
                volume=volume[row : row + 1], bars_per_day=bars_per_day,
            )
            for name, values in one_row.items():
                feats[name][row] = values[0]
            continue
        with np.errstate(all="ignore"):
            one = symbol_features(
                close=close[row], high=high[row], low=low[row], volume=volume[row], bars_per_day=bars_per_day
            )
        for name, value in one.items():
            feats[name][row] = value
    return feats, problems


def _cost_pct(candidates: Sequence[Candidate], settings: UniverseSettings) -> ft.F64:
    spreads = np.asarray(
        [c.spread_bps if c.spread_bps is not None else settings.spread_bps for c in candidates], dtype=np.float64
    )
    result: ft.F64 = (spreads + 2.0 * settings.fee_bps) / 100.0
    return result


def _cluster_select(
    order: list[int],
    *,
    returns: ft.F64,
    size: int,
    max_per_cluster: int,
    threshold: float,
    symbols: Sequence[str],
) -> tuple[list[int], dict[int, str]]:
    """Greedy selection down the ranking with at most ``max_per_cluster`` per correlation cluster.

    A symbol joins the cluster of the first already-accepted leader it correlates with above
    ``threshold``; otherwise it leads a new cluster. Returns (selected, {dropped: detail}).
    """
    selected: list[int] = []
    dropped: dict[int, str] = {}
    if max_per_cluster <= 0:
        return order[:size], dropped
    with np.errstate(all="ignore"):
        corr: ft.F64 = np.atleast_2d(np.corrcoef(returns[order])) if len(order) > 1 else np.ones((1, 1))
    pos = {sym_index: p for p, sym_index in enumerate(order)}
    leaders: list[int] = []
    members: dict[int, int] = {}
    for i in order:
        if len(selected) >= size:
            break
        cluster = next((j for j in leaders if corr[pos[i], pos[j]] >= threshold), None)
        if cluster is None:
            leaders.append(i)
            members[i] = 1
            selected.append(i)
        elif members[cluster] < max_per_cluster:
            members[cluster] += 1
            selected.append(i)
        else:
            dropped[i] = (
                f"corr {corr[pos[i], pos[cluster]]:.2f} with {symbols[cluster]}; "
                f"{max_per_cluster} already in that cluster"
            )
    return selected, dropped


Table = tuple[dict[str, ft.F64], np.ndarray]  # features of one timeframe + reason code per symbol


def compute_selection(
    *,
    candidates: Sequence[Candidate],
    data: Mapping[str, Mapping[str, Klines]],
    settings: UniverseSettings,
    engine: Engine = "vector",
) -> Selection:
    """Features → vetoes → score → rank → select for the healthy candidates."""
    symbols = [c.symbol for c in candidates]
    tables: dict[str, Table] = {
        tf: timeframe_table(data, symbols, timeframe=tf, bars=settings.bars, engine=engine)
        for tf in settings.timeframes
    }
    return decide(candidates=candidates, tables=tables, settings=settings, data=data)


@dataclass(frozen=True)
class _Featured:
    """The feature stage's output: per-timeframe tables, the decision features and who is usable."""

    symbols: list[str]
    per_tf: dict[str, dict[str, ft.F64]]
    decision: dict[str, ft.F64]
    usable: npt.NDArray[np.bool_]
    drops: dict[str, Drop]


def _feature_stage(candidates: Sequence[Candidate], tables: Mapping[str, Table], settings: UniverseSettings) -> _Featured:
    """Decision features per symbol; a reason code from a table or a non-finite feature drops it (``featured``)."""
    symbols = [c.symbol for c in candidates]
    tfs = tuple(settings.timeframes)
    per_tf: dict[str, dict[str, ft.F64]] = {}
    reasons = np.full(len(symbols), "", dtype=object)
    for tf in tfs:
        table, why = tables[tf]
        per_tf[tf] = table
        for i in np.flatnonzero(why != "").tolist():
            if not reasons[i]:
                reasons[i] = f"{why[i]}|{tf}"
    s = per_tf[tfs[-1]]
    with np.errstate(all="ignore"):
        momentum = np.mean([per_tf[tf]["roc"] for tf in tfs], axis=0)
        cost = _cost_pct(candidates, settings)
        decision = {
            "trend": s["trend"], "momentum": momentum, "atr_pct": s["atr_pct"], "er": s["er"], "hurst": s["hurst"],
            "friction": cost, "friction_ratio": cost / per_tf[tfs[0]]["atr_pct"],
        }
    finite = np.ones(len(symbols), dtype=bool)
    for name in _DECISION_FEATURES:
        finite &= np.isfinite(decision[name])
    usable = finite & (reasons == "")
    drops: dict[str, Drop] = {}
    for i in np.flatnonzero(~usable).tolist():
        if reasons[i]:
            code, where = str(reasons[i]).split("|")
            drops[symbols[i]] = Drop(STAGE_FEATURED, code, f"{where}: {code.replace('_', ' ')}")
        else:
            bad = [name for name in _DECISION_FEATURES if not math.isfinite(float(decision[name][i]))]
            drops[symbols[i]] = Drop(STAGE_FEATURED, R_NON_FINITE, "not finite: " + ",".join(bad))
    return _Featured(symbols, per_tf, decision, usable, drops)


def _features_of(f: _Featured, i: int, tfs: Sequence[str]) -> dict[str, float]:
    row: dict[str, float] = {}
    for tf in tfs:
        for name in ft.TIMEFRAME_FEATURES:
            key = "mom" if name == "roc" else name
            row[f"{key}_{tf}"] = float(f.per_tf[tf][name][i])
    for name in ("trend", "momentum", "atr_pct", "er", "hurst", "friction", "friction_ratio"):
        row[name] = float(f.decision[name][i])
    for name in ("entropy", "acf1", "lb_p", "qvol_24h"):
        row[name] = float(f.per_tf[tfs[-1]][name][i])
    return row


def _veto_stage(
    f: _Featured, candidates: Sequence[Candidate], settings: UniverseSettings
) -> npt.NDArray[np.intp]:
    """Vetoes (first one wins), each with its reason code and the numbers behind it; the vetted indices."""
    d, symbols, usable = f.decision, f.symbols, f.usable
    momentum, cost = d["momentum"], d["friction"]
    er_min = np.asarray([getattr(settings.efficiency_min, c.asset_class) for c in candidates], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low_eff = usable & (d["er"] < er_min)
        toxic = usable & ~low_eff & (d["hurst"] > settings.toxic_hurst) & (momentum < 0)
        friction = usable & ~low_eff & ~toxic & (cost >= np.abs(momentum)) if settings.friction_veto else (
            np.zeros(len(symbols), dtype=bool)
        )
    for i in np.flatnonzero(low_eff).tolist():
        f.drops[symbols[i]] = Drop(
            STAGE_VETTED, R_LOW_EFFICIENCY, f"er {d['er'][i]:.4f} < {er_min[i]:.4f} ({candidates[i].asset_class})"
        )
    for i in np.flatnonzero(toxic).tolist():
        f.drops[symbols[i]] = Drop(
            STAGE_VETTED,
            R_TOXIC,
            f"hurst {d['hurst'][i]:.3f} > {settings.toxic_hurst:.2f} with momentum {momentum[i]:.3f}%",
        )
    for i in np.flatnonzero(friction).tolist():
        f.drops[symbols[i]] = Drop(
            STAGE_VETTED, R_FRICTION, f"cost {cost[i]:.3f}% >= |momentum| {abs(momentum[i]):.3f}%"
        )
    return np.flatnonzero(usable & ~low_eff & ~toxic & ~friction)


def _score_stage(
    f: _Featured, vetted: npt.NDArray[np.intp], candidates: Sequence[Candidate], settings: UniverseSettings
) -> tuple[list[int], dict[int, float]]:
    """Weighted percentile score of |trend|, |momentum| and volatility quality; the rank order and scores."""
    w = settings.weights
    total_w = w.trend + w.momentum + w.volatility
    atr_v = f.decision["atr_pct"][vetted]
    with np.errstate(all="ignore"):
        vol_quality = -np.abs(np.log(atr_v / np.median(atr_v))) if vetted.size else np.zeros(0)
        parts = (
            w.trend * percentile_ranks(np.abs(f.decision["trend"][vetted]))
            + w.momentum * percentile_ranks(np.abs(f.decision["momentum"][vetted]))
            + w.volatility * percentile_ranks(vol_quality)
        )
    scores = 100.0 * parts / total_w if total_w > 0 else np.zeros(vetted.size)
    volumes = [c.volume_24h for c in candidates]
    ranked_pos = sorted(range(vetted.size), key=lambda p: (-scores[p], -volumes[vetted[p]], f.symbols[vetted[p]]))
    return [int(vetted[p]) for p in ranked_pos], {int(vetted[p]): float(scores[p]) for p in range(vetted.size)}


def _cluster_returns(
    order: list[int], symbols: list[str], data: Mapping[str, Mapping[str, Klines]] | None, settings: UniverseSettings
) -> npt.NDArray[np.float64]:
    """Log returns of the slow timeframe's last closes, per ranked symbol (zeros when clusters are off)."""
    returns = np.zeros((len(symbols), 1))
    if settings.max_per_cluster > 0 and order and data is not None:
        slow = tuple(settings.timeframes)[-1]
        width = min(CORR_BARS, min(min(len(data[symbols[i]][slow]), settings.bars) for i in order) - 1)
        returns = np.zeros((len(symbols), max(width, 1)))
        with np.errstate(all="ignore"):
            for i in order:
                close = np.asarray(data[symbols[i]][slow].close[-width - 1 :], dtype=np.float64)
                returns[i] = np.diff(np.log(close))
    return returns


def decide(
    *,
    candidates: Sequence[Candidate],
    tables: Mapping[str, Table],
    settings: UniverseSettings,
    data: Mapping[str, Mapping[str, Klines]] | None = None,
) -> Selection:
    """Vetoes → score → rank → select from per-timeframe feature tables (rows = ``candidates``).

    ``data`` (klines) is only needed for the correlation clusters (``universe.maxPerCluster`` > 0).
    """
    f = _feature_stage(candidates, tables, settings)
    symbols, drops = f.symbols, f.drops
    vetted = _veto_stage(f, candidates, settings)
    order, score_of = _score_stage(f, vetted, candidates, settings)
    chosen, cluster_drops = _cluster_select(
        order,
        returns=_cluster_returns(order, symbols, data, settings),
        size=settings.size,
        max_per_cluster=settings.max_per_cluster,
        threshold=settings.cluster_correlation,
        symbols=symbols,
    )
    for i, detail in cluster_drops.items():
        drops[symbols[i]] = Drop(STAGE_SELECTED, R_CLUSTER, detail)
    chosen_set = set(chosen)
    for position, i in enumerate(order, start=1):
        if i not in chosen_set and symbols[i] not in drops:
            drops[symbols[i]] = Drop(STAGE_SELECTED, R_CUTOFF, f"score rank {position} outside the top {settings.size}")
    selected = tuple(
        Ranked(
            symbol=symbols[i],
            rank=rank,
            score=round(score_of[i], 4),
            volume_24h=float(candidates[i].volume_24h),
            leverage=leverage_for(float(f.decision["atr_pct"][i])),
            features=_features_of(f, i, tuple(settings.timeframes)),
        )
        for rank, i in enumerate(chosen, start=1)
    )
    return Selection(featured=int(f.usable.sum()), vetted=int(vetted.size), selected=selected, drops=drops)
