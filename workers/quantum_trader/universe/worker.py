"""The universe worker: one cycle every ``universe.refreshInterval``, publish, metrics, log lines.

Start-up re-checks that a production profile is strict (the profile model already
refuses otherwise; this guards a profile that reached us some other way) and
exits non-zero with one ``UNIVERSE_REFUSED`` line if not. No environment
variable is consulted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from quantum_trader.core import metrics
from quantum_trader.core.clock import Clock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import HealthSettings, UniverseSettings
from quantum_trader.core.service import release_free_memory
from quantum_trader.market.base import Exchange
from quantum_trader.universe import publication as pub
from quantum_trader.universe.cycle import CycleResult, Published, publish, run_cycle

if TYPE_CHECKING:
    from quantum_trader.core.service import WorkerContext

GAUGE_INTERVAL_S: Final = 15.0  # clock seconds between age/stuck/expiry gauge updates
REFUSED_EXIT_CODE: Final = 2
PRODUCTION_NOT_STRICT: Final = "production_requires_strict_health"


def strictness_refusal(*, environment: str, health: HealthSettings) -> str | None:
    """A reason to refuse to run, or None. Production is always strict; nothing can turn it off."""
    if environment == "production" and health.strict is not True:
        return PRODUCTION_NOT_STRICT
    return None


@dataclass(frozen=True, slots=True)
class UniverseConfig:
    """What the universe worker is given (built by ``quantum_trader.compose``)."""

    universe: UniverseSettings
    health: HealthSettings
    environment: str = "paper"  # the profile's top-level ``environment``: production is always strict


@dataclass
class UniverseState:
    """What the shell remembers between cycles (never decision input except ``previous``)."""

    previous: dict[str, Any] | None = None  # the active document as last written/read
    drop_reasons: set[str] = field(default_factory=set)  # reason labels set last cycle (to zero them)
    expired_logged: str = ""  # hash whose expiry was logged
    stuck_logged: str = ""  # hash whose stuck alert was logged


def update_gauges(*, profile: str, state: UniverseState, now_ms: int, stuck_after_s: float, log: EventLog) -> None:
    """Universe size / age / stuck gauges from the active document (and one log line per expiry)."""
    doc = state.previous
    symbols = pub.active_symbols(doc, now_ms=now_ms)
    metrics.UNIVERSE_SIZE.labels(profile).set(len(symbols))
    age = pub.age_seconds(doc, now_ms=now_ms)
    metrics.UNIVERSE_AGE.labels(profile).set(age if age is not None else 0.0)
    stuck = pub.is_stuck(doc, now_ms=now_ms, stuck_after_s=stuck_after_s)
    metrics.UNIVERSE_STUCK.labels(profile).set(1 if stuck else 0)
    h = str(doc.get("universe_hash", "")) if doc else ""
    if stuck and state.stuck_logged != h:
        state.stuck_logged = h
        log.warn("UNIVERSE_STUCK", hash=h, since=doc.get("hash_since") if doc else None, after_s=stuck_after_s)
    if doc is not None and not symbols and doc.get("count") and state.expired_logged != h:
        state.expired_logged = h
        log.warn("UNIVERSE_EXPIRED", hash=h, valid_until=doc.get("valid_until"), now=now_ms)


def record_cycle(
    *, profile: str, result: CycleResult, published: Published | None, seconds: float, state: UniverseState
) -> None:
    outcome = "published" if published is not None else ("computed" if result.ok else "fail_closed")
    metrics.UNIVERSE_CYCLES.labels(profile, outcome).inc()
    metrics.UNIVERSE_CYCLE_SECONDS.labels(profile).observe(seconds)
    if not result.ok:
        return
    for stage, n in result.stages:
        metrics.UNIVERSE_FUNNEL.labels(profile, stage).set(n)
    counts = {reason: len(syms) for reason, syms in result.drops_by_reason().items()}
    for reason in state.drop_reasons - set(counts):
        metrics.UNIVERSE_DROPS.labels(profile, reason).set(0)
    for reason, n in counts.items():
        metrics.UNIVERSE_DROPS.labels(profile, reason).set(n)
    state.drop_reasons = set(counts)
    metrics.UNIVERSE_REPAIRS.labels(profile, "repaired").set(len(result.repaired))
    metrics.UNIVERSE_REPAIRS.labels(profile, "still_stale").set(len(result.still_unhealthy))
    if published is not None and published.hash_changed:
        metrics.UNIVERSE_HASH_CHANGES.labels(profile).inc()


async def cycle_once(
    *,
    config: UniverseConfig,
    keys: Keys,
    exchange: Exchange,
    clock: Clock,
    log: EventLog,
    state: UniverseState,
    redis: Any | None,
) -> tuple[CycleResult, Published | None]:
    """Run one cycle; publish it when ``redis`` is given and the cycle did not fail closed."""
    started = time.perf_counter()
    result = await run_cycle(
        exchange, universe=config.universe, health=config.health, now_ms=clock.now_ms(), log=log
    )
    published: Published | None = None
    if not result.ok:
        log.error("UNIVERSE_FAIL_CLOSED", reason=result.reason, error=result.detail, published="nothing")
    elif redis is not None:
        published = await publish(
            redis, keys, result, universe=config.universe, previous=state.previous
        )
        state.previous = published.document
    seconds = time.perf_counter() - started
    record_cycle(profile=keys.profile, result=result, published=published, seconds=seconds, state=state)
    update_gauges(
        profile=keys.profile, state=state, now_ms=clock.now_ms(), stuck_after_s=config.universe.stuck_alert_after,
        log=log,
    )
    if published is not None:
        doc = published.document
        log.event(
            "UNIVERSE_PUBLISHED",
            hash=doc["universe_hash"],
            count=doc["count"],
            valid_until=doc["valid_until"],
            last_ok=published.last_ok,
            hash_changed=published.hash_changed,
            merged=len(result.merges),
            repaired=len(result.repaired),
            still_unhealthy=len(result.still_unhealthy),
            compute_ms=round(result.compute_ms, 1),
            cycle_ms=round(seconds * 1000, 1),
        )
    return result, published


async def main(ctx: WorkerContext, config: UniverseConfig) -> None:
    refusal = strictness_refusal(environment=config.environment, health=config.health)
    if refusal is not None:
        ctx.log.error("UNIVERSE_REFUSED", reason=refusal, environment=config.environment,
                      strict=config.health.strict)
        raise SystemExit(REFUSED_EXIT_CODE)
    state = UniverseState(previous=await pub.read_document(ctx.redis, ctx.keys.universe_active))
    ctx.mark_ready()
    refresh_ms = int(config.universe.refresh_interval * 1000)
    while not ctx.stop.is_set():
        try:
            await cycle_once(
                config=config, keys=ctx.keys, exchange=ctx.exchange, clock=ctx.clock, log=ctx.log, state=state,
                redis=ctx.redis,
            )
            ctx.processed(1)
            release_free_memory()  # the cycle's arrays are garbage now; keep the idle RSS small
        except Exception as exc:  # exchange unavailable, Redis gone: nothing published, retry next cycle
            ctx.error("cycle")
            metrics.UNIVERSE_CYCLES.labels(ctx.profile_name, "fail_closed").inc()
            ctx.log.error("UNIVERSE_CYCLE_FAILED", error=f"{type(exc).__name__}: {exc}", published="nothing")
        next_at = ctx.clock.now_ms() + refresh_ms
        while True:
            now = ctx.clock.now_ms()
            update_gauges(
                profile=ctx.profile_name, state=state, now_ms=now,
                stuck_after_s=config.universe.stuck_alert_after, log=ctx.log,
            )
            if now >= next_at:
                break
            if await ctx.sleep(min((next_at - now) / 1000.0, GAUGE_INTERVAL_S)):
                return
