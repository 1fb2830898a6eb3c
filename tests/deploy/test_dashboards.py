"""Grafana dashboards: generated from tools/dashboards.py, and every query names an exported metric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.conftest import CHART, load_tool

DASHBOARD_DIR = CHART / "dashboards"


@pytest.fixture(scope="module")
def dashboards_tool() -> Any:
    return load_tool("dashboards")


@pytest.fixture(scope="module")
def exported_metric_names() -> set[str]:
    """Sample names of a live /metrics page with every quantum_trader metric touched once.

    Each labelled metric gets one child (label values "dashboard-check"), histograms one
    observation; the children are removed afterwards so other tests see clean collectors.
    """
    from quantum_trader.core import metrics

    touched: list[tuple[MetricWrapperBase, tuple[str, ...]]] = []
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labelnames = value._labelnames
        if not labelnames:
            continue
        values = tuple("dashboard-check" for _ in labelnames)
        value.labels(*values)
        touched.append((value, values))
    try:
        text = generate_latest(REGISTRY).decode()
    finally:
        for metric, values in touched:
            metric.remove(*values)
    names = {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, re.MULTILINE)}
    assert "qt_gate_decisions_total" in names and "qt_stage_latency_seconds_bucket" in names
    return names


def _all_queries(tool: Any) -> list[tuple[str, str, str]]:
    out = []
    for name, build in tool.DASHBOARDS.items():
        for title, expr in tool.iter_exprs(build()):
            out.append((name, title, expr))
    return out


def test_committed_dashboards_equal_the_regenerated_ones(dashboards_tool: Any) -> None:
    rendered = dashboards_tool.render()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert committed == rendered, "run python tools/dashboards.py"


def test_generation_is_deterministic(dashboards_tool: Any) -> None:
    assert dashboards_tool.render() == dashboards_tool.render()


def test_every_dashboard_query_names_only_exported_metrics(dashboards_tool: Any, exported_metric_names: set[str]) -> None:
    queries = _all_queries(dashboards_tool)
    assert len(queries) > 60
    unknown = []
    for board, title, expr in queries:
        names = dashboards_tool.metric_names_in(expr)
        assert names, f"{board} / {title}: no metric found in {expr!r}"
        unknown += [f"{board} / {title}: {n}" for n in sorted(names - exported_metric_names)]
    assert not unknown, "queries name metrics that the workers do not export:\n" + "\n".join(unknown)


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (profile) (rate(qt_gate_decision_total{profile=~"$profile"}[$__rate_interval]))',
        "histogram_quantile(0.95, sum by (le) (rate(qt_stage_latency_bucket[5m])))",
        "qt_executor_realised_pnl_usd + qt_executor_unrealized_pnl_usd",
    ],
    ids=["counter-without-s", "histogram-wrong-base", "british-spelling"],
)
def test_a_misspelled_metric_name_is_caught(dashboards_tool: Any, exported_metric_names: set[str], expr: str) -> None:
    assert dashboards_tool.metric_names_in(expr) - exported_metric_names


def test_metric_name_extraction_ignores_functions_labels_and_variables(dashboards_tool: Any) -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, worker) (rate(qt_stage_latency_seconds_bucket{profile=~"$profile",'
        'worker!="gate"}[$__rate_interval]))) * 1e3 + time() - qt_worker_heartbeat_timestamp_seconds offset 5m'
    )
    assert dashboards_tool.metric_names_in(expr) == {
        "qt_stage_latency_seconds_bucket",
        "qt_worker_heartbeat_timestamp_seconds",
    }


def _board(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _exprs(board: dict[str, Any]) -> str:
    return "\n".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))


@pytest.mark.parametrize(
    ("board", "must_query"),
    [
        ("funnel", ["qt_universe_size", "qt_ai_signals_total", "qt_router_intents_total", 'decision="EXECUTE"',
                    'decision="BLOCKED"', 'status="FILLED"', "qt_executor_positions_closed_total"]),
        ("gates", ["qt_gate_decisions_total", "qt_snapshot_coverage_ratio", "qt_snapshot_misses_total",
                   "qt_router_drops_total", "qt_router_capacity"]),
        ("trading", ["qt_executor_realized_pnl_usd", "qt_executor_open_positions", "qt_executor_results_total",
                     "qt_executor_slippage_bps_bucket", "qt_executor_fees_usd_total", "qt_gate_kill_score"]),
        ("health", ["qt_worker_heartbeat_timestamp_seconds", "qt_worker_up", "qt_bus_lag_entries",
                    "qt_bus_deadletter_total", "qt_universe_age_seconds", "qt_universe_hash_changes_total",
                    "qt_ai_model_info", "qt_ai_model_fallback", "qt_stage_latency_seconds_bucket"]),
    ],
)
def test_each_dashboard_shows_what_the_issue_asks_for(board: str, must_query: list[str]) -> None:
    exprs = _exprs(_board(board))
    missing = [m for m in must_query if m not in exprs]
    assert not missing, f"{board} lacks {missing}"


def test_gate_reasons_table_groups_decisions_by_reason() -> None:
    (table,) = [p for p in _board("gates")["panels"] if p["type"] == "table" and "Decision reasons" in p["title"]]
    (target,) = table["targets"]
    assert "by (profile, decision, reason)" in target["expr"] and target["format"] == "table"


@pytest.mark.parametrize("board", ["funnel", "gates", "trading", "health"])
def test_dashboard_is_per_profile_with_unique_ids_and_a_valid_grid(board: str) -> None:
    d = _board(board)
    assert d["uid"] == f"qt-{board}"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["profile"]["multi"] and variables["profile"]["includeAll"]
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            if "qt_exchange_" not in t["expr"]:
                assert 'profile=~"$profile"' in t["expr"], f"{board} / {p['title']}: not filtered by $profile"


def test_dashboard_json_files_are_exactly_the_four_generated(dashboards_tool: Any) -> None:
    assert sorted(p.name for p in Path(DASHBOARD_DIR).glob("*.json")) == sorted(dashboards_tool.render())
