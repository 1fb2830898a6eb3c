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
BID: Final = "bid"  # optional: best bid when the writer knows it (the paper venue sells there)
ASK: Final = "ask"  # optional: best ask (the paper venue buys there)
READ_FIELDS: Final = (MARK_PRICE, TS)  # what the gate and the executor's monitor read (HMGET order)
QUOTE_FIELDS: Final = (MARK_PRICE, TS, BID, ASK)  # what the executor plans an order with


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    mark_price: float
    ts_ms: int
    bid: float = 0.0  # 0 = not known
    ask: float = 0.0


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def parse_snapshot(raw: list[Any] | None) -> SnapshotInfo | None:
    """``HMGET snapshot mark_price ts [bid ask]`` → SnapshotInfo, or None when missing/malformed.
    A missing, malformed or crossed bid/ask is just unknown (0): the mark is what the rules need."""
    if not raw or raw[0] is None or raw[1] is None:
        return None
    try:
        info = SnapshotInfo(mark_price=float(_text(raw[0])), ts_ms=int(float(_text(raw[1]))))
    except ValueError:
        return None
    if len(raw) < 4 or raw[2] is None or raw[3] is None:
        return info
    try:
        bid, ask = float(_text(raw[2])), float(_text(raw[3]))
    except ValueError:
        return info
    if not (0 < bid <= ask < float("inf")):
        return info
    return SnapshotInfo(mark_price=info.mark_price, ts_ms=info.ts_ms, bid=bid, ask=ask)
