"""Grafana dashboards as code: Funnel, Gates, Trading, Health.

    python tools/dashboards.py [--write]  # (re)write charts/quantum-trader/dashboards/*.json
    python tools/dashboards.py --check    # exit 1 when the committed JSON differs

Plain dicts, no Grafana SDK; output is deterministic (sorted keys, fixed uids and
panel ids) so a test can regenerate and compare. Every query may name only
metrics from ``quantum_trader.core.metrics`` (tests/deploy checks each
expression with :func:`metric_names_in` against a live ``/metrics`` text).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "charts" / "quantum-trader" / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}
P = 'profile=~"$profile"'
RI = "$__rate_interval"
EXECUTE = 'decision="EXECUTE"'
FILLED = 'status="FILLED"'
SCHEMA_VERSION = 39
WIDTH = 24


# -- PromQL metric-name extraction (used by the tests) -----------------------------------------

_FUNCS_AND_KEYWORDS = frozenset(
    """sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio
    by without on ignoring group_left group_right bool offset and or unless atan2 inf nan""".split()
)


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords, labels and variables removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^{}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery selectors
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names: set[str] = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("("):  # a function call
            continue
        if token in _FUNCS_AND_KEYWORDS or re.fullmatch(r"\d.*|e\d+", token):
            continue
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent or unit of a number literal (1e3)
        names.add(token)
    return names


def iter_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title or variable name, expression) for every query in a dashboard."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dashboard["templating"]["list"]:
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            yield f"${var['name']}", inner.group(1) if inner else query


# -- builders ----------------------------------------------------------------------------------


class Board:
    """Lays panels out left to right in rows of 24 columns, numbering them."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": len(self.panels) + 1,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = self._row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int = 8) -> None:
        if self._x + w > WIDTH:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += w
        self._row_h = max(self._row_h, h)

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["quantum-trader", *self.tags],
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "time": {"from": "now-3h", "to": "now"},
            "timezone": "utc",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "version": 1,
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["quantum-trader"],
                    "asDropdown": True,
                    "title": "Quantum Trader",
                    "includeVars": True,
                    "keepTime": True,
                }
            ],
            "templating": {"list": _variables()},
            "panels": self.panels,
        }


def _variables() -> list[dict[str, Any]]:
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        {
            "type": "query",
            "name": "profile",
            "label": "Profile",
            "datasource": DS,
            "definition": "label_values(qt_worker_up, profile)",
            "query": {"query": "label_values(qt_worker_up, profile)", "refId": "profile"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
            "regex": "",
        },
    ]


def _targets(queries: list[tuple[str, str]], *, instant: bool = False, table: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, (expr, legend) in enumerate(queries):
        t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
        if instant:
            t["instant"] = True
            t["range"] = False
        if table:
            t["format"] = "table"
        out.append(t)
    return out


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    stack: bool = False,
    draw: str = "line",
    overrides: list[dict[str, Any]] | None = None,
    minimum: float | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": 30 if stack else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults: dict[str, Any] = {"unit": unit, "custom": custom}
    if minimum is not None:
        defaults["min"] = minimum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background" if thresholds else "value",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
    }


def bargauge(title: str, queries: list[tuple[str, str]], *, description: str = "", unit: str = "short") -> dict[str, Any]:
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
    }


def table(
    title: str, expr: str, *, description: str = "", rename: dict[str, str] | None = None, sort_by: str = "Count"
) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets([(expr, "")], instant=True, table=True),
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": sort_by, "desc": True}]},
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": rename or {}, "indexByName": {}},
            }
        ],
    }


def rate(metric: str, by: str, extra: str = "", *, per: str = "") -> str:
    sel = f"{metric}{{{P}{',' + extra if extra else ''}}}"
    return f"sum by ({by}) (rate({sel}[{RI}])){per}"


def increase(metric: str, by: str, extra: str = "", window: str = "$__range") -> str:
    sel = f"{metric}{{{P}{',' + extra if extra else ''}}}"
    return f"sum by ({by}) (increase({sel}[{window}]))"


def quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{P}}}[{RI}])))"


# -- the four dashboards -----------------------------------------------------------------------


