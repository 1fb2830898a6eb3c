"""``snapshot:<SYM>``: one hash per symbol with the exchange's mark price and the position row.

Writer: the snapshot worker (atomic per cycle, with a TTL). Readers: the gate (``no_exchange_snapshot``,
``stale_snapshot``), the executor (the plan's reference price), ``qt check``. Field names below are the
only spelling; :func:`parse_snapshot` is the one reader of the two fields the rules need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

MARK_PRICE: Final = "mark_price"
POSITION_AMT: Final = "position_amt"
ENTRY_PRICE: Final = "entry_price"
UNREALIZED_PNL: Final = "unrealized_pnl"
TS: Final = "ts"
READ_FIELDS: Final = (MARK_PRICE, TS)  # what the gate and the executor read (HMGET order)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    mark_price: float
    ts_ms: int


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def parse_snapshot(raw: list[Any] | None) -> SnapshotInfo | None:
    """``HMGET snapshot mark_price ts`` → SnapshotInfo, or None when missing/malformed."""
    if not raw or raw[0] is None or raw[1] is None:
        return None
    try:
        return SnapshotInfo(mark_price=float(_text(raw[0])), ts_ms=int(float(_text(raw[1]))))
    except ValueError:
        return None
