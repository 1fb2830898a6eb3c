"""Clocks behind one Protocol: wall time for production, virtual time for the sim, data time for
replays and backtests.

Decision code never reads a clock; shells pass ``clock.now_ms()`` into it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Time source. ``now_ms`` is epoch milliseconds; ``sleep`` waits in the clock's own time."""

    def now_ms(self) -> int: ...

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that runs ``speed`` times faster than real time from ``start_ms``.

    ``speed=60`` makes one real second one simulated minute; ``sleep(60)`` then
    takes one real second. Every process given the same ``start_ms``, ``speed``
    and real start sees the same virtual time.
    """

    def __init__(self, *, start_ms: int, speed: float = 1.0, real_start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._start_ms = start_ms
        self._speed = speed
        self._real_start = time.time() if real_start is None else real_start

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._start_ms / 1000.0 + (time.time() - self._real_start) * self._speed

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class ManualClock:
    """A clock that moves only when told (unit tests of shells)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._ms = start_ms

    def now(self) -> float:
        return self._ms / 1000.0

    def now_ms(self) -> int:
        return self._ms

    def advance(self, seconds: float) -> None:
        self._ms += int(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class DataClock:
    """Time taken from market data (replay, backtests): it stands still until moved.

    ``qt train`` / ``qt universe`` on a replay exchange stand at the data's last bar close;
    a backtest moves it bar by bar with :meth:`advance_to`. It never moves backwards, and
    ``sleep`` moves it forward by the slept time (a worker that waits lets data time pass).
    """

    def __init__(self, start_ms: int) -> None:
        self._ms = int(start_ms)

    def now(self) -> float:
        return self._ms / 1000.0

    def now_ms(self) -> int:
        return self._ms

    def advance_to(self, ms: int) -> None:
        """Move to ``ms``; a time before now is ignored (data time is monotonic)."""
        self._ms = max(self._ms, int(ms))

    async def sleep(self, seconds: float) -> None:
        self._ms += max(0, int(seconds * 1000))
        await asyncio.sleep(0)
