"""One rule for time in ``qt check``, ``qt why`` and the operations commands.

A pipeline has two clocks. *Wall time* is the machine's clock: when an entry was
written (its Redis stream id), when a heartbeat was sent, how long ago you saw
something. *Pipeline time* is the clock the workers decide with and stamp into
every message's ``ts``: the same as wall time on Kubernetes and in ``qt run``
at ``--speed 1``, but ``speed`` times faster under ``qt run --speed X``.

The rule: windows and ages are **wall time** by default, so ``--window 5m`` means
the last five minutes you lived through and ``qt check`` counts what the live
view counts, whatever the speed; ``--clock sim`` measures both in pipeline time
instead. Validity (a universe's ``valid_until``, a snapshot's freshness) is always
judged in pipeline time, because that is how the workers judge it.

``qt run`` records the mapping between the two clocks in ``P:run:clock``
(:func:`clock_fields`); without it both clocks are taken to be the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

ClockMode: TypeAlias = Literal["wall", "sim"]
CLOCK_MODES: Final = ("wall", "sim")


@dataclass(frozen=True, slots=True)
class TimeBase:
    """A linear map between wall time and pipeline time: both in epoch ms.

    ``pipeline = anchor_sim_ms + (wall - anchor_wall_ms) * speed``.
    """

    speed: float = 1.0
    anchor_wall_ms: int = 0
    anchor_sim_ms: int = 0
    recorded: bool = False  # False: no P:run:clock, the clocks are assumed equal

    def sim_at(self, wall_ms: int) -> int:
        """Pipeline time at a wall instant."""
        return int(self.anchor_sim_ms + (wall_ms - self.anchor_wall_ms) * self.speed)

    def wall_at(self, sim_ms: int) -> int:
        """Wall instant at which the pipeline's clock showed ``sim_ms``."""
        return int(self.anchor_wall_ms + (sim_ms - self.anchor_sim_ms) / self.speed)

    def age_ms(self, *, sim_ts: int, wall_now_ms: int, clock: ClockMode) -> int:
        """How long ago a pipeline-time stamp was, measured on ``clock``; never negative."""
        if clock == "sim":
            return max(0, self.sim_at(wall_now_ms) - sim_ts)
        return max(0, wall_now_ms - self.wall_at(sim_ts))

    def span_ms(self, sim_span_ms: int, *, clock: ClockMode) -> int:
        """A stretch of pipeline time (e.g. time left until ``valid_until``) measured on ``clock``."""
        return int(sim_span_ms if clock == "sim" else sim_span_ms / self.speed)

    def window_in_other_clock(self, window_s: float, *, clock: ClockMode) -> float:
        """The same window measured on the other clock (a wall window of 5m is 5h of pipeline time at 60x)."""
        return window_s * self.speed if clock == "wall" else window_s / self.speed

    def describe(self) -> str:
        if self.speed == 1.0:
            return "pipeline clock = wall clock"
        return f"pipeline clock runs {self.speed:g}x wall time"


def clock_fields(*, speed: float, wall_ms: int, sim_ms: int) -> dict[str, str]:
    """The ``P:run:clock`` hash ``qt run`` writes at start-up."""
    return {"speed": repr(float(speed)), "anchor_wall_ms": str(int(wall_ms)), "anchor_sim_ms": str(int(sim_ms))}


def parse_clock(raw: Mapping[str, str] | None) -> TimeBase:
    """``HGETALL P:run:clock`` → :class:`TimeBase`; missing or malformed → the identity map."""
    if not raw:
        return TimeBase()
    try:
        speed = float(raw["speed"])
        wall = int(raw["anchor_wall_ms"])
        sim = int(raw["anchor_sim_ms"])
    except (KeyError, TypeError, ValueError):
        return TimeBase()
    if not speed > 0:
        return TimeBase()
    return TimeBase(speed=speed, anchor_wall_ms=wall, anchor_sim_ms=sim, recorded=True)
