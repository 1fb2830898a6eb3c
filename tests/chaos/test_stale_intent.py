"""A delayed opening intent is refused as ``stale_intent``; a delayed close still goes through."""

from __future__ import annotations

from quantum_trader.core.profile import GateSettings
from quantum_trader.gate.core import decide

from tests.gate.test_core import NOW, intent, pos, view

S = GateSettings(max_intent_age=30.0)


def test_opening_intent_older_than_max_intent_age_is_blocked_as_stale_intent() -> None:
    delayed = intent().model_copy(update={"ts": NOW - 40_000})  # the 40 s delay
    verdict = decide(delayed, view(), settings=S, now_ms=NOW)
    assert (verdict.decision, verdict.reason) == ("BLOCKED", "stale_intent")


def test_intent_just_inside_the_limit_executes() -> None:
    fresh = intent().model_copy(update={"ts": NOW - 29_000})
    assert decide(fresh, view(), settings=S, now_ms=NOW).reason == "none"


def test_delayed_reduce_only_close_is_not_refused_for_its_age() -> None:
    close = intent(side="SELL", reduce_only=True).model_copy(update={"ts": NOW - 600_000})
    verdict = decide(close, view(positions={"BTCUSDT": pos()}), settings=S, now_ms=NOW)
    assert verdict.reason == "none"


