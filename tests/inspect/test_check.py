"""`qt check` evaluation (pure): seed 000's checklist items, GO/NO-GO and the causes it names."""

from __future__ import annotations

import dataclasses
import json

from quantum_trader.core.keys import WORKERS
from quantum_trader.core.profile import SnapshotSettings
from quantum_trader.inspect.check import CheckInputs, Row, evaluate, render
from quantum_trader.snapshot import core as snap
from quantum_trader.universe import publication

NOW = 1_700_000_000_000
UNIVERSE = ["BTCUSDT", "ETHUSDT", "GALAUSDT", "MKRUSDT", "VETUSDT", "HBARUSDT", "TRXUSDT"]


def universe(symbols: list[str] = UNIVERSE, *, valid_until: int = NOW + 3_000_000) -> snap.UniverseView | None:
    return snap.parse_universe(json.dumps({
        "universe_hash": publication.universe_hash(symbols), "generated_at": NOW - 120_000,
        "valid_until": valid_until,
        "symbols": [{"symbol": s, "rank": i + 1, "volume_24h": 1.0} for i, s in enumerate(symbols)],
    }))


def healthy(**changes: object) -> CheckInputs:
    base = CheckInputs(
        profile="paper", environment="paper", spec_paused=False, paused_flag=False, snapshot=SnapshotSettings(),
        now_ms=NOW, wall_ms=NOW, window_s=300.0,
        decisions=(Row("BTCUSDT", NOW - 10, "EXECUTE", "none"), Row("ETHUSDT", NOW - 20, "BLOCKED", "cooldown:ETHUSDT")),
        executions=(Row("BTCUSDT", NOW - 5, "FILLED", "none"),),
        intents=(Row("BTCUSDT", NOW - 30), Row("ETHUSDT", NOW - 40)),
        signals=(Row("BTCUSDT", NOW - 50, "lgbm-7"),),
        tradable=frozenset({"BTCUSDT", "ETHUSDT"}), snapshot_symbols=frozenset({"BTCUSDT", "ETHUSDT"}),
        active=universe(), last_ok=universe(), heartbeats={w: NOW - 2000 for w in WORKERS}, open_orders_raw="1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def seed000() -> CheckInputs:
    """Seed 000's night: 14 decisions, no EXECUTE reaching execution, intents for symbols without snapshots."""
    decisions = (
        [Row("GALAUSDT", NOW - i, "BLOCKED", "kill_score_warning_risk_increase") for i in range(8)]
        + [Row("WAVESUSDT", NOW - i, "BLOCKED", "symbol_not_in_allowlist:WAVESUSDT") for i in range(4)]
        + [Row("BTCUSDT", NOW - i, "BLOCKED", "none") for i in range(2)]
    )
    return healthy(
        decisions=tuple(decisions),
        executions=(),
        intents=tuple(Row(s, NOW - 1000) for s in ("GALAUSDT", "WAVESUSDT", "MKRUSDT", "VETUSDT", "HBARUSDT")),
        signals=tuple(Row(s, NOW - 1000, "fallback-trend") for s in ("GALAUSDT", "MKRUSDT")),
        tradable=frozenset({"0GUSDT", "1000BONKUSDT", "BTCUSDT", "ETHUSDT", "TRXUSDT"}),
        snapshot_symbols=frozenset(),
    )


def items(inp: CheckInputs) -> dict[str, tuple[str, str]]:
    return {i.key: (i.status, i.figure) for i in evaluate(inp).items}


def test_healthy_pipeline_is_go() -> None:
    report = evaluate(healthy())
    assert report.go, render(report)
    assert all(i.status == "PASS" for i in report.items), render(report)


def test_seed000_state_is_no_go_and_names_the_root_cause() -> None:
    report = evaluate(seed000())
    got = items(seed000())
    assert not report.go
    assert got["gate_distribution"][0] == "PASS"
    assert got["gate_distribution"][1].startswith("14 decisions: kill_score_warning_risk_increase 8 (57.1%), "
                                                  "symbol_not_in_allowlist:WAVESUSDT 4 (28.6%), none 2 (14.3%)")
    assert got["snapshot_misses"][0] == "PASS"
    assert got["execute_flow"] == ("FAIL", "EXECUTE 0, filled 0, rejected 0: nothing reached execution")
    status, figure = got["tradable_overlap"]
    assert status == "FAIL" and "0/5" in figure and "GALAUSDT" in figure and "MKRUSDT" in figure
    assert got["model"][0] == "WARN" and "fallback-trend" in got["model"][1]
    assert set(report.to_json()["failing"]) == {"execute_flow", "tradable_overlap"}


def test_snapshot_infrastructure_blocks_fail_the_distribution_and_misses() -> None:
    decisions = (*tuple(Row("GALAUSDT", NOW, "BLOCKED", "no_exchange_snapshot") for _ in range(3)), Row("BTCUSDT", NOW, "EXECUTE", "none"))
    got = items(healthy(decisions=decisions))
    assert got["gate_distribution"][0] == "FAIL"
    assert got["snapshot_misses"] == ("FAIL", "3 decisions blocked for a missing/stale snapshot (GALAUSDT)")


def test_fallback_model_fails_in_production() -> None:
    got = items(healthy(environment="production", signals=(Row("BTCUSDT", NOW, "fallback-trend"),)))
    assert got["model"][0] == "FAIL"
    assert items(healthy(environment="production", signals=()))["model"][0] == "FAIL"
    assert items(healthy(signals=()))["model"][0] == "WARN"


def test_empty_env_allowlist_is_no_go_naming_the_cause() -> None:
    report = evaluate(healthy(snapshot=SnapshotSettings(allowlist_source="env")))
    item = next(i for i in report.items if i.key == "allowlist")
    assert not report.go and item.status == "FAIL"
    assert "snapshot.allowlistSource is env and snapshot.allowlist is empty" in item.figure


def test_no_valid_universe_and_no_profile_list_is_no_go() -> None:
    stale = universe(valid_until=NOW - 1)
    got = items(healthy(active=stale, last_ok=stale))
    assert got["allowlist"][0] == "FAIL" and "no valid universe" in got["allowlist"][1]
    assert got["universe"][0] == "FAIL" and got["universe"][1].startswith("expired")


def test_missing_universe_is_only_a_warning_with_env_source() -> None:
    got = items(healthy(active=None, last_ok=None, snapshot=SnapshotSettings(allowlist_source="env",
                                                                             allowlist=("BTCUSDT",))))
    assert got["universe"][0] == "WARN" and got["allowlist"][0] == "PASS"


def test_missing_or_stale_heartbeats_fail() -> None:
    beats: dict[str, int | None] = {w: NOW for w in WORKERS}
    beats["gate"] = None
    beats["executor"] = NOW - 60_000
    got = items(healthy(heartbeats=beats))
    assert got["heartbeats"] == ("FAIL", "missing: gate; stale: executor")


def test_paused_or_unknown_capacity_fails() -> None:
    assert items(healthy(paused_flag=True))["trading"][0] == "FAIL"
    assert items(healthy(spec_paused=True))["trading"][0] == "FAIL"
    status, figure = items(healthy(open_orders_raw=None))["trading"]
    assert status == "FAIL" and "CAPACITY_UNKNOWN" in figure


def test_execute_without_fills_fails() -> None:
    got = items(healthy(executions=(Row("BTCUSDT", NOW, "REJECTED", "min_notional"),)))
    assert got["execute_flow"][0] == "FAIL" and "min_notional 1" in got["execute_flow"][1]


def test_partial_coverage_warns() -> None:
    got = items(healthy(snapshot_symbols=frozenset({"BTCUSDT"})))
    assert got["tradable_overlap"][0] == "WARN"


def test_render_is_a_table_with_the_verdict() -> None:
    text = render(evaluate(seed000()))
    lines = text.splitlines()
    assert lines[0].endswith("NO-GO")
    assert lines[2].split() == ["STATUS", "CHECK", "FIGURE"]
    assert any(line.startswith("FAIL") and "EXECUTE" in line for line in lines)
    assert lines[-1].startswith("NO-GO: 2 failing")


def test_no_execute_because_the_entry_rule_took_no_signal_is_a_warning_not_a_fault() -> None:
    quiet = healthy(decisions=(), executions=(), intents=(),
                    signals=(Row("BTCUSDT", NOW - 50, "fallback-trend"), Row("ETHUSDT", NOW - 60, "fallback-trend")),
                    router_drops=(Row("BTCUSDT", NOW - 40, reason="negative_edge:ev_bps=-3.1,p=0.58"),
                                  Row("ETHUSDT", NOW - 45, reason="hold")))
    status, figure = items(quiet)["execute_flow"]
    assert status == "WARN" and "the router's entry rule took none of 2 signals (negative_edge 1, hold 1)" in figure
    assert "execute_flow" not in evaluate(quiet).to_json()["failing"]
    # a drop that is a fault (no capacity known) keeps it a failure
    broken = dataclasses.replace(quiet, router_drops=(Row("BTCUSDT", NOW - 40, reason="capacity_unknown"),))
    assert items(broken)["execute_flow"][0] == "FAIL"
