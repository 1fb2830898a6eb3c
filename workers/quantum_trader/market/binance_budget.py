"""A request-weight budget per minute shared by every worker of a profile (Redis ``Keys.rate_budget``).

Binance limits request weight per IP and minute (2400 on USDⓈ-M futures). Each
worker's ccxt instance paces its own calls (``enableRateLimit``), but six workers
and their replicas share one IP, so before a call each adds its weight to a
counter in Redis for the current minute window: one Lua script does
``INCRBY`` on the window's counter (with an expiry of two windows) unless that
would pass the budget. Over budget, the caller waits for the next window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from redis.exceptions import RedisError

from quantum_trader.core import metrics
from quantum_trader.core.clock import Clock
from quantum_trader.core.logs import EventLog

WINDOW_MS: Final = 60_000
DEFAULT_BUDGET: Final = 2000  # of Binance's 2400 per minute: leave headroom for manual tools

# KEYS[1] = budget hash; ARGV = window id, weight, budget, ttl ms.
# The hash holds the current window id and the weight used in it; a newer window resets it.
_ACQUIRE: Final = """
local w = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local cur = tonumber(redis.call('HGET', KEYS[1], 'window') or '-1')
if cur < w then
  redis.call('HSET', KEYS[1], 'window', w, 'used', 0)
end
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
if used > 0 and used + weight > budget then
  return {0, used}
end
used = redis.call('HINCRBY', KEYS[1], 'used', weight)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, used}
"""


class _Script(Protocol):
    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    used: int
    wait_s: float  # until the next window when not granted


def window_of(now_ms: int) -> int:
    return now_ms // WINDOW_MS


def wait_for_next_window(now_ms: int) -> float:
    return ((window_of(now_ms) + 1) * WINDOW_MS - now_ms) / 1000.0


class WeightBudget:
    """Shared weight budget. ``await budget.acquire(weight)`` returns when the weight fits this minute."""

    def __init__(
        self,
        redis: Any,
        *,
        key: str,
        clock: Clock,
        budget: int = DEFAULT_BUDGET,
        exchange: str = "binanceusdm",
        log: EventLog | None = None,
        max_wait_s: float = 120.0,
    ) -> None:
        self._script: _Script = redis.register_script(_ACQUIRE)
        self._key = key
        self._clock = clock
        self._budget = budget
        self._exchange = exchange
        self._log = log or EventLog(component="rate_budget")
        self._max_wait_s = max_wait_s

    async def try_acquire(self, weight: int) -> Grant:
        now = self._clock.now_ms()
        raw = await self._script(
            keys=[self._key], args=[window_of(now), max(0, weight), self._budget, 2 * WINDOW_MS]
        )
        granted, used = int(raw[0]), int(raw[1])
        metrics.EXCHANGE_WEIGHT.labels(metrics.bound_profile(), self._exchange).set(used)
        return Grant(granted=granted == 1, used=used, wait_s=0.0 if granted else wait_for_next_window(now))

    async def acquire(self, weight: int, *, endpoint: str = "") -> None:
        """Wait until ``weight`` fits in the shared budget (at most ``max_wait_s``, then go anyway)."""
        if weight <= 0:
            return
        waited = 0.0
        while True:
            try:
                grant = await self.try_acquire(weight)
            except (RedisError, OSError) as exc:  # no shared budget: ccxt's own pacing still applies
                self._log.warn("RATE_BUDGET_UNAVAILABLE", endpoint=endpoint, error=type(exc).__name__)
                return
            if grant.granted:
                return
            if waited >= self._max_wait_s:
                self._log.warn("RATE_BUDGET_WAIT_EXCEEDED", endpoint=endpoint, used=grant.used, budget=self._budget)
                return
            self._log.event(
                "RATE_BUDGET_WAIT", endpoint=endpoint, used=grant.used, budget=self._budget, wait_s=grant.wait_s
            )
            wait = min(grant.wait_s + 0.05, self._max_wait_s)
            waited += wait
            await self._clock.sleep(wait)


def attach_shared_budget(
    exchange: object,
    *,
    redis: Any,
    key: str,
    clock: Clock,
    log: EventLog | None = None,
    budget: int = DEFAULT_BUDGET,
) -> bool:
    """Give an exchange adapter that supports it (``attach_budget``) the profile's shared budget.

    ``key`` is ``Keys(profile).rate_budget``. Returns False (and does nothing) for adapters
    without request weights (sim, replay).
    """
    attach = getattr(exchange, "attach_budget", None)
    if attach is None:
        return False
    attach(WeightBudget(redis, key=key, clock=clock, budget=budget, log=log))
    return True
