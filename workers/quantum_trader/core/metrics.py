"""Every Prometheus metric the workers export, in one place.

Dashboards (charts/quantum-trader/dashboards) query only names defined here; a
test collects the names from a live ``/metrics`` and checks every panel.
Every metric carries a ``profile`` label so several TradingProfiles can share a
Prometheus. Reason labels are reason *codes* (``cooldown``, not
``cooldown:BTCUSDT``) to keep cardinality bounded.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, Info

LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- every worker (service shell and bus) ------------------------------------------------------
BUILD_INFO: Final = Info("qt_build", "Quantum Trader build information")
WORKER_UP: Final = Gauge("qt_worker_up", "1 while the worker loop runs", ["profile", "worker"])
WORKER_READY: Final = Gauge("qt_worker_ready", "1 when the worker is ready", ["profile", "worker"])
WORKER_HEARTBEAT_TS: Final = Gauge(
    "qt_worker_heartbeat_timestamp_seconds", "Last heartbeat written (epoch s)", ["profile", "worker"]
)
WORKER_PROCESSED: Final = Counter(
    "qt_worker_processed_total", "Stream entries handled and acked", ["profile", "worker", "stream"]
)
WORKER_ERRORS: Final = Counter("qt_worker_errors_total", "Handler or loop errors", ["profile", "worker", "kind"])
STAGE_LATENCY: Final = Histogram(
    "qt_stage_latency_seconds",
    "Handling time of one batch per worker stage",
    ["profile", "worker"],
    buckets=LATENCY_BUCKETS,
)
BUS_PUBLISHED: Final = Counter("qt_bus_published_total", "Entries published", ["profile", "stream"])
BUS_DEADLETTER: Final = Counter(
    "qt_bus_deadletter_total", "Entries sent to the dead-letter stream", ["profile", "stream", "reason"]
)
BUS_RECLAIMED: Final = Counter(
    "qt_bus_reclaimed_total", "Pending entries reclaimed from dead consumers", ["profile", "stream", "group"]
)
BUS_CONSUMERS_REMOVED: Final = Counter(
    "qt_bus_consumers_removed_total", "Dead consumers removed from their group after their entries were claimed",
    ["profile", "stream", "group"],
)
BUS_HELD: Final = Gauge(
    "qt_bus_held_entries", "Entries held back because an earlier entry of the same symbol is pending elsewhere",
    ["profile", "stream", "group"],
)
BUS_LAG: Final = Gauge(
    "qt_bus_lag_entries", "Entries not yet delivered plus pending, per group", ["profile", "stream", "group"]
)
BUS_RECONNECTS: Final = Counter("qt_bus_reconnects_total", "Redis reconnections", ["profile", "worker"])

# -- universe ----------------------------------------------------------------------------------
UNIVERSE_FUNNEL: Final = Gauge(
    "qt_universe_funnel_symbols", "Symbols remaining after each stage (last cycle)", ["profile", "stage"]
)
UNIVERSE_DROPS: Final = Gauge(
    "qt_universe_dropped_symbols", "Symbols dropped per reason code (last cycle)", ["profile", "reason"]
)
UNIVERSE_SIZE: Final = Gauge("qt_universe_size", "Symbols in the active universe", ["profile"])
UNIVERSE_AGE: Final = Gauge("qt_universe_age_seconds", "Age of the active universe", ["profile"])
UNIVERSE_HASH_CHANGES: Final = Counter(
    "qt_universe_hash_changes_total", "Publications whose hash differs from the previous", ["profile"]
)
UNIVERSE_STUCK: Final = Gauge(
    "qt_universe_stuck", "1 when universe_hash has not changed for universe.stuckAlertAfter", ["profile"]
)
UNIVERSE_CYCLES: Final = Counter(
    "qt_universe_cycles_total", "Universe cycles by outcome (published|fail_closed)", ["profile", "outcome"]
)
UNIVERSE_CYCLE_SECONDS: Final = Histogram(
    "qt_universe_cycle_seconds", "Duration of one universe cycle", ["profile"], buckets=LATENCY_BUCKETS
)
UNIVERSE_REPAIRS: Final = Gauge(
    "qt_universe_repair_symbols", "Symbols repaired or still stale after repair (last cycle)", ["profile", "outcome"]
)

# -- ai ----------------------------------------------------------------------------------------
AI_SIGNALS: Final = Counter("qt_ai_signals_total", "Signals emitted", ["profile", "side", "model"])
AI_CONFIDENCE: Final = Histogram(
    "qt_ai_confidence",
    "Confidence of emitted signals",
    ["profile"],
    buckets=(0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0),
)
AI_MODEL_FALLBACK: Final = Gauge("qt_ai_model_fallback", "1 while a fallback model is in use", ["profile"])
AI_MODEL_INFO: Final = Gauge("qt_ai_model_info", "1 for the model version in use", ["profile", "version"])
AI_MODEL_AGE: Final = Gauge("qt_ai_model_age_seconds", "Age of the model in use", ["profile"])
AI_INFERENCE_SECONDS: Final = Histogram(
    "qt_ai_inference_seconds", "Features + prediction per bar close", ["profile"], buckets=LATENCY_BUCKETS
)
AI_SKIPPED: Final = Counter("qt_ai_skipped_symbols_total", "Symbols skipped with a reason", ["profile", "reason"])

# -- router ------------------------------------------------------------------------------------
ROUTER_SIGNALS: Final = Counter("qt_router_signals_total", "Signals received", ["profile"])
ROUTER_DROPS: Final = Counter("qt_router_drops_total", "Candidates dropped per reason", ["profile", "reason"])
ROUTER_INTENTS: Final = Counter("qt_router_intents_total", "Intents published", ["profile"])
ROUTER_BATCHES: Final = Counter("qt_router_batches_total", "Batches by outcome", ["profile", "outcome"])
ROUTER_CAPACITY: Final = Gauge(
    "qt_router_capacity", "Open orders vs target vs max (kind=open|target|max)", ["profile", "kind"]
)
ROUTER_LEADER: Final = Gauge("qt_router_leader", "1 while this replica holds the router lease", ["profile"])

# -- snapshot ----------------------------------------------------------------------------------
SNAPSHOT_COVERAGE: Final = Gauge(
    "qt_snapshot_coverage_ratio", "Share of recent intent symbols with a fresh snapshot", ["profile"]
)
SNAPSHOT_MISSES: Final = Counter(
    "qt_snapshot_misses_total", "Recent intent symbols without a fresh snapshot", ["profile"]
)
SNAPSHOT_SYMBOLS: Final = Gauge("qt_snapshot_tradable_symbols", "Symbols in cfg:tradable_symbols", ["profile"])
SNAPSHOT_TOP_K: Final = Gauge("qt_snapshot_top_k", "Current top-K", ["profile"])
SNAPSHOT_FETCH_LATENCY: Final = Gauge(
    "qt_snapshot_fetch_latency_seconds", "EWMA of the per-symbol fetch latency", ["profile"]
)
SNAPSHOT_ALLOWLIST: Final = Gauge(
    "qt_snapshot_allowlist_symbols", "Allowlist size by the tier that served it", ["profile", "source"]
)

# -- gate --------------------------------------------------------------------------------------
GATE_DECISIONS: Final = Counter(
    "qt_gate_decisions_total", "Decisions by decision and reason code", ["profile", "decision", "reason"]
)
GATE_KILL_SCORE: Final = Gauge("qt_gate_kill_score", "Current kill score (0..1)", ["profile"])

# -- executor ----------------------------------------------------------------------------------
EXEC_RESULTS: Final = Counter(
    "qt_executor_results_total", "Execution results by status and mode", ["profile", "status", "mode"]
)
EXEC_REJECTIONS: Final = Counter("qt_executor_rejections_total", "Rejections by reason", ["profile", "reason"])
EXEC_SLIPPAGE_BPS: Final = Histogram(
    "qt_executor_slippage_bps", "Fill slippage (bps)", ["profile"], buckets=(0, 1, 2, 3, 5, 7.5, 10, 15, 25, 50)
)
EXEC_FEES_USD: Final = Counter("qt_executor_fees_usd_total", "Fees paid (USD)", ["profile"])
EXEC_REALIZED_PNL: Final = Gauge("qt_executor_realized_pnl_usd", "Realised PnL since start of day", ["profile"])
EXEC_UNREALIZED_PNL: Final = Gauge("qt_executor_unrealized_pnl_usd", "Unrealised PnL of open positions", ["profile"])
EXEC_OPEN_POSITIONS: Final = Gauge("qt_executor_open_positions", "Open positions", ["profile"])
EXEC_OPEN_ORDERS: Final = Gauge("qt_executor_open_orders", "Value of state:open_orders", ["profile"])
EXEC_CLOSED: Final = Counter("qt_executor_positions_closed_total", "Closed positions by reason", ["profile", "reason"])
EXEC_RECONCILE: Final = Counter("qt_executor_reconcile_total", "Reconciliation gaps by kind", ["profile", "kind"])

# -- exchange adapter --------------------------------------------------------------------------
EXCHANGE_REQUESTS: Final = Counter(
    "qt_exchange_requests_total", "Exchange requests by endpoint and outcome", ["exchange", "endpoint", "outcome"]
)
EXCHANGE_WEIGHT: Final = Gauge("qt_exchange_weight_used", "Request weight used in the current minute", ["exchange"])

# -- operator ----------------------------------------------------------------------------------
OPERATOR_RECONCILES: Final = Counter(
    "qt_operator_reconciles_total", "Reconciles by outcome", ["namespace", "profile", "outcome"]
)
OPERATOR_RECONCILE_SECONDS: Final = Histogram(
    "qt_operator_reconcile_seconds", "Duration of one reconcile", ["namespace"], buckets=LATENCY_BUCKETS
)


def reason_code(reason: str) -> str:
    """``cooldown:BTCUSDT`` → ``cooldown`` (bounded label values)."""
    return reason.split(":", 1)[0]
