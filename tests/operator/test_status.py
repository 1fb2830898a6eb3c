"""The pure status builder: design vs reality, phases, conditions with reasons."""

from __future__ import annotations

from typing import Any

from quantum_operator.status import Observations, RedisObs, UniverseObs, WorkerObs, build_status
from quantum_trader.core.keys import WORKERS

NOW = 1_800_000_000_000
TRADING = ("ai", "router", "snapshot", "gate", "executor")


def workers(available: int = 1, *, paused: bool = False) -> tuple[WorkerObs, ...]:
    return tuple(
        WorkerObs(
            name=w,
            desired=0 if paused and w in TRADING else 1,
            available=0 if paused and w in TRADING else available,
        )
        for w in WORKERS
    )


def fresh_redis(**kw: Any) -> RedisObs:
    base: dict[str, Any] = {
        "reachable": True,
        "heartbeats_ms": {w: NOW - 5_000 for w in WORKERS},
        "universe": UniverseObs(
            hash="0123456789abcdef", count=10, generated_at_ms=NOW - 60_000, valid_until_ms=NOW + 3_600_000
        ),
        "funnel": {"signals": 40, "intents": 6, "decisions": 6, "executions": 4},
        "source": "env REDIS_URL",
    }
    base.update(kw)
    return RedisObs(**base)


def obs(**kw: Any) -> Observations:
    base: dict[str, Any] = {
        "generation": 3,
        "now_ms": NOW,
        "created_ms": NOW - 600_000,
        "config_hash": "ab" * 32,
        "workers": workers(),
        "redis": fresh_redis(),
    }
    base.update(kw)
    return Observations(**base)


def status(o: Observations, **kw: Any) -> dict[str, Any]:
    return build_status(o, stale_after_s=kw.pop("stale", 60.0), grace_s=kw.pop("grace", 120.0), **kw)


def cond(s: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in s["conditions"] if c["type"] == type_)


def test_everything_available_and_beating_is_running_with_universe_and_funnel() -> None:
    s = status(obs())
    assert s["phase"] == "Running"
    assert s["observedGeneration"] == 3
    assert [c["status"] for c in s["conditions"]] == ["True"] * 5
    assert s["universe"] == {
        "hash": "0123456789abcdef",
        "count": 10,
        "generatedAt": "2027-01-15T07:59:00Z",
        "validUntil": "2027-01-15T09:00:00Z",
    }
    assert s["funnel"] == {"windowSeconds": 300, "signals": 40, "intents": 6, "decisions": 6, "executions": 4}
    assert s["workers"]["gate"] == {
        "desired": 1,
        "available": 1,
        "lastHeartbeat": "2027-01-15T07:59:55Z",
        "heartbeatAgeSeconds": 5,
        "fresh": True,
    }


def test_available_deployment_with_stale_heartbeat_is_degraded_naming_the_worker() -> None:
    beats = {w: NOW - 5_000 for w in WORKERS} | {"gate": NOW - 300_000}
    s = status(obs(redis=fresh_redis(heartbeats_ms=beats)))
    assert s["phase"] == "Degraded"
    hb = cond(s, "HeartbeatsFresh")
    assert (hb["status"], hb["reason"]) == ("False", "StaleHeartbeat")
    assert "gate (300s ago)" in hb["message"] and "router" not in hb["message"]
    assert "gate" in s["message"]
    assert s["workers"]["gate"]["fresh"] is False


def test_available_deployment_that_never_beat_is_degraded_after_the_grace_and_pending_within_it() -> None:
    beats = {w: NOW - 5_000 for w in WORKERS if w != "executor"}
    late = status(obs(redis=fresh_redis(heartbeats_ms=beats)), grace=120.0)
    assert late["phase"] == "Degraded" and "executor (never)" in late["message"]
    young = status(obs(created_ms=NOW - 10_000, redis=fresh_redis(heartbeats_ms=beats)), grace=120.0)
    assert young["phase"] == "Pending"
    assert cond(young, "HeartbeatsFresh")["reason"] == "WaitingForHeartbeats"


def test_unavailable_workers_are_pending_within_the_grace_then_degraded() -> None:
    young = status(
        obs(created_ms=NOW - 10_000, workers=workers(available=0), redis=fresh_redis(heartbeats_ms={}))
    )
    assert young["phase"] == "Pending"
    assert cond(young, "WorkersAvailable")["status"] == "False"
    old = status(obs(workers=workers(available=0), redis=fresh_redis(heartbeats_ms={})))
    assert old["phase"] == "Degraded" and "not available: universe" in old["message"]


