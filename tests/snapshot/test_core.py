"""Snapshot decision core: allowlist tiers, top-K, candidate ranking and coverage (seed 000), without Redis."""

from __future__ import annotations

import json

from quantum_trader.core.profile import SnapshotSettings
from quantum_trader.snapshot import core
from quantum_trader.snapshot.core import Allowlist
from quantum_trader.universe import publication

NOW = 1_700_000_000_000

SEED_ALPHA = (
    "0GUSDT 1000000BOBUSDT 1000000MOGUSDT 1000BONKUSDC 1000BONKUSDT 1000CATUSDT 1000CHEEMSUSDT "
    "1000FLOKIUSDT 1000LUNCUSDT 1000PEPEUSDC 1000PEPEUSDT 1000RATSUSDT 1000SATSUSDT 1000SHIBUSDC "
    "1000SHIBUSDT 1000WHYUSDT 1000XECUSDT 1000XUSDT 1INCHUSDT 1MBABYDOGEUSDT 42USDT 4USDT A2ZUSDT "
    "AAVEUSDC AAVEUSDT ACEUSDT ACHUSDT ACTUSDT ACUUSDT ACXUSDT"
).split()
NAMED = "BTCUSDT ETHUSDT TRXUSDT GALAUSDT WAVESUSDT MKRUSDT VETUSDT HBARUSDT ZECUSDT FILUSDT".split()
INTENT_SYMBOLS = ("GALAUSDT", "MKRUSDT", "VETUSDT", "HBARUSDT")


def universe_566() -> list[str]:
    symbols = SEED_ALPHA + NAMED
    i = 0
    while len(symbols) < 566:
        symbols.append(f"X{i:03d}USDT")
        i += 1
    return symbols


def universe_doc(symbols: list[str], *, valid_until: int = NOW + 3_600_000) -> str:
    return json.dumps(
        {
            "version": "1",
            "generator": "test",
            "universe_hash": publication.universe_hash(symbols),
            "generated_at": NOW - 60_000,
            "valid_until": valid_until,
            "symbols": [
                {"symbol": s, "rank": i + 1, "score": 1.0, "volume_24h": float(1_000_000 - i)}
                for i, s in enumerate(symbols)
            ],
        }
    )


# -- allowlist tiers ---------------------------------------------------------------------------


def test_active_universe_serves_the_allowlist() -> None:
    view = core.parse_universe(universe_doc(["BTCUSDT", "ETHUSDT"]))
    al = core.resolve_allowlist(SnapshotSettings(), active=view, last_ok=None, now_ms=NOW)
    assert (al.source, al.symbols) == ("active", ("BTCUSDT", "ETHUSDT"))


def test_expired_active_falls_back_to_last_ok() -> None:
    active = core.parse_universe(universe_doc(["BTCUSDT"], valid_until=NOW - 1))
    last_ok = core.parse_universe(universe_doc(["ETHUSDT"]))
    al = core.resolve_allowlist(SnapshotSettings(), active=active, last_ok=last_ok, now_ms=NOW)
    assert (al.source, al.symbols) == ("last_ok", ("ETHUSDT",))


def test_no_universe_falls_back_to_profile_allowlist() -> None:
    settings = SnapshotSettings(allowlist=("galausdt", "BTCUSDT"))
    al = core.resolve_allowlist(settings, active=None, last_ok=core.parse_universe("not json"), now_ms=NOW)
    assert (al.source, al.symbols) == ("profile", ("GALAUSDT", "BTCUSDT"))


def test_env_source_ignores_the_universe() -> None:
    settings = SnapshotSettings(allowlist_source="env", allowlist=("ZECUSDT",))
    view = core.parse_universe(universe_doc(universe_566()))
    al = core.resolve_allowlist(settings, active=view, last_ok=view, now_ms=NOW)
    assert (al.source, al.symbols) == ("env", ("ZECUSDT",))


