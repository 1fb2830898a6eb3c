"""The status builder: a pure function over what the reconcile observed.

Design vs reality (seed 003): the Deployments say what *should* run, the
heartbeats in Redis say what *does* run. A worker whose Deployment is available
but whose heartbeat is stale or missing makes the profile ``Degraded`` and the
message names it.

Phase, first match wins:
    Failed    the spec is invalid (nothing is applied)
    Degraded  apply failed, a referenced Secret is missing, Redis is unreachable, an available
              worker's heartbeat is stale, or (after the start-up grace) a worker is still
              unavailable or the universe is missing/expired
    Paused    spec.paused (trading workers at zero replicas, universe running)
    Pending   workers starting or first heartbeats/universe not yet seen (within the grace)
    Running   otherwise
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from quantum_operator.crd import CONDITION_TYPES

CondStatus = Literal["True", "False", "Unknown"]
FUNNEL_WINDOW_S: Final = 300
FUNNEL_STAGES: Final = ("signals", "intents", "decisions", "executions")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerObs:
    name: str
    desired: int
    available: int
    found: bool = True  # the Deployment exists


@dataclass(frozen=True, slots=True, kw_only=True)
class UniverseObs:
    hash: str
    count: int
    generated_at_ms: int
    valid_until_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisObs:
    reachable: bool
    error: str = ""
    heartbeats_ms: Mapping[str, int] = field(default_factory=dict)  # worker → ts (epoch ms)
    universe: UniverseObs | None = None
    funnel: Mapping[str, int] = field(default_factory=dict)  # stage → entries in the window
    source: str = ""  # where the URL came from (env REDIS_URL / Secret name), for messages


@dataclass(frozen=True, slots=True, kw_only=True)
class Observations:
    generation: int
    now_ms: int
    created_ms: int
    paused: bool = False
    spec_error: str = ""  # non-empty: the spec is invalid (one line per issue)
    applied: bool = True
    apply_error: str = ""
    config_hash: str = ""
    missing_secrets: tuple[str, ...] = ()
    workers: tuple[WorkerObs, ...] = ()
    redis: RedisObs | None = None  # None: Redis not configured for the operator


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str
    status: CondStatus
    reason: str
    message: str


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _join(items: Sequence[str]) -> str:
    return ", ".join(items)


def _conditions(
    obs: Observations, *, stale_after_s: float, grace_s: float
) -> tuple[list[Condition], list[str], list[str]]:
    """Conditions, plus the problems (→ Degraded) and the things still starting (→ Pending)."""
    problems: list[str] = []
    starting: list[str] = []
    in_grace = (obs.now_ms - obs.created_ms) < grace_s * 1000
    conds: list[Condition] = []

    # ConfigApplied
    if obs.spec_error:
        conds.append(
            Condition(type="ConfigApplied", status="False", reason="InvalidSpec", message=obs.spec_error)
        )
    elif not obs.applied:
        conds.append(
            Condition(type="ConfigApplied", status="False", reason="ApplyFailed", message=obs.apply_error)
        )
        problems.append(f"apply failed: {obs.apply_error}")
    elif obs.missing_secrets:
        msg = f"Secret {_join(obs.missing_secrets)} not found: workers cannot start"
        conds.append(Condition(type="ConfigApplied", status="False", reason="SecretMissing", message=msg))
        problems.append(msg)
    else:
        conds.append(
            Condition(
                type="ConfigApplied",
                status="True",
                reason="Applied",
                message=f"config-hash {obs.config_hash[:12]}",
            )
        )

    # WorkersAvailable
    wanted = [w for w in obs.workers if w.desired > 0]
    unavailable = [w.name for w in wanted if w.available < w.desired]
    if obs.spec_error and not obs.workers:
        conds.append(
            Condition(
                type="WorkersAvailable", status="Unknown", reason="InvalidSpec", message="spec rejected"
            )
        )
    elif unavailable:
        msg = f"not available: {_join(unavailable)}"
        conds.append(Condition(type="WorkersAvailable", status="False", reason="Unavailable", message=msg))
        (starting if in_grace else problems).append(msg)
    else:
        zero = [w.name for w in obs.workers if w.desired == 0]
        msg = f"{len(wanted)}/{len(obs.workers)} running" + (
            f"; scaled to zero: {_join(zero)}" if zero else ""
        )
        conds.append(Condition(type="WorkersAvailable", status="True", reason="Available", message=msg))

    # HeartbeatsFresh (design vs reality)
    redis = obs.redis
    if redis is None:
        conds.append(
            Condition(
                type="HeartbeatsFresh",
                status="Unknown",
                reason="RedisNotConfigured",
                message="operator has no REDIS_URL",
            )
        )
    elif not redis.reachable:
        msg = f"Redis unreachable ({redis.source}): {redis.error}"
        conds.append(
            Condition(type="HeartbeatsFresh", status="Unknown", reason="RedisUnreachable", message=msg)
        )
        problems.append(msg)
    else:
        stale: list[str] = []
        missing: list[str] = []
        for w in wanted:
            ts = redis.heartbeats_ms.get(w.name)
            if ts is None:
                missing.append(w.name)
            elif obs.now_ms - ts > stale_after_s * 1000:
                stale.append(f"{w.name} ({(obs.now_ms - ts) // 1000}s ago)")
        available = {w.name for w in wanted if w.available >= w.desired}
        lying = [s for s in stale if s.split(" ", 1)[0] in available] + [
            f"{m} (never)" for m in missing if m in available and not in_grace
        ]
        if lying:
            msg = f"Deployment available but heartbeat stale: {_join(lying)}"
            conds.append(
                Condition(type="HeartbeatsFresh", status="False", reason="StaleHeartbeat", message=msg)
            )
            problems.append(msg)
        elif stale or missing:
            waiting = stale + [f"{m} (never)" for m in missing]
            msg = f"waiting for heartbeats: {_join(waiting)}"
            conds.append(
                Condition(type="HeartbeatsFresh", status="False", reason="WaitingForHeartbeats", message=msg)
            )
            starting.append(msg)
        else:
            conds.append(
                Condition(
                    type="HeartbeatsFresh",
                    status="True",
                    reason="Fresh",
                    message=f"{len(wanted)} workers beating",
                )
            )

    # UniverseFresh
    if redis is None or not redis.reachable:
        conds.append(
            Condition(
                type="UniverseFresh",
                status="Unknown",
                reason="RedisUnavailable",
                message="cannot read the universe",
            )
        )
    elif redis.universe is None:
        msg = "no universe published yet"
        conds.append(Condition(type="UniverseFresh", status="False", reason="NoUniverse", message=msg))
        (starting if in_grace else problems).append(msg)
    elif redis.universe.valid_until_ms and redis.universe.valid_until_ms < obs.now_ms:
        until = iso(redis.universe.valid_until_ms)
        msg = f"universe {redis.universe.hash} expired at {until} (fail-closed: empty)"
        conds.append(Condition(type="UniverseFresh", status="False", reason="Expired", message=msg))
        problems.append(msg)
    else:
        u = redis.universe
        msg = f"{u.count} symbols, hash {u.hash}, generated {iso(u.generated_at_ms)}"
        conds.append(Condition(type="UniverseFresh", status="True", reason="Fresh", message=msg))

    # TradingFlowing (informational: a quiet market is not a fault)
    if obs.paused:
        conds.append(
            Condition(
                type="TradingFlowing",
                status="False",
                reason="Paused",
                message="spec.paused: trading workers scaled to zero",
            )
        )
    elif redis is None or not redis.reachable:
        conds.append(
            Condition(
                type="TradingFlowing",
                status="Unknown",
                reason="RedisUnavailable",
                message="cannot read the streams",
            )
        )
    else:
        counts = {s: int(redis.funnel.get(s, 0)) for s in FUNNEL_STAGES}
        summary = " → ".join(f"{s} {counts[s]}" for s in FUNNEL_STAGES)
        if counts["executions"] > 0:
            conds.append(
                Condition(
                    type="TradingFlowing", status="True", reason="Executing", message=f"last 5m: {summary}"
                )
            )
        else:
            first_empty = next(s for s in FUNNEL_STAGES if counts[s] == 0)
            reason = "No" + first_empty.capitalize()
            conds.append(
                Condition(type="TradingFlowing", status="False", reason=reason, message=f"last 5m: {summary}")
            )

    if [c.type for c in conds] != list(CONDITION_TYPES):  # a programming error, not bad input
        raise RuntimeError(f"condition order drifted: {[c.type for c in conds]}")
    return conds, problems, starting


def build_status(
    obs: Observations,
    *,
    stale_after_s: float,
    grace_s: float,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole ``status`` object. ``previous`` keeps lastTransitionTime of unchanged conditions."""
    conds, problems, starting = _conditions(obs, stale_after_s=stale_after_s, grace_s=grace_s)
    if obs.spec_error:
        phase, message = "Failed", obs.spec_error
    elif problems:
        phase, message = "Degraded", "; ".join(problems)
    elif obs.paused:
        phase, message = "Paused", "trading workers scaled to zero; universe running"
    elif starting:
        phase, message = "Pending", "; ".join(starting)
    else:
        phase, message = "Running", "all workers available and beating"

    prev_conds = {
        c.get("type"): c for c in (previous or {}).get("conditions", []) or [] if isinstance(c, Mapping)
    }
    now = iso(obs.now_ms)
    conditions = []
    for c in conds:
        before = prev_conds.get(c.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == c.status else None
        conditions.append(
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since or now,
                "observedGeneration": obs.generation,
            }
        )

    status: dict[str, Any] = {
        "phase": phase,
        "message": message,
        "observedGeneration": obs.generation,
        "conditions": conditions,
    }
    if obs.config_hash:
        status["configHash"] = obs.config_hash
    workers: dict[str, Any] = {}
    for w in obs.workers:
        entry: dict[str, Any] = {"desired": w.desired, "available": w.available}
        if obs.redis is not None and obs.redis.reachable:
            ts = obs.redis.heartbeats_ms.get(w.name)
            if ts is not None:
                age = max(0, (obs.now_ms - ts) // 1000)
                entry["lastHeartbeat"] = iso(ts)
                entry["heartbeatAgeSeconds"] = int(age)
                entry["fresh"] = obs.now_ms - ts <= stale_after_s * 1000
            else:
                entry["fresh"] = False
        workers[w.name] = entry
    if workers:
        status["workers"] = workers
    if obs.redis is not None and obs.redis.reachable:
        u = obs.redis.universe
        if u is not None:
            status["universe"] = {
                "hash": u.hash,
                "count": u.count,
                "generatedAt": iso(u.generated_at_ms) if u.generated_at_ms else "",
                "validUntil": iso(u.valid_until_ms) if u.valid_until_ms else "",
            }
        status["funnel"] = {
            "windowSeconds": FUNNEL_WINDOW_S,
            **{s: int(obs.redis.funnel.get(s, 0)) for s in FUNNEL_STAGES},
        }
    return status