def funnel() -> dict[str, Any]:
    b = Board(
        "qt-funnel",
        "Quantum Trader / Funnel",
        "From universe to closed trade: how many symbols, signals, intents, decisions, fills and closed "
        "trades each stage passed on, per profile. A stage that narrows to zero is where to look.",
        ["funnel"],
    )
    b.row("Funnel over the selected time range")
    stages = [
        ("qt_universe_size", "universe size (now)", None),
        ("qt_ai_signals_total", "signals", ""),
        ("qt_router_intents_total", "intents", ""),
        ("qt_gate_decisions_total", "gate EXECUTE", 'decision="EXECUTE"'),
        ("qt_gate_decisions_total", "gate BLOCKED", 'decision="BLOCKED"'),
        ("qt_executor_results_total", "fills", 'status="FILLED"'),
        ("qt_executor_positions_closed_total", "closed trades", ""),
    ]
    queries = []
    for metric, legend, extra in stages:
        if extra is None:
            queries.append((f"sum by (profile) ({metric}{{{P}}})", f"{{{{profile}}}} {legend}"))
        else:
            queries.append((increase(metric, "profile", extra), f"{{{{profile}}}} {legend}"))
    b.add(
        bargauge(
            "Funnel: universe → signals → intents → gate → fills → closed",
            queries,
            description="Counts over the dashboard's time range (universe size: current value).",
        ),
        w=16,
        h=10,
    )
    b.add(
        stat(
            "Execute ratio",
            [
                (
                    f'{increase("qt_gate_decisions_total", "profile", EXECUTE)} / '
                    f'clamp_min({increase("qt_gate_decisions_total", "profile")}, 1)',
                    "{{profile}}",
                )
            ],
            unit="percentunit",
            description="Share of intents the gate let through over the time range.",
            thresholds=[(None, "red"), (0.05, "orange"), (0.2, "green")],
        ),
        w=8,
        h=5,
    )
    b.add(
        stat(
            "Fill ratio",
            [
                (
                    f'{increase("qt_executor_results_total", "profile", FILLED)} / '
                    f'clamp_min({increase("qt_gate_decisions_total", "profile", EXECUTE)}, 1)',
                    "{{profile}}",
                )
            ],
            unit="percentunit",
            description="Fills per EXECUTE decision over the time range (rejections lower it).",
            thresholds=[(None, "red"), (0.8, "orange"), (0.95, "green")],
        ),
        w=8,
        h=5,
    )
    b.row("Per stage over time (per minute)")
    b.add(
        timeseries(
            "Universe size",
            [(f"qt_universe_size{{{P}}}", "{{profile}}")],
            description="Symbols in the active universe. Zero means fail-closed or an expired universe.",
            minimum=0,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Universe funnel by stage (last cycle)",
            [(f"sum by (profile, stage) (qt_universe_funnel_symbols{{{P}}})", "{{profile}} {{stage}}")],
            description="Symbols remaining after each universe stage (discovery, health, liquidity, vetoes, top-N).",
            minimum=0,
        ),
        w=16,
    )
    b.add(
        timeseries(
            "Signals / min by side",
            [(rate("qt_ai_signals_total", "profile, side", per=" * 60"), "{{profile}} {{side}}")],
            stack=True,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Router: signals in → intents out / min",
            [
                (rate("qt_router_signals_total", "profile", per=" * 60"), "{{profile}} signals in"),
                (rate("qt_router_intents_total", "profile", per=" * 60"), "{{profile}} intents out"),
            ],
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Gate decisions / min",
            [(rate("qt_gate_decisions_total", "profile, decision", per=" * 60"), "{{profile}} {{decision}}")],
            stack=True,
            overrides=[_color("/EXECUTE/", "green"), _color("/BLOCKED/", "red")],
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Execution results / min",
            [(rate("qt_executor_results_total", "profile, status, mode", per=" * 60"), "{{profile}} {{status}} ({{mode}})")],
            stack=True,
            overrides=[_color("/FILLED/", "green"), _color("/REJECTED/", "red")],
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Closed trades / min by reason",
            [(rate("qt_executor_positions_closed_total", "profile, reason", per=" * 60"), "{{profile}} {{reason}}")],
            stack=True,
        ),
        w=12,
    )
    return b.to_json()


