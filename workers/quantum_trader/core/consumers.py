"""Which consumers of a group are dead, and the order rule for entries held by others (pure).

Every consume loop keeps ``Keys.consumer_alive(group, consumer)`` alive (``host|pid``,
TTL :data:`ALIVE_TTL_MS`, refreshed every :data:`ALIVE_REFRESH_S`). A consumer of the
group is dead when

* its key is gone and Redis has not seen it for :data:`KEYLESS_MIN_IDLE_MS` (a consumer
  killed with ``kill -9`` stops refreshing; a consumer of an older build has no key) — and
  still gone :data:`KEYLESS_RECHECK_S` later: a live consumer busy in its handler is idle
  too, and a stall (GC pause, CPU starvation, slow Redis) can let its key lapse; it
  refreshes as soon as it runs again, so one second look tells it from a dead one — or
* its key names this host and a process id that no longer runs (a restart on the same
  host or in the same pod is detected at once, without waiting for the TTL).

A dead consumer's pending entries are claimed by a live one, then the dead consumer is
removed from the group. Until then, an entry of ours whose ordering key (the symbol)
also has an *earlier* entry pending at another consumer is held back: within one
symbol nothing is handled out of stream order.

No liveness rule can tell a process starved for longer than the TTL on another host from a
dead one, so order must not depend on the verdict, and it does not:

* whether an earlier entry waits at another consumer is read in the same round trip as the
  entries it concerns (``Bus.read_new``: an ``XPENDING`` summary right after the read), never
  from a count of the group's consumers kept between sweeps — a consumer that joins, or that
  comes back from a stall after its entries were claimed and it was removed, is seen by the
  very next read of everyone else;
* the claim moves *all* of the judged consumer's pending entries at once, and the claimer
  handles them in stream order before any later entry of theirs it holds; the resumed
  consumer may still finish what it had in hand, but the stages write through exactly-once
  ledgers checked atomically with the write (the gate's and executor's scripts,
  ``publish_once``), so each entry's effect lands once — before the claimer's later entries,
  or not at all. A wrong verdict costs duplicate work, never order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

ALIVE_TTL_MS: Final = 3_000  # a killed consumer's key is gone at most this long after its last refresh
ALIVE_REFRESH_S: Final = 1.0
KEYLESS_MIN_IDLE_MS: Final = 1_000  # grace for a consumer without a key (older build, or starting)
SWEEP_INTERVAL_S: Final = 0.5  # how often a consume loop looks for dead consumers
KEYLESS_RECHECK_S: Final = 0.25  # a key found missing is looked up once more this much later


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """One row of ``XINFO CONSUMERS``."""

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True, slots=True)
class Liveness:
    host: str
    pid: int


def alive_value(host: str, pid: int) -> str:
    return f"{host}|{pid}"


def parse_alive(raw: bytes | str | None) -> Liveness | None:
    """The value of a consumer-alive key; None when missing or not ``host|pid``."""
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    host, sep, pid = text.rpartition("|")
    if not sep or not pid.isascii() or not pid.isdigit():
        return None
    return Liveness(host, int(pid))


def pid_running(pid: int) -> bool:
    """True when a process with this id exists on this host (or cannot be probed)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, it is someone else's
        return True
    return True


def is_dead(
    info: ConsumerInfo, alive: Liveness | None, *, host: str, pid_alive: Callable[[int], bool]
) -> bool:
    """Decide whether ``info`` is a dead consumer (see the module docstring)."""
    if alive is None:
        return info.idle_ms >= KEYLESS_MIN_IDLE_MS
    return alive.host == host and not pid_alive(alive.pid)


def stream_id(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` → ``(1700000000000, 3)`` (ids compare numerically, not as text)."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)


def earliest_by_key(held_elsewhere: Iterable[tuple[str, str | None]]) -> dict[str, tuple[int, int]]:
    """(entry id, ordering key) pending at other consumers → key → earliest id."""
    out: dict[str, tuple[int, int]] = {}
    for entry_id, key in held_elsewhere:
        if key is None:
            continue
        sid = stream_id(entry_id)
        if key not in out or sid < out[key]:
            out[key] = sid
    return out


def split_in_order(
    entries: Iterable[tuple[str, str | None]], *, blockers: Mapping[str, tuple[int, int]],
    stuck_keys: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """Entry ids (with ordering keys) → (ready, held), both in stream order.

    An entry is held when another consumer has an earlier pending entry of its key, or
    its key is in ``stuck_keys`` (an earlier entry of ours failed and waits for a retry).
    Entries without a key are always ready.
    """
    stuck = set(stuck_keys)
    ready: list[str] = []
    held: list[str] = []
    for entry_id, key in sorted(entries, key=lambda e: stream_id(e[0])):
        if key is not None and (key in stuck or (key in blockers and blockers[key] < stream_id(entry_id))):
            held.append(entry_id)
        else:
            ready.append(entry_id)
    return ready, held
