"""The published universe document, its hash, and how other workers read it (fail closed).

Light on purpose (json + hashlib only, no numpy): the ai, snapshot and router
workers import :func:`active_symbols` / :func:`read_active_symbols`.

``cfg:universe:active`` / ``cfg:universe:last_ok`` hold one JSON object (DESIGN §2)::

    {"version", "generator", "features_window", "universe_hash", "generated_at", "valid_until",
     "hash_since", "count", "checks": {...},
     "symbols": [{"symbol", "rank", "score", "volume_24h", "leverage", ...features}]}

A reader gets the active symbols only while ``now_ms < valid_until`` and the
hash matches the symbols; anything else (missing, expired, malformed, tampered)
is the empty universe. There is no fallback list.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Final, Protocol

from quantum_trader.core.keys import Keys

UNIVERSE_VERSION: Final = "1.0.0"
GENERATOR: Final = "qt_universe_v1"


class _Getter(Protocol):
    def get(self, name: str) -> Awaitable[Any]: ...


def universe_hash(symbols: Iterable[str]) -> str:
    """First 16 hex characters of sha256 of the sorted symbols joined by ',' (UTF-8)."""
    return hashlib.sha256(",".join(sorted(symbols)).encode("utf-8")).hexdigest()[:16]


def features_window(timeframes: Iterable[str]) -> str:
    return ",".join(timeframes)


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def build_document(
    *,
    symbols: Iterable[Mapping[str, Any]],
    timeframes: Iterable[str],
    generated_at: int,
    valid_for_s: float,
    hash_since: int,
    checks: Mapping[str, bool],
) -> dict[str, Any]:
    """The JSON object for ``cfg:universe:active`` (symbols already ranked)."""
    rows = [
        {k: (_clean(v) if isinstance(v, float) else v) for k, v in row.items()} for row in symbols
    ]
    names = [str(r["symbol"]) for r in rows]
    return {
        "version": UNIVERSE_VERSION,
        "generator": GENERATOR,
        "features_window": features_window(timeframes),
        "universe_hash": universe_hash(names),
        "generated_at": int(generated_at),
        "valid_until": int(generated_at + round(valid_for_s * 1000)),
        "hash_since": int(hash_since),
        "count": len(rows),
        "checks": dict(checks),
        "symbols": rows,
    }


def next_hash_since(previous: Mapping[str, Any] | None, *, new_hash: str, generated_at: int) -> int:
    """When the hash last changed: carried over from the previous document if the hash is the same."""
    if previous is not None and previous.get("universe_hash") == new_hash:
        since = previous.get("hash_since", previous.get("generated_at"))
        if isinstance(since, int) and not isinstance(since, bool):
            return since
    return generated_at


def is_stuck(doc: Mapping[str, Any] | None, *, now_ms: int, stuck_after_s: float) -> bool:
    """True when the published hash has not changed for ``stuck_after_s`` seconds."""
    if doc is None:
        return False
    since = doc.get("hash_since", doc.get("generated_at"))
    if not isinstance(since, int) or isinstance(since, bool):
        return False
    return now_ms - since >= stuck_after_s * 1000


def age_seconds(doc: Mapping[str, Any] | None, *, now_ms: int) -> float | None:
    if doc is None:
        return None
    generated = doc.get("generated_at")
    if not isinstance(generated, int) or isinstance(generated, bool):
        return None
    return max(0.0, (now_ms - generated) / 1000.0)


def parse_document(raw: str | bytes | None) -> dict[str, Any] | None:
    """A stored universe document, or None when absent or not a JSON object."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def active_symbols(doc: Mapping[str, Any] | None, *, now_ms: int) -> list[str]:
    """The tradable universe in rank order, or [] when absent, expired, malformed or inconsistent."""
    if not isinstance(doc, Mapping):
        return []
    valid_until = doc.get("valid_until")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool) or now_ms >= valid_until:
        return []
    rows = doc.get("symbols")
    if not isinstance(rows, list):
        return []
    ranked: list[tuple[int, str]] = []
    for position, row in enumerate(rows):
        if not isinstance(row, Mapping):
            return []
        symbol = row.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return []
        rank = row.get("rank", position + 1)
        ranked.append((rank if isinstance(rank, int) else position + 1, symbol))
    names = [s for _, s in sorted(ranked)]
    if len(set(names)) != len(names) or doc.get("universe_hash") != universe_hash(names):
        return []
    return names


async def read_document(redis: _Getter, key: str) -> dict[str, Any] | None:
    """Read and parse one universe document (``keys.universe_active`` or ``keys.universe_last_ok``)."""
    return parse_document(await redis.get(key))


async def read_active_symbols(redis: _Getter, keys: Keys, *, now_ms: int) -> list[str]:
    """The active universe as other workers should see it (empty when expired or missing)."""
    return active_symbols(await read_document(redis, keys.universe_active), now_ms=now_ms)