def gates() -> dict[str, Any]:
    b = Board(
        "qt-gates",
        "Quantum Trader / Gates",
        "Why intents were blocked or dropped: gate reasons, snapshot coverage, router drops and capacity.",
        ["gates"],
    )
    b.row("Gate decisions")
    b.add(
        table(
            "Decision reasons (selected time range)",
            f"sort_desc({increase('qt_gate_decisions_total', 'profile, decision, reason')})",
            description="The table of seed 000: every gate decision by reason code. 'none' is EXECUTE.",
            rename={"Value": "Count", "profile": "Profile", "decision": "Decision", "reason": "Reason"},
        ),
        w=10,
        h=10,
    )
    b.add(
        timeseries(
            "Blocked / min by reason",
            [(rate("qt_gate_decisions_total", "profile, reason", 'decision="BLOCKED"', per=" * 60"), "{{profile}} {{reason}}")],
            stack=True,
        ),
        w=14,
        h=10,
    )
    b.row("Snapshot")
    b.add(
        stat(
            "Snapshot coverage",
            [(f"qt_snapshot_coverage_ratio{{{P}}}", "{{profile}}")],
            unit="percentunit",
            description="Share of recent intent symbols that have a fresh exchange snapshot (seed 000: must be 100%).",
            thresholds=[(None, "red"), (0.9, "orange"), (0.999, "green")],
        ),
        w=6,
    )
    b.add(
        timeseries(
            "Snapshot coverage %",
            [(f"100 * qt_snapshot_coverage_ratio{{{P}}}", "{{profile}}")],
            unit="percent",
            minimum=0,
        ),
        w=9,
    )
    b.add(
        timeseries(
            "Snapshot misses / min",
            [(rate("qt_snapshot_misses_total", "profile", per=" * 60"), "{{profile}}")],
            description="Recent intent symbols without a fresh snapshot: each one becomes no_exchange_snapshot "
            "or stale_snapshot at the gate.",
        ),
        w=9,
    )
    b.add(
        timeseries(
            "Tradable symbols and top-K",
            [
                (f"qt_snapshot_tradable_symbols{{{P}}}", "{{profile}} tradable"),
                (f"qt_snapshot_top_k{{{P}}}", "{{profile}} top-K"),
                (f"sum by (profile, source) (qt_snapshot_allowlist_symbols{{{P}}})", "{{profile}} allowlist ({{source}})"),
            ],
            minimum=0,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Snapshot fetch latency (EWMA)",
            [(f"qt_snapshot_fetch_latency_seconds{{{P}}}", "{{profile}}")],
            unit="s",
        ),
        w=12,
    )
    b.row("Router")
    b.add(
        timeseries(
            "Router drops / min by reason",
            [(rate("qt_router_drops_total", "profile, reason", per=" * 60"), "{{profile}} {{reason}}")],
            description="LOW_CONFIDENCE_DROP, CAPACITY_UNKNOWN, CAPACITY_FULL, TARGET_REACHED, stale, duplicate, ...",
            stack=True,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Capacity: open orders vs target vs max",
            [(f"sum by (profile, kind) (qt_router_capacity{{{P}}})", "{{profile}} {{kind}}")],
            description="kind=open is state:open_orders as the router read it; target and max come from the profile.",
            overrides=[_color("/ max$/", "red"), _color("/ target$/", "orange"), _color("/ open$/", "blue")],
            minimum=0,
        ),
        w=12,
    )
    b.add(
        table(
            "Router drops by reason (selected time range)",
            f"sort_desc({increase('qt_router_drops_total', 'profile, reason')})",
            rename={"Value": "Count", "profile": "Profile", "reason": "Reason"},
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Router batches / min by outcome",
            [(rate("qt_router_batches_total", "profile, outcome", per=" * 60"), "{{profile}} {{outcome}}")],
            stack=True,
        ),
        w=12,
    )
    return b.to_json()


