"""Vetoes (each with its reason code), bad input, scoring, ranking, cut-off, clusters, leverage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from quantum_trader.universe.model import (
    R_CLUSTER,
    R_CONSTANT,
    R_CUTOFF,
    R_FRICTION,
    R_LOW_EFFICIENCY,
    R_NAN,
    R_TOO_FEW_BARS,
    R_TOXIC,
    R_ZERO_VOLUME,
    STAGE_FEATURED,
    STAGE_SELECTED,
    STAGE_VETTED,
    Candidate,
)
from quantum_trader.universe.selection import compute_selection, leverage_for, percentile_ranks

from tests.universe.helpers import candidate, klines, universe, walk

OPEN = {"efficiencyMin": {"major": 0, "alt": 0, "stable": 0}, "toxicHurst": 1.0, "frictionVeto": False}


def trend(seed: int, *, drift: float, n: int = 300, noise: float = 0.002) -> np.ndarray:
    return walk(seed, n, drift=drift, vol=noise)


def dataset(series: dict[str, np.ndarray], **kwargs: Any) -> dict[str, dict[str, Any]]:
    return {s: {tf: klines(s, tf, c, **kwargs) for tf in ("15m", "1h")} for s, c in series.items()}


def run(cands: list[Candidate], data: dict[str, Any], **settings: Any):  # type: ignore[no-untyped-def]
    return compute_selection(candidates=cands, data=data, settings=universe(**{**OPEN, **settings}))


def test_low_efficiency_veto_uses_the_threshold_of_the_asset_class() -> None:
    noisy = walk(5, 300, vol=0.01)
    data = dataset({"BTCUSDT": noisy, "NOISEUSDT": noisy})
    cands = [candidate("BTCUSDT", asset_class="major"), candidate("NOISEUSDT", asset_class="alt")]
    sel = run(cands, data, efficiencyMin={"major": 0.0, "alt": 0.99, "stable": 0.0})
    assert [r.symbol for r in sel.selected] == ["BTCUSDT"]
    drop = sel.drops["NOISEUSDT"]
    assert (drop.stage, drop.reason) == (STAGE_VETTED, R_LOW_EFFICIENCY)
    assert "< 0.9900 (alt)" in drop.detail


def test_toxic_persistence_vetoes_high_hurst_only_with_negative_momentum() -> None:
    data = dataset({"DOWNUSDT": trend(1, drift=-0.003), "UPUSDT": trend(1, drift=0.003)})
    sel = run([candidate("DOWNUSDT"), candidate("UPUSDT")], data, toxicHurst=0.0)
    assert [r.symbol for r in sel.selected] == ["UPUSDT"]
    assert sel.drops["DOWNUSDT"].reason == R_TOXIC
    assert "hurst" in sel.drops["DOWNUSDT"].detail and "momentum -" in sel.drops["DOWNUSDT"].detail


def test_high_friction_vetoes_when_round_trip_cost_exceeds_momentum() -> None:
    data = dataset({"WIDEUSDT": trend(2, drift=0.001), "TIGHTUSDT": trend(3, drift=0.001)})
    cands = [candidate("WIDEUSDT", spread=5000.0), candidate("TIGHTUSDT", spread=1.0)]
    sel = run(cands, data, frictionVeto=True)
    assert [r.symbol for r in sel.selected] == ["TIGHTUSDT"]
    assert sel.drops["WIDEUSDT"].reason == R_FRICTION
    off = run(cands, data, frictionVeto=False)
    assert {r.symbol for r in off.selected} == {"WIDEUSDT", "TIGHTUSDT"}


def test_unknown_spread_uses_the_profile_spread_for_friction() -> None:
    data = dataset({"XUSDT": trend(2, drift=0.001)})
    sel = run([candidate("XUSDT", spread=None)], data, spreadBps=7.0, feeBps=4.0)
    assert sel.selected[0].features["friction"] == pytest.approx((7.0 + 2 * 4.0) / 100)


def test_bad_input_is_dropped_with_a_reason_and_never_crashes_the_cycle() -> None:
    good = trend(1, drift=0.002)
    nan = good.copy()
    nan[100] = np.nan
    data = dataset({"GOODUSDT": good, "NANUSDT": nan, "FLATUSDT": np.full(300, 2.0), "SHORTUSDT": good[:30]})
    data["ZEROUSDT"] = {tf: klines("ZEROUSDT", tf, good, volume=np.zeros(300)) for tf in ("15m", "1h")}
    data["MISSINGUSDT"] = {"15m": klines("MISSINGUSDT", "15m", good)}  # no 1h bars at all
    names = ["GOODUSDT", "NANUSDT", "FLATUSDT", "SHORTUSDT", "ZEROUSDT", "MISSINGUSDT"]
    sel = run([candidate(s) for s in names], data)
    assert [r.symbol for r in sel.selected] == ["GOODUSDT"]
    reasons = {s: (d.stage, d.reason) for s, d in sel.drops.items()}
    assert reasons == {
        "NANUSDT": (STAGE_FEATURED, R_NAN),
        "FLATUSDT": (STAGE_FEATURED, R_CONSTANT),
        "SHORTUSDT": (STAGE_FEATURED, R_TOO_FEW_BARS),
        "ZEROUSDT": (STAGE_FEATURED, R_ZERO_VOLUME),
        "MISSINGUSDT": (STAGE_FEATURED, R_TOO_FEW_BARS),
    }
    assert "1h" in sel.drops["MISSINGUSDT"].detail
    assert sel.featured == 1


def test_all_candidates_bad_or_none_gives_an_empty_selection() -> None:
    data = dataset({"FLATUSDT": np.full(300, 1.0)})
    assert run([candidate("FLATUSDT")], data).selected == ()
    empty = run([], {})
    assert (empty.selected, empty.featured, empty.vetted) == ((), 0, 0)


def test_score_ranks_the_strongest_trend_first_and_cuts_at_universe_size() -> None:
    series = {f"T{i}USDT": trend(10 + i, drift=0.0005 * (i + 1)) for i in range(4)}
    sel = run([candidate(s) for s in series], dataset(series), size=2, weights={"trend": 1, "momentum": 0, "volatility": 0})
    assert [r.symbol for r in sel.selected] == ["T3USDT", "T2USDT"]
    assert [r.rank for r in sel.selected] == [1, 2]
    assert sel.selected[0].score == pytest.approx(100.0)
    for s, position in (("T1USDT", 3), ("T0USDT", 4)):
        assert (sel.drops[s].stage, sel.drops[s].reason) == (STAGE_SELECTED, R_CUTOFF)
        assert f"score rank {position} outside the top 2" == sel.drops[s].detail


def test_downtrends_score_like_uptrends_direction_agnostic() -> None:
    series = {"UPUSDT": trend(1, drift=0.003), "DOWNUSDT": 1.0 / trend(1, drift=0.003)}
    sel = run([candidate(s) for s in series], dataset(series), weights={"trend": 1, "momentum": 1, "volatility": 0})
    assert len(sel.selected) == 2


def test_at_most_k_per_correlation_cluster() -> None:
    rng = np.random.default_rng(7)
    common = rng.normal(0.001, 0.01, 300)
    series = {
        "AUSDT": 100 * np.exp(np.cumsum(common * 1.3)),
        "BUSDT": 100 * np.exp(np.cumsum(common * 1.2 + rng.normal(0, 0.0005, 300))),
        "CUSDT": 100 * np.exp(np.cumsum(common * 1.1 + rng.normal(0, 0.0005, 300))),
        "DUSDT": 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, 300))),
    }
    sel = run([candidate(s) for s in series], dataset(series), size=3, maxPerCluster=1, clusterCorrelation=0.8)
    chosen = {r.symbol for r in sel.selected}
    assert "DUSDT" in chosen and len(chosen & {"AUSDT", "BUSDT", "CUSDT"}) == 1
    clustered = [s for s, d in sel.drops.items() if d.reason == R_CLUSTER]
    assert len(clustered) == 2
    assert sel.drops[clustered[0]].detail.startswith("corr ")
    assert "1 already in that cluster" in sel.drops[clustered[0]].detail
    free = run([candidate(s) for s in series], dataset(series), size=3, maxPerCluster=0)
    assert len(free.selected) == 3 and not any(d.reason == R_CLUSTER for d in free.drops.values())


def test_loop_engine_and_vector_engine_select_the_same_universe() -> None:
    series = {f"S{i}USDT": walk(i, 300, drift=0.0003 * (i % 3 - 1), vol=0.008) for i in range(12)}
    cands = [candidate(s) for s in series]
    settings = universe(size=5, toxicHurst=0.6)
    vec = compute_selection(candidates=cands, data=dataset(series), settings=settings)
    loop = compute_selection(candidates=cands, data=dataset(series), settings=settings, engine="loop")
    rowwise = compute_selection(candidates=cands, data=dataset(series), settings=settings, engine="rowwise")
    assert [(r.symbol, r.score) for r in rowwise.selected] == [(r.symbol, r.score) for r in vec.selected]
    assert [(r.symbol, r.score) for r in vec.selected] == [(r.symbol, r.score) for r in loop.selected]
    assert {s: d.reason for s, d in vec.drops.items()} == {s: d.reason for s, d in loop.drops.items()}


def test_selected_rows_carry_features_of_both_timeframes_and_a_leverage() -> None:
    sel = run([candidate("XUSDT")], dataset({"XUSDT": trend(1, drift=0.002)}))
    f = sel.selected[0].features
    for key in ("trend", "momentum", "mom_15m", "mom_1h", "atr_pct", "atr_pct_15m", "er", "hurst", "entropy",
                "acf1", "lb_p", "friction", "qvol_24h"):
        assert key in f and np.isfinite(f[key]), key
    assert sel.selected[0].leverage == leverage_for(f["atr_pct"])


@pytest.mark.parametrize(
    ("atr", "lev"), [(5.0, 6.0), (3.01, 6.0), (3.0, 8.0), (2.5, 8.0), (2.0, 10.0), (1.6, 10.0), (0.4, 10.0)]
)
def test_leverage_follows_seed_002_volatility_table(atr: float, lev: float) -> None:
    assert leverage_for(atr) == lev


def test_percentile_ranks_average_ties() -> None:
    assert percentile_ranks(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert percentile_ranks(np.array([1.0, 1.0, 2.0])).tolist() == [0.25, 0.25, 1.0]
    assert percentile_ranks(np.array([7.0])).tolist() == [1.0]
