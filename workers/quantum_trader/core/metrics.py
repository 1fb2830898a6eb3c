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
BUILD_INFO: Final = Info("qt_build", "Quantum Trader build information", ["profile"])
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
SNAPSHOT_SKIPPED: Final = Counter(
    "qt_snapshot_skipped_symbols_total", "Candidates skipped in a cycle (no price), by reason (unknown_symbol, ...)",
    ["profile", "reason"],
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
    "qt_exchange_requests_total", "Exchange requests by endpoint and outcome",
    ["profile", "exchange", "endpoint", "outcome"],
)
EXCHANGE_WEIGHT: Final = Gauge(
    "qt_exchange_weight_used", "Request weight used in the current minute", ["profile", "exchange"]
)

# -- operator ----------------------------------------------------------------------------------
OPERATOR_RECONCILES: Final = Counter(
    "qt_operator_reconciles_total", "Reconciles by outcome", ["namespace", "profile", "outcome"]
)
OPERATOR_RECONCILE_SECONDS: Final = Histogram(
    "qt_operator_reconcile_seconds", "Duration of one reconcile", ["namespace", "profile"], buckets=LATENCY_BUCKETS
)


def reason_code(reason: str) -> str:
    """``cooldown:BTCUSDT`` → ``cooldown`` (bounded label values)."""
    return reason.split(":", 1)[0]


# -- the profile this process serves ------------------------------------------------------------
_bound_profile: list[str] = [""]


def bind_profile(name: str) -> None:
    """The profile this process serves (one per process): labels metrics whose code has no profile at hand,
    such as the exchange adapter's."""
    _bound_profile[0] = name


def bound_profile() -> str:
    return _bound_profile[0]


# -- every label value known in advance: exported as 0 from start-up ------------------------------
# A dashboard must tell zero from broken, so each worker's series exist before the first event.
# Reason codes are the workers' (a test checks these lists against their constants).

GATE_DECISION_REASONS: Final = (
    "paused", "duplicate", "stale_intent", "symbol_not_in_allowlist", "no_exchange_snapshot", "stale_snapshot",
    "kill_score_critical", "kill_score_warning_risk_increase", "cooldown", "exposure_limit", "leverage_limit",
    "daily_loss_limit",
)
ROUTER_DROP_REASONS: Final = (
    "hold", "low_confidence", "paused", "capacity_unknown", "capacity_full", "target_reached", "stale",
    "duplicate", "not_tradable", "not_selected", "invalid_atr", "position_open", "negative_edge",
    "position_renewed", "position_reversed",
)
ROUTER_BATCH_OUTCOMES: Final = (
    "empty", "paused", "capacity_unknown", "capacity_full", "target_reached", "published", "none_selected",
)
ROUTER_CAPACITY_KINDS: Final = ("open", "target", "max")
SNAPSHOT_ALLOWLIST_SOURCES: Final = ("active", "last_ok", "profile", "env")
EXEC_STATUSES: Final = ("FILLED", "REJECTED")
EXEC_REJECTION_REASONS: Final = (
    "no_new_positions", "unknown_symbol", "no_price", "stale_price", "position_exists", "no_position",
    "reduce_only_side_mismatch", "below_min_notional", "liquidation_before_stop", "min_notional", "max_qty",
    "intent_unknown", "executor_error", "decision_lost",
)
EXEC_CLOSE_REASONS: Final = ("stop_loss", "take_profit", "time", "signal", "manual", "kill", "reconcile")
EXEC_RECONCILE_KINDS: Final = (
    "adopted_unknown_position", "dropped_missing_position", "position_corrected", "open_orders_corrected",
)
UNIVERSE_STAGES: Final = ("listed", "discovered", "merged", "eligible", "healthy", "featured", "vetted", "selected")
UNIVERSE_DROP_REASONS: Final = (
    "not_perpetual", "not_trading", "quote_not_supported", "merged_duplicate", "stable_asset", "no_ticker",
    "low_liquidity", "no_klines", "too_few_bars", "stale", "gaps", "bad_timestamps", "nan_values", "bad_prices",
    "constant_price", "zero_volume", "non_finite_feature", "low_efficiency", "toxic_persistence", "high_friction",
    "cluster_full", "below_cutoff",
)
UNIVERSE_CYCLE_OUTCOMES: Final = ("published", "fail_closed")
UNIVERSE_REPAIR_OUTCOMES: Final = ("repaired", "still_stale")
AI_SIDES: Final = ("BUY", "SELL", "HOLD")
AI_FALLBACK_MODEL: Final = "fallback-trend"
AI_SKIP_REASONS: Final = (
    "too_little_history", "stale", "gaps", "nan_heavy", "bad_prices", "fetch_failed", "features_nan",
)
DEADLETTER_CODES: Final = ("unparseable", "max_deliveries_exceeded", "malformed", "non_utf8")
SNAPSHOT_SKIP_REASONS: Final = ("unknown_symbol",)
WORKER_ERROR_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "universe": ("crash", "cycle"),
    "ai": ("crash", "bar", "model_corrupt"),
    "router": ("crash", "handler"),
    "snapshot": ("crash", "handler", "exchange", "cycle"),
    "gate": ("crash", "handler"),
    "executor": ("crash", "handler"),
}
# stream (short name) → consumer group, per consuming worker; streams each worker publishes.
WORKER_CONSUMES: Final[dict[str, tuple[str, ...]]] = {
    "router": ("ai.signal",), "snapshot": ("trade.intent",), "gate": ("trade.intent",),
    "executor": ("gate.decision",),
}
WORKER_PUBLISHES: Final[dict[str, tuple[str, ...]]] = {
    "universe": ("policy.audit",), "ai": ("ai.signal",), "router": ("trade.intent", "router.drop"),
    "gate": ("gate.decision",), "executor": ("execution.result", "position.event", "reconcile.event"),
}
BINANCE_ENDPOINTS: Final = (
    "GET /fapi/v1/exchangeInfo", "GET /fapi/v1/klines", "GET /fapi/v1/ticker/24hr", "GET /fapi/v1/ticker/bookTicker",
    "GET /fapi/v1/premiumIndex", "GET /fapi/v1/fundingRate", "GET /fapi/v1/openOrders", "GET /fapi/v1/order",
    "POST /fapi/v1/order", "DELETE /fapi/v1/order", "GET /fapi/v1/algoOrder", "POST /fapi/v1/algoOrder",
    "DELETE /fapi/v1/algoOrder", "GET /fapi/v1/userTrades", "GET /fapi/v3/positionRisk",
)
LOCAL_ENDPOINT: Final = "local"  # sim and replay answer in-process: no request is counted


