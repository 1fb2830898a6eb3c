"""The universe document reader (``cfg:universe:active`` / ``cfg:universe:last_ok``), fail closed.

The universe worker writes the document (:mod:`quantum_trader.universe.publication` builds it);
every other reader — snapshot, gate, ai, ``qt run`` — goes through this module, so they all
agree on what is valid. A reader gets the active symbols only while ``now_ms < valid_until``
and the hash matches the symbols; anything else (missing, expired, malformed, tampered) is the
empty universe. There is no fallback list here (the allowlist tiers live in :mod:`.allowlist`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from quantum_trader.core.keys import Keys


class Getter(Protocol):
    def get(self, name: str) -> Awaitable[Any]: ...


def universe_hash(symbols: Iterable[str]) -> str:
    """First 16 hex characters of sha256 of the sorted symbols joined by ',' (UTF-8)."""
    return hashlib.sha256(",".join(sorted(symbols)).encode("utf-8")).hexdigest()[:16]


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


def volumes(doc: Mapping[str, Any] | None) -> dict[str, float]:
    """symbol → ``volume_24h`` of a document's rows (0.0 when missing; validity not checked)."""
    out: dict[str, float] = {}
    rows = doc.get("symbols") if isinstance(doc, Mapping) else None
    if not isinstance(rows, list):
        return out
    for row in rows:
        if isinstance(row, Mapping) and isinstance(row.get("symbol"), str) and row["symbol"]:
            vol = row.get("volume_24h", 0.0)
            ok = isinstance(vol, (int, float)) and not isinstance(vol, bool)
            out.setdefault(row["symbol"], float(vol) if ok else 0.0)
    return out


@dataclass(frozen=True, slots=True)
class Universe:
    """What a reader needs of one document: its consistent symbols (rank order), expiry and volumes."""

    symbols: tuple[str, ...]  # () when the document is inconsistent (shape, duplicates, hash)
    valid_until: int  # epoch ms; 0 when missing
    volumes: Mapping[str, float] = field(default_factory=dict)

    def symbols_at(self, now_ms: int) -> tuple[str, ...]:
        """The symbols while the document is valid (``now_ms < valid_until``), else ()."""
        return self.symbols if now_ms < self.valid_until else ()


def from_document(doc: Mapping[str, Any] | None) -> Universe | None:
    """A parsed document as a :class:`Universe` (None when absent)."""
    if doc is None:
        return None
    valid_until = doc.get("valid_until")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        valid_until = 0
    names = active_symbols(doc, now_ms=valid_until - 1) if valid_until else []
    return Universe(tuple(names), valid_until, volumes(doc))


@lru_cache(maxsize=16)
def read_raw(raw: str | bytes | None) -> Universe | None:
    """A stored document's text as a :class:`Universe`; cached, because the same text is read every batch."""
    return from_document(parse_document(raw))


async def read_document(redis: Getter, key: str) -> dict[str, Any] | None:
    """Read and parse one universe document (``keys.universe_active`` or ``keys.universe_last_ok``)."""
    return parse_document(await redis.get(key))


async def read_active_symbols(redis: Getter, keys: Keys, *, now_ms: int) -> list[str]:
    """The active universe as other workers should see it (empty when expired or missing)."""
    return active_symbols(await read_document(redis, keys.universe_active), now_ms=now_ms)