def test_unreachable_redis_is_degraded_naming_where_the_url_came_from() -> None:
    s = status(obs(redis=RedisObs(reachable=False, error="Connection refused", source="Secret qt-redis")))
    assert s["phase"] == "Degraded"
    assert "Redis unreachable (Secret qt-redis): Connection refused" in s["message"]
    assert cond(s, "HeartbeatsFresh")["reason"] == "RedisUnreachable"
    assert "funnel" not in s and "universe" not in s


def test_missing_secret_is_degraded_naming_the_secret() -> None:
    s = status(obs(missing_secrets=("binance-live",)))
    assert s["phase"] == "Degraded"
    c = cond(s, "ConfigApplied")
    assert (c["status"], c["reason"]) == ("False", "SecretMissing") and "binance-live" in c["message"]


def test_paused_profile_ignores_heartbeats_of_scaled_down_workers() -> None:
    beats = {"universe": NOW - 1_000}
    s = status(
        obs(paused=True, workers=workers(paused=True), redis=fresh_redis(heartbeats_ms=beats, funnel={}))
    )
    assert s["phase"] == "Paused"
    assert cond(s, "TradingFlowing")["reason"] == "Paused"
    assert cond(s, "HeartbeatsFresh")["status"] == "True"
    assert s["workers"]["router"]["desired"] == 0


def test_invalid_spec_is_failed_with_every_issue() -> None:
    s = status(obs(spec_error="spec.router.targetOpenOrders: must be <= maxOpenOrders (5 > 2)", workers=()))
    assert s["phase"] == "Failed"
    assert cond(s, "ConfigApplied")["reason"] == "InvalidSpec"
    assert "targetOpenOrders" in s["message"]


def test_expired_universe_is_degraded_and_no_executions_names_the_first_empty_stage() -> None:
    u = UniverseObs(hash="h", count=3, generated_at_ms=NOW - 7_200_000, valid_until_ms=NOW - 1)
    s = status(obs(redis=fresh_redis(universe=u, funnel={"signals": 5, "intents": 0})))
    assert s["phase"] == "Degraded"
    assert cond(s, "UniverseFresh")["reason"] == "Expired"
    assert cond(s, "TradingFlowing")["reason"] == "NoIntents"


def test_last_transition_time_is_kept_while_a_condition_keeps_its_status() -> None:
    first = status(obs(now_ms=NOW - 30_000))
    again = status(obs(), previous=first)
    assert (
        cond(again, "WorkersAvailable")["lastTransitionTime"]
        == cond(first, "WorkersAvailable")["lastTransitionTime"]
    )
    flipped = status(obs(workers=workers(available=0)), previous=first)
    assert (
        cond(flipped, "WorkersAvailable")["lastTransitionTime"]
        != cond(first, "WorkersAvailable")["lastTransitionTime"]
    )


def test_status_patch_nulls_vanished_map_keys_so_merge_patches_converge() -> None:
    from quantum_operator.handlers import status_patch

    old = {
        "phase": "Running",
        "universe": {"hash": "a", "count": 1},
        "workers": {"gate": {"lastHeartbeat": "t", "fresh": True}},
        "kopf": {"progress": {}},
    }
    new = {"phase": "Degraded", "workers": {"gate": {"fresh": False}}}
    assert status_patch(new, old) == {
        "phase": "Degraded",
        "universe": None,
        "workers": {"gate": {"fresh": False, "lastHeartbeat": None}},
    }


def test_admission_rules_are_qt_validate_lines_plus_the_child_name_length() -> None:
    from quantum_operator.reconcile import spec_issues

    spec, error = spec_issues(
        {"router": {"maxOpenOrders": 1, "targetOpenOrders": 2}, "gate": {"bogus": 1}}, name="x" * 41
    )
    assert spec is None
    assert error.splitlines() == [
        "metadata.name: at most 40 characters (child objects append '-executor', '-metrics') (got 41)",
        "spec.router.targetOpenOrders: must be <= maxOpenOrders (2 > 1)",
        "spec.gate.bogus: unknown field 'bogus'",
    ]
    ok, none = spec_issues({}, name="paper")
    assert ok is not None and none == ""
