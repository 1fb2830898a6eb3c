"""Shell gauges and metrics: size drops to 0 at valid_until (one UNIVERSE_EXPIRED line), the stuck
alert after stuckAlertAfter (one UNIVERSE_STUCK line), drop-reason gauges reset between cycles."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY
from quantum_trader.core.logs import EventLog
from quantum_trader.universe.cycle import CycleResult
from quantum_trader.universe.model import Drop
from quantum_trader.universe.publication import build_document
from quantum_trader.universe.worker import UniverseState, record_cycle, update_gauges

T0 = 1_800_000_000_000
P = "gauges"


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"profile": P, **labels})


def events(caplog: pytest.LogCaptureFixture, name: str) -> int:
    return sum(1 for r in caplog.records if getattr(r, "qt_event", "") == name)


def test_size_age_expiry_and_stuck_gauges_follow_the_active_document(caplog: pytest.LogCaptureFixture) -> None:
    doc = build_document(symbols=[{"symbol": "BTCUSDT", "rank": 1}], timeframes=("1h",), generated_at=T0,
                         valid_for_s=3600, hash_since=T0 - 5 * 3600_000, checks={})
    state = UniverseState(previous=doc)
    log = EventLog(worker="universe", profile=P)
    with caplog.at_level(logging.INFO):
        update_gauges(profile=P, state=state, now_ms=T0 + 60_000, stuck_after_s=6 * 3600, log=log)
        assert gauge("qt_universe_size") == 1 and gauge("qt_universe_age_seconds") == 60
        assert gauge("qt_universe_stuck") == 0
        for _ in range(2):
            update_gauges(profile=P, state=state, now_ms=T0 + 3600_000, stuck_after_s=6 * 3600, log=log)
        assert gauge("qt_universe_size") == 0 and gauge("qt_universe_stuck") == 1
    assert events(caplog, "UNIVERSE_EXPIRED") == 1 and events(caplog, "UNIVERSE_STUCK") == 1


def test_drop_reason_gauges_are_reset_when_a_reason_disappears() -> None:
    state = UniverseState()
    first = CycleResult(outcome="ok", now_ms=T0, timeframes=("1h",), stages=(("listed", 2),),
                        drops={"AUSDT": Drop("vetted", "high_friction"), "BUSDT": Drop("eligible", "low_liquidity")})
    record_cycle(profile=P, result=first, published=None, seconds=0.1, state=state)
    assert gauge("qt_universe_dropped_symbols", reason="high_friction") == 1
    second = CycleResult(outcome="ok", now_ms=T0, timeframes=("1h",), stages=(("listed", 1),),
                         drops={"BUSDT": Drop("eligible", "low_liquidity")})
    record_cycle(profile=P, result=second, published=None, seconds=0.1, state=state)
    assert gauge("qt_universe_dropped_symbols", reason="high_friction") == 0
    assert gauge("qt_universe_funnel_symbols", stage="listed") == 1
    failed = CycleResult(outcome="fail_closed", now_ms=T0, timeframes=("1h",), reason="discovery_failed")
    before = gauge("qt_universe_cycles_total", outcome="fail_closed") or 0
    record_cycle(profile=P, result=failed, published=None, seconds=0.1, state=state)
    assert gauge("qt_universe_cycles_total", outcome="fail_closed") == before + 1