def trading() -> dict[str, Any]:
    b = Board(
        "qt-trading",
        "Quantum Trader / Trading",
        "Money: PnL, positions, fills, slippage, fees and the kill score.",
        ["trading"],
    )
    b.row("Now")
    b.add(stat("Realised PnL today", [(f"qt_executor_realized_pnl_usd{{{P}}}", "{{profile}}")], unit="currencyUSD",
               thresholds=[(None, "red"), (0, "green")]), w=6, h=5)
    b.add(stat("Unrealised PnL", [(f"qt_executor_unrealized_pnl_usd{{{P}}}", "{{profile}}")], unit="currencyUSD",
               thresholds=[(None, "red"), (0, "green")]), w=6, h=5)
    b.add(stat("Open positions", [(f"qt_executor_open_positions{{{P}}}", "{{profile}}")]), w=4, h=5)
    b.add(stat("Fees (range)", [(increase("qt_executor_fees_usd_total", "profile"), "{{profile}}")], unit="currencyUSD",
               decimals=2), w=4, h=5)
    b.add(
        stat(
            "Kill score",
            [(f"qt_gate_kill_score{{{P}}}", "{{profile}}")],
            description="≥ warning: risk-increasing intents blocked; ≥ critical: everything but reduce-only blocked.",
            thresholds=[(None, "green"), (0.6, "orange"), (0.8, "red")],
            decimals=2,
        ),
        w=4,
        h=5,
    )
    b.row("Over time")
    b.add(
        timeseries(
            "PnL (USD)",
            [
                (f"qt_executor_realized_pnl_usd{{{P}}}", "{{profile}} realised"),
                (f"qt_executor_unrealized_pnl_usd{{{P}}}", "{{profile}} unrealised"),
                (f"qt_executor_realized_pnl_usd{{{P}}} + qt_executor_unrealized_pnl_usd{{{P}}}", "{{profile}} total"),
            ],
            unit="currencyUSD",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Open positions and open orders",
            [
                (f"qt_executor_open_positions{{{P}}}", "{{profile}} positions"),
                (f"qt_executor_open_orders{{{P}}}", "{{profile}} state:open_orders"),
            ],
            minimum=0,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Fills / min by mode",
            [(rate("qt_executor_results_total", "profile, mode", 'status="FILLED"', per=" * 60"), "{{profile}} {{mode}}")],
            stack=True,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Rejections / min by reason",
            [(rate("qt_executor_rejections_total", "profile, reason", per=" * 60"), "{{profile}} {{reason}}")],
            stack=True,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Closed positions / min by reason",
            [(rate("qt_executor_positions_closed_total", "profile, reason", per=" * 60"), "{{profile}} {{reason}}")],
            stack=True,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Slippage (bps)",
            [
                (quantile(0.5, "qt_executor_slippage_bps", "profile"), "{{profile}} p50"),
                (quantile(0.95, "qt_executor_slippage_bps", "profile"), "{{profile}} p95"),
                (
                    f"sum by (profile) (rate(qt_executor_slippage_bps_sum{{{P}}}[{RI}])) / "
                    f"sum by (profile) (rate(qt_executor_slippage_bps_count{{{P}}}[{RI}]))",
                    "{{profile}} mean",
                ),
            ],
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Fees (USD / hour)",
            [(rate("qt_executor_fees_usd_total", "profile", per=" * 3600"), "{{profile}}")],
            unit="currencyUSD",
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Kill score",
            [(f"qt_gate_kill_score{{{P}}}", "{{profile}}")],
            minimum=0,
        ),
        w=8,
    )
    return b.to_json()


