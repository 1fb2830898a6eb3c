"""Every reason code a worker can export is among the label values initialised to zero at start-up."""

from __future__ import annotations

from types import ModuleType
from typing import get_args

import pytest
from prometheus_client import REGISTRY
from quantum_trader.ai import data as ai_data
from quantum_trader.core import metrics
from quantum_trader.core.messages import CloseReason
from quantum_trader.executor import batch as executor_batch
from quantum_trader.executor import core as executor_core
from quantum_trader.executor import reconcile as executor_reconcile
from quantum_trader.executor import worker as executor_worker
from quantum_trader.gate import core as gate_core
from quantum_trader.market import binance_parse
from quantum_trader.router import core as router_core
from quantum_trader.universe import model as universe_model


def constants(module: ModuleType, prefix: str) -> set[str]:
    return {v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, str)}


def test_gate_reasons_are_all_known() -> None:
    codes = {metrics.reason_code(r) for r in constants(gate_core, "REASON_")} - {"none"}
    codes |= {metrics.reason_code(gate_core.reason_cooldown("X")), metrics.reason_code(gate_core.reason_not_in_allowlist("X"))}
    assert codes == set(metrics.GATE_DECISION_REASONS) == set(gate_core.REASONS)


def test_router_reasons_and_outcomes_are_all_known() -> None:
    assert set(router_core.REASONS) == set(metrics.ROUTER_DROP_REASONS)  # every code the router can drop with
    assert set(get_args(router_core.Outcome)) == set(metrics.ROUTER_BATCH_OUTCOMES)


def test_executor_reasons_are_all_known() -> None:
    rejects = (constants(executor_core, "REJECT_") | constants(executor_batch, "REJECT_")
               | constants(executor_worker, "REJECT_"))
    assert rejects <= set(metrics.EXEC_REJECTION_REASONS)
    assert set(executor_core.REASONS) <= set(metrics.EXEC_REJECTION_REASONS)  # every code plan_execution rejects with
    assert set(get_args(CloseReason)) - {"none"} == set(metrics.EXEC_CLOSE_REASONS)
    kinds = {executor_reconcile.ADOPTED, executor_reconcile.DROPPED, executor_reconcile.CORRECTED,
             executor_reconcile.OPEN_ORDERS}
    assert kinds == set(metrics.EXEC_RECONCILE_KINDS)


def test_universe_stages_and_reasons_and_ai_skips_are_all_known() -> None:
    assert constants(universe_model, "STAGE_") == set(metrics.UNIVERSE_STAGES)
    assert constants(universe_model, "R_") == set(metrics.UNIVERSE_DROP_REASONS)
    assert constants(ai_data, "SKIP_") == set(metrics.AI_SKIP_REASONS)


def test_binance_endpoints_are_all_known() -> None:
    assert {e.label for e in binance_parse.ENDPOINTS.values()} == set(metrics.BINANCE_ENDPOINTS)


@pytest.mark.parametrize("worker", ["gate", "executor", "universe"])
def test_a_worker_exports_its_series_at_zero_from_start_up_with_the_profile_label(worker: str) -> None:
    metrics.initialise("zero-check", workers=[worker], exchange="sim", mode="paper")
    samples = [s for m in REGISTRY.collect() for s in m.samples if s.labels.get("profile") == "zero-check"]
    names = {s.name for s in samples}
    assert "qt_exchange_requests_total" in names and "qt_worker_up" in names
    if worker == "gate":
        blocked = {s.labels["reason"] for s in samples if s.name == "qt_gate_decisions_total"}
        assert blocked == {"none", *metrics.GATE_DECISION_REASONS}
        assert "qt_executor_open_positions" not in names  # a gate pod exports no executor gauges
    assert all(s.value == 0 for s in samples if s.name.endswith("_total"))


def test_every_metric_has_a_profile_label() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    unlabelled = [m._name for m in vars(metrics).values()
                  if isinstance(m, MetricWrapperBase) and "profile" not in m._labelnames]
    assert unlabelled == []
