"""The published universe document, its hash, and how other workers read it (fail closed).

The writer's side. Readers (snapshot, gate, ai, ``qt run``) use
:mod:`quantum_trader.ledger.universe`, which this module re-exports.

``cfg:universe:active`` / ``cfg:universe:last_ok`` hold one JSON object (DESIGN §2)::

    {"version", "generator", "features_window", "universe_hash", "generated_at", "valid_until",
     "hash_since", "count", "checks": {...},
     "symbols": [{"symbol", "rank", "score", "volume_24h", "leverage", ...features}]}

A reader gets the active symbols only while ``now_ms < valid_until`` and the
hash matches the symbols; anything else (missing, expired, malformed, tampered)
is the empty universe. There is no fallback list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

# The reader side lives in the shared-state layer; re-exported here for the universe worker's callers.
from quantum_trader.ledger.universe import (
    active_symbols,
    parse_document,
    read_active_symbols,
    read_document,
    universe_hash,
)

__all__ = [
    "GENERATOR",
    "UNIVERSE_VERSION",
    "active_symbols",
    "age_seconds",
    "build_document",
    "features_window",
    "is_stuck",
    "next_hash_since",
    "parse_document",
    "read_active_symbols",
    "read_document",
    "universe_hash",
]

UNIVERSE_VERSION: Final = "1.0.0"
GENERATOR: Final = "qt_universe_v1"


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