def _zero(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    metric.labels(*labels)  # a labelled child starts at 0 (a histogram with empty buckets)


def initialise(profile: str, *, workers: tuple[str, ...] | list[str], exchange: str, mode: str) -> None:
    """Create every series ``workers`` export, at 0, so dashboards see them before the first event."""
    bind_profile(profile)
    p = profile
    for w in workers:
        for m in (WORKER_UP, WORKER_READY, WORKER_HEARTBEAT_TS, BUS_RECONNECTS, STAGE_LATENCY):
            _zero(m, p, w)
        for kind in WORKER_ERROR_KINDS.get(w, ("crash",)):
            _zero(WORKER_ERRORS, p, w, kind)
        for stream in WORKER_CONSUMES.get(w, ()):
            _zero(WORKER_PROCESSED, p, w, stream)
            _zero(BUS_LAG, p, stream, w)
            _zero(BUS_RECLAIMED, p, stream, w)
            _zero(BUS_CONSUMERS_REMOVED, p, stream, w)
            _zero(BUS_HELD, p, stream, w)
            for code in DEADLETTER_CODES:
                _zero(BUS_DEADLETTER, p, stream, code)
        for stream in WORKER_PUBLISHES.get(w, ()):
            _zero(BUS_PUBLISHED, p, stream)
    if "universe" in workers:
        for m in (UNIVERSE_SIZE, UNIVERSE_AGE, UNIVERSE_HASH_CHANGES, UNIVERSE_STUCK, UNIVERSE_CYCLE_SECONDS):
            _zero(m, p)
        for stage in UNIVERSE_STAGES:
            _zero(UNIVERSE_FUNNEL, p, stage)
        for reason in UNIVERSE_DROP_REASONS:
            _zero(UNIVERSE_DROPS, p, reason)
        for outcome in UNIVERSE_CYCLE_OUTCOMES:
            _zero(UNIVERSE_CYCLES, p, outcome)
        for outcome in UNIVERSE_REPAIR_OUTCOMES:
            _zero(UNIVERSE_REPAIRS, p, outcome)
    if "ai" in workers:
        for m in (AI_CONFIDENCE, AI_MODEL_FALLBACK, AI_MODEL_AGE, AI_INFERENCE_SECONDS):
            _zero(m, p)
        for side in AI_SIDES:
            _zero(AI_SIGNALS, p, side, AI_FALLBACK_MODEL)
        for reason in AI_SKIP_REASONS:
            _zero(AI_SKIPPED, p, reason)
    if "router" in workers:
        for m in (ROUTER_SIGNALS, ROUTER_INTENTS, ROUTER_LEADER):
            _zero(m, p)
        for reason in ROUTER_DROP_REASONS:
            _zero(ROUTER_DROPS, p, reason)
        for outcome in ROUTER_BATCH_OUTCOMES:
            _zero(ROUTER_BATCHES, p, outcome)
        for kind in ROUTER_CAPACITY_KINDS:
            _zero(ROUTER_CAPACITY, p, kind)
    if "snapshot" in workers:
        for m in (SNAPSHOT_COVERAGE, SNAPSHOT_MISSES, SNAPSHOT_SYMBOLS, SNAPSHOT_TOP_K, SNAPSHOT_FETCH_LATENCY):
            _zero(m, p)
        for source in SNAPSHOT_ALLOWLIST_SOURCES:
            _zero(SNAPSHOT_ALLOWLIST, p, source)
        for reason in SNAPSHOT_SKIP_REASONS:
            _zero(SNAPSHOT_SKIPPED, p, reason)
    if "gate" in workers:
        _zero(GATE_KILL_SCORE, p)
        _zero(GATE_DECISIONS, p, "EXECUTE", "none")
        for reason in GATE_DECISION_REASONS:
            _zero(GATE_DECISIONS, p, "BLOCKED", reason)
    if "executor" in workers:
        for m in (EXEC_SLIPPAGE_BPS, EXEC_FEES_USD, EXEC_REALIZED_PNL, EXEC_UNREALIZED_PNL, EXEC_OPEN_POSITIONS,
                  EXEC_OPEN_ORDERS):
            _zero(m, p)
        for status in EXEC_STATUSES:
            _zero(EXEC_RESULTS, p, status, mode)
        for reason in EXEC_REJECTION_REASONS:
            _zero(EXEC_REJECTIONS, p, reason)
        for reason in EXEC_CLOSE_REASONS:
            _zero(EXEC_CLOSED, p, reason)
        for kind in EXEC_RECONCILE_KINDS:
            _zero(EXEC_RECONCILE, p, kind)
    network = exchange == "binanceusdm"
    for endpoint in BINANCE_ENDPOINTS if network else (LOCAL_ENDPOINT,):
        _zero(EXCHANGE_REQUESTS, p, exchange, endpoint, "ok")
    _zero(EXCHANGE_WEIGHT, p, exchange)