def health() -> dict[str, Any]:
    b = Board(
        "qt-health",
        "Quantum Trader / Health",
        "Are the workers alive and keeping up: heartbeats, bus lag, dead letters, universe freshness, "
        "the model in use, stage latencies.",
        ["health"],
    )
    b.row("Workers")
    b.add(
        stat(
            "Workers up",
            [(f"qt_worker_up{{{P}}}", "{{profile}} {{worker}}")],
            mappings=[
                {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}
            ],
            thresholds=[(None, "red"), (1, "green")],
        ),
        w=12,
        h=6,
    )
    b.add(
        stat(
            "Heartbeat age",
            [(f"time() - qt_worker_heartbeat_timestamp_seconds{{{P}}}", "{{profile}} {{worker}}")],
            unit="s",
            description="Seconds since each worker last wrote its heartbeat.",
            thresholds=[(None, "green"), (30, "orange"), (120, "red")],
        ),
        w=12,
        h=6,
    )
    b.add(
        timeseries(
            "Ready workers",
            [(f"sum by (profile) (qt_worker_ready{{{P}}})", "{{profile}} ready"),
             (f"sum by (profile) (qt_worker_up{{{P}}})", "{{profile}} up")],
            minimum=0,
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Processed entries / s by worker",
            [(rate("qt_worker_processed_total", "profile, worker"), "{{profile}} {{worker}}")],
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Errors / min by worker and kind",
            [(rate("qt_worker_errors_total", "profile, worker, kind", per=" * 60"), "{{profile}} {{worker}} {{kind}}")],
        ),
        w=8,
    )
    b.row("Bus")
    b.add(
        timeseries(
            "Bus lag per consumer group",
            [(f"sum by (profile, stream, group) (qt_bus_lag_entries{{{P}}})", "{{profile}} {{group}} ← {{stream}}")],
            description="Entries not yet delivered plus pending, per consumer group.",
            minimum=0,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Dead letters / min",
            [(rate("qt_bus_deadletter_total", "profile, stream, reason", per=" * 60"), "{{profile}} {{stream}} {{reason}}")],
            description="Messages that failed validation or handling; inspect with XRANGE on stream:deadletter.",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Published / s by stream",
            [(rate("qt_bus_published_total", "profile, stream"), "{{profile}} {{stream}}")],
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Reclaimed entries and Redis reconnects / min",
            [
                (rate("qt_bus_reclaimed_total", "profile, group", per=" * 60"), "{{profile}} reclaimed {{group}}"),
                (rate("qt_bus_reconnects_total", "profile, worker", per=" * 60"), "{{profile}} reconnects {{worker}}"),
            ],
        ),
        w=12,
    )
    b.row("Universe and model")
    b.add(stat("Universe age", [(f"qt_universe_age_seconds{{{P}}}", "{{profile}}")], unit="s",
               thresholds=[(None, "green"), (3600, "orange"), (7200, "red")]), w=6, h=5)
    b.add(stat("Universe stuck", [(f"qt_universe_stuck{{{P}}}", "{{profile}}")],
               description="1 when universe_hash has not changed for universe.stuckAlertAfter.",
               mappings=[{"type": "value", "options": {"0": {"text": "OK", "color": "green"},
                                                        "1": {"text": "STUCK", "color": "red"}}}],
               thresholds=[(None, "green"), (1, "red")]), w=6, h=5)
    b.add(stat("Model fallback", [(f"qt_ai_model_fallback{{{P}}}", "{{profile}}")],
               description="1 while no trained model is loaded and signals come from model=fallback-*.",
               mappings=[{"type": "value", "options": {"0": {"text": "trained", "color": "green"},
                                                        "1": {"text": "FALLBACK", "color": "orange"}}}],
               thresholds=[(None, "green"), (1, "orange")]), w=6, h=5)
    b.add(stat("Model age", [(f"qt_ai_model_age_seconds{{{P}}}", "{{profile}}")], unit="s"), w=6, h=5)
    b.add(
        timeseries(
            "Universe age and hash changes",
            [
                (f"qt_universe_age_seconds{{{P}}}", "{{profile}} age"),
                (increase("qt_universe_hash_changes_total", "profile", window="1h"), "{{profile}} hash changes / h"),
            ],
            overrides=[{"matcher": {"id": "byRegexp", "options": "/age$/"},
                        "properties": [{"id": "unit", "value": "s"}, {"id": "custom.axisPlacement", "value": "right"}]}],
        ),
        w=8,
    )
    b.add(
        timeseries(
            "Universe cycles / h by outcome",
            [(rate("qt_universe_cycles_total", "profile, outcome", per=" * 3600"), "{{profile}} {{outcome}}")],
            description="published vs fail_closed (fail-closed publishes nothing new).",
            stack=True,
        ),
        w=8,
    )
    b.add(
        table(
            "Model version in use",
            f"max by (profile, version) (qt_ai_model_info{{{P}}} == 1)",
            rename={"profile": "Profile", "version": "Version", "Value": "In use"},
            sort_by="Profile",
        ),
        w=8,
    )
    b.row("Latency")
    b.add(
        timeseries(
            "Stage latency p95 by worker",
            [(quantile(0.95, "qt_stage_latency_seconds", "profile, worker"), "{{profile}} {{worker}}")],
            unit="s",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "AI inference and universe cycle p95",
            [
                (quantile(0.95, "qt_ai_inference_seconds", "profile"), "{{profile}} ai inference"),
                (quantile(0.95, "qt_universe_cycle_seconds", "profile"), "{{profile}} universe cycle"),
            ],
            unit="s",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Exchange requests / min by outcome",
            [(f"sum by (profile, exchange, outcome) (rate(qt_exchange_requests_total{{{P}}}[{RI}])) * 60",
              "{{profile}} {{exchange}} {{outcome}}")],
            description="Requests the exchange adapter made (sim and replay answer in-process: endpoint 'local', 0).",
        ),
        w=12,
    )
    return b.to_json()


def _color(regex: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


DASHBOARDS = {"funnel": funnel, "gates": gates, "trading": trading, "health": health}


def render() -> dict[str, str]:
    """File name → JSON text, deterministic."""
    return {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Grafana dashboards of the chart.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    parser.add_argument("--write", action="store_true", help="write the files (the default; for `make dashboards`)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    if stale:
        print(f"stale dashboards: {', '.join(stale)} (run python tools/dashboards.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
