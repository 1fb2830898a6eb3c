"""Newest-first scans of capped streams (``XREVRANGE`` in chunks), shared by ``qt check`` and ``qt why``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import redis

from quantum_trader.core.messages import decode_raw

CHUNK: Final = 1000
SCAN_LIMIT: Final = 200_000

Fields = dict[str, str]


def _s(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def ts_of(fields: Fields) -> int:
    try:
        return int(fields.get("ts", "0"))
    except ValueError:
        return 0


def newest_ts(client: redis.Redis, stream: str) -> int | None:
    rows = client.xrevrange(stream, count=1)
    if not rows:
        return None
    return ts_of(decode_raw(rows[0][1] or {}))


def scan_since(client: redis.Redis, stream: str, *, since_ms: int, limit: int = SCAN_LIMIT) -> list[Fields]:
    """Entries newest first until one has ``ts`` < ``since_ms`` (or ``limit`` entries were read)."""
    out: list[Fields] = []
    upper = "+"
    scanned = 0
    while scanned < limit:
        rows = client.xrevrange(stream, max=upper, min="-", count=CHUNK)
        if not rows:
            break
        for _, raw in rows:
            fields = decode_raw(raw or {})
            if ts_of(fields) < since_ms:
                return out
            out.append(fields)
        scanned += len(rows)
        upper = "(" + _s(rows[-1][0])
    return out


def entry_ms(entry_id: Any) -> int:
    """Wall time (epoch ms) at which Redis wrote a stream entry: the first part of its id."""
    try:
        return int(_s(entry_id).split("-", 1)[0])
    except ValueError:
        return 0


def scan_written_since(
    client: redis.Redis, stream: str, *, since_wall_ms: int, limit: int = SCAN_LIMIT
) -> list[Fields]:
    """Entries written (by wall time, the entry id) at or after ``since_wall_ms``, newest first."""
    out: list[Fields] = []
    upper = "+"
    while len(out) < limit:
        rows = client.xrevrange(stream, max=upper, min=f"{max(0, since_wall_ms)}-0", count=CHUNK)
        if not rows:
            break
        out.extend(decode_raw(raw or {}) for _, raw in rows)
        upper = "(" + _s(rows[-1][0])
    return out[:limit]


def find_latest(
    client: redis.Redis, stream: str, match: Callable[[Fields], bool], *, want: int = 1, limit: int = SCAN_LIMIT
) -> list[Fields]:
    """Up to ``want`` newest entries for which ``match`` holds (newest first)."""
    out: list[Fields] = []
    upper = "+"
    scanned = 0
    while scanned < limit and len(out) < want:
        rows = client.xrevrange(stream, max=upper, min="-", count=CHUNK)
        if not rows:
            break
        for _, raw in rows:
            fields = decode_raw(raw or {})
            if match(fields):
                out.append(fields)
                if len(out) >= want:
                    break
        scanned += len(rows)
        upper = "(" + _s(rows[-1][0])
    return out