def test_env_source_with_empty_allowlist_is_empty() -> None:
    al = core.resolve_allowlist(SnapshotSettings(allowlist_source="env"), active=None, last_ok=None, now_ms=NOW)
    assert al.symbols == () and al.source == "env"


def test_universe_with_a_wrong_hash_is_not_used() -> None:
    doc = json.loads(universe_doc(["BTCUSDT", "ETHUSDT"]))
    doc["universe_hash"] = "0000000000000000"
    al = core.resolve_allowlist(
        SnapshotSettings(allowlist=("ZECUSDT",)), active=core.parse_universe(json.dumps(doc)), last_ok=None,
        now_ms=NOW,
    )
    assert (al.source, al.symbols) == ("profile", ("ZECUSDT",))


def test_parse_universe_tolerates_garbage_entries() -> None:
    raw = json.dumps({"symbols": [{"symbol": "B", "rank": 2}, {"rank": 1}, 7, {"symbol": "A", "rank": 1}]})
    view = core.parse_universe(raw)
    assert view is not None and view.symbols == ("A", "B") and view.valid_until == 0
    assert core.active_symbols(view, now_ms=NOW) == ()  # no valid_until: not valid
    assert core.parse_universe(None) is None and core.parse_universe("[1]") is None


# -- window, top-K -----------------------------------------------------------------------------


def test_intent_window_keeps_newest_and_forgets_old() -> None:
    w = core.remember({}, [("A", NOW - 10), ("A", NOW - 5), ("B", NOW - 2_000_000)], now_ms=NOW, window_s=1800)
    assert w == {"A": NOW - 5}


def test_top_k_is_cycle_over_latency_within_bounds() -> None:
    s = SnapshotSettings(min_top_k=10, target_cycle=10.0, max_top_k=200)
    assert core.compute_top_k(ewma_latency_s=None, settings=s) == 10
    assert core.compute_top_k(ewma_latency_s=0.3, settings=s) == 33
    assert core.compute_top_k(ewma_latency_s=5.0, settings=s) == 10
    assert core.compute_top_k(ewma_latency_s=0.001, settings=s) == 200
    assert core.compute_top_k(ewma_latency_s=0.0, settings=s) == 200


def test_ewma_moves_towards_samples() -> None:
    assert core.ewma(None, 1.0) == 1.0
    assert abs(core.ewma(1.0, 0.0) - 0.7) < 1e-12


# -- seed 000 reproduced -----------------------------------------------------------------------


def _plan(ranking: str, top_k: int = 33) -> core.CandidatePlan:
    settings = SnapshotSettings(ranking=ranking)  # type: ignore[arg-type]
    al = core.resolve_allowlist(
        settings, active=core.parse_universe(universe_doc(universe_566())), last_ok=None, now_ms=NOW
    )
    assert (al.source, len(al.symbols)) == ("active", 566)
    return core.choose_candidates(
        allowlist=al,
        recent_intents={s: NOW - 1000 * i for i, s in enumerate((*INTENT_SYMBOLS, "WAVESUSDT"))},
        demand={},
        positions=["BTCUSDT", "ETHUSDT", "TRXUSDT"],
        top_k=top_k,
        settings=settings,
    )


def test_seed000_alphabetical_small_top_k_misses_every_intent_symbol() -> None:
    plan = _plan("alphabetical")
    assert len(plan.symbols) == 33
    assert {"BTCUSDT", "ETHUSDT", "TRXUSDT"} <= set(plan.symbols)
    assert "0GUSDT" in plan.symbols and "1000BONKUSDT" in plan.symbols
    cov = core.measure_coverage(INTENT_SYMBOLS, fresh=frozenset(plan.symbols))
    assert cov.ratio == 0.0 and cov.missing == tuple(sorted(INTENT_SYMBOLS))


def test_seed000_intent_ranking_covers_every_intent_symbol() -> None:
    plan = _plan("intent")
    assert set(INTENT_SYMBOLS) <= set(plan.symbols)
    assert plan.symbols[:5] == (*INTENT_SYMBOLS, "WAVESUSDT")
    assert len(plan.symbols) == 33 and plan.count("intent") == 5 and plan.count("position") == 3
    cov = core.measure_coverage(INTENT_SYMBOLS, fresh=frozenset(plan.symbols))
    assert cov.ratio == 1.0 and cov.missing == ()


def test_intent_symbols_outside_allowlist_get_no_priority() -> None:
    settings = SnapshotSettings()
    al = Allowlist("profile", ("BTCUSDT", "GALAUSDT"))
    plan = core.choose_candidates(
        allowlist=al, recent_intents={"WAVESUSDT": NOW, "GALAUSDT": NOW}, demand={},
        positions=[], top_k=1, settings=settings,
    )
    assert plan.symbols == ("GALAUSDT",)


def test_more_intent_symbols_than_top_k_are_all_kept() -> None:
    al = Allowlist("profile", tuple(f"S{i}USDT" for i in range(20)))
    plan = core.choose_candidates(
        allowlist=al, recent_intents={f"S{i}USDT": NOW - i for i in range(15)}, demand={},
        positions=[], top_k=10, settings=SnapshotSettings(),
    )
    assert plan.count("intent") == 15 and len(plan.symbols) == 15


def test_router_demand_comes_after_intents_and_before_backfill() -> None:
    al = Allowlist("profile", ("A", "B", "C", "D"), {"D": 9.0})
    plan = core.choose_candidates(
        allowlist=al, recent_intents={"B": NOW}, demand={"C": NOW}, positions=["Z"], top_k=4,
        settings=SnapshotSettings(),
    )
    assert plan.symbols == ("B", "C", "Z", "D")
    assert dict(plan.tiers) == {"B": "intent", "C": "demand", "Z": "position", "D": "backfill"}


def test_volume_ranking_prefers_liquid_symbols() -> None:
    al = Allowlist("active", ("A", "B", "C"), {"A": 1.0, "B": 3.0, "C": 2.0})
    plan = core.choose_candidates(
        allowlist=al, recent_intents={"A": NOW}, demand={}, positions=[], top_k=2,
        settings=SnapshotSettings(ranking="volume"),
    )
    assert plan.symbols == ("B", "C")


# -- rows, tradable, coverage ------------------------------------------------------------------


def test_rows_carry_position_and_unrealized_pnl() -> None:
    positions, bad = core.parse_positions(
        {
            "BTCUSDT": json.dumps({"symbol": "BTCUSDT", "side": "SELL", "qty": 2, "entry_price": 100.0}),
            "ETHUSDT": "{broken",
        }
    )
    assert bad == ["ETHUSDT"]
    rows, missing = core.build_snapshots(
        ["BTCUSDT", "SOLUSDT", "XRPUSDT"], marks={"BTCUSDT": 90.0, "SOLUSDT": 5.0}, positions=positions, now_ms=NOW
    )
    assert missing == ("XRPUSDT",)
    btc = rows[0]
    assert (btc.position_amt, btc.entry_price, btc.unrealized_pnl) == (-2.0, 100.0, 20.0)
    assert btc.fields() == {
        "mark_price": "90.0", "position_amt": "-2.0", "entry_price": "100.0", "unrealized_pnl": "20.0",
        "ts": str(NOW),
    }
    assert rows[1].position_amt == 0.0 and rows[1].unrealized_pnl == 0.0


def test_tradable_excludes_positions_outside_allowlist() -> None:
    rows, _ = core.build_snapshots(["A", "Z"], marks={"A": 1.0, "Z": 1.0}, positions={}, now_ms=NOW)
    assert core.tradable_symbols(rows, allowlist=Allowlist("profile", ("A",))) == frozenset({"A"})


def test_coverage_without_intents_is_full() -> None:
    assert core.measure_coverage([], fresh=frozenset()).ratio == 1.0
    assert core.measure_coverage(["A", "B"], fresh=frozenset({"A"})).ratio == 0.5
