"""``state:positions``: hash symbol → JSON of one :class:`Position` (one per symbol, one-way mode).

Writer: the executor (``APPLY_LUA`` in :mod:`.scripts`, and reconciliation). Readers: the gate
(duplicate and exposure rules), the snapshot worker (position rows), the router (capacity via
``state:open_orders``; the held symbols and their sides, :func:`open_sides`), ``qt check``. Every reader parses through :func:`parse_positions`; the Lua
scripts read the JSON fields named by :data:`QTY` and :data:`ENTRY_PRICE`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from quantum_trader.core.messages import Side

# JSON fields the Lua scripts read (open notional = Σ qty × entry_price)
QTY: Final = "qty"
ENTRY_PRICE: Final = "entry_price"
SIDE: Final = "side"


@dataclass(frozen=True, slots=True)
class Position:
    """One open position (one per symbol; one-way mode)."""

    symbol: str
    side: Side
    qty: float
    entry_price: float
    stop_loss: float  # 0 = none
    take_profit: float  # 0 = none
    opened_ts: int  # epoch ms
    order_id: str
    intent_id: str = ""
    entry_fee_usd: float = 0.0
    leverage: float = 1.0
    expires_ts: int = 0  # epoch ms of the time exit (the label horizon after opening); 0 = none
    funding_usd: float = 0.0  # perpetual funding paid while open (< 0: received); realised with the close
    funding_ts: int = 0  # the last funding settlement charged (epoch ms); 0 = none yet

    @property
    def notional_usd(self) -> float:
        return self.qty * self.entry_price

    @property
    def direction(self) -> int:
        return 1 if self.side == "BUY" else -1

    def to_json(self) -> str:
        return json.dumps(
            {
                "entry_fee_usd": self.entry_fee_usd,
                ENTRY_PRICE: self.entry_price,
                "expires_ts": self.expires_ts,
                "funding_ts": self.funding_ts,
                "funding_usd": self.funding_usd,
                "intent_id": self.intent_id,
                "leverage": self.leverage,
                "opened_ts": self.opened_ts,
                "order_id": self.order_id,
                QTY: self.qty,
                SIDE: self.side,
                "stop_loss": self.stop_loss,
                "symbol": self.symbol,
                "take_profit": self.take_profit,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Position:
        """Parse a ``state:positions`` value; raise ValueError when malformed."""
        try:
            data = json.loads(raw)
            side = data[SIDE]
            if side not in ("BUY", "SELL"):
                raise ValueError(f"bad side {side!r}")
            return cls(
                symbol=str(data["symbol"]),
                side=side,
                qty=float(data[QTY]),
                entry_price=float(data[ENTRY_PRICE]),
                stop_loss=float(data.get("stop_loss", 0.0)),
                take_profit=float(data.get("take_profit", 0.0)),
                opened_ts=int(data.get("opened_ts", 0)),
                order_id=str(data["order_id"]),
                intent_id=str(data.get("intent_id", "")),
                entry_fee_usd=float(data.get("entry_fee_usd", 0.0)),
                leverage=float(data.get("leverage", 1.0)),
                expires_ts=int(data.get("expires_ts", 0)),
                funding_usd=float(data.get("funding_usd", 0.0)),
                funding_ts=int(data.get("funding_ts", 0)),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed position: {exc}") from None


@lru_cache(maxsize=8192)
def _cached_position(raw: str) -> Position:
    return Position.from_json(raw)  # positions are immutable: parse each distinct JSON once


def parse_positions(
    raw: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[str, str | bytes],
) -> tuple[dict[str, Position], list[str]]:
    """``HGETALL state:positions`` → (symbol → Position, symbols whose value is malformed)."""
    out: dict[str, Position] = {}
    bad: list[str] = []
    for key, value in raw.items():
        symbol = key.decode() if isinstance(key, bytes) else key
        try:
            out[symbol] = _cached_position(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            bad.append(symbol)
    return out, bad


def signed_amounts(raw: Mapping[str, str]) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """``state:positions`` as symbol → (signed qty (short < 0), entry price), and the unusable symbols.

    Lenient on purpose (the snapshot's position rows): only ``side``, ``qty`` > 0 and an optional
    ``entry_price`` are needed, so a record the executor's strict :func:`parse_positions` rejects for
    a missing bookkeeping field still shows on its snapshot.
    """
    out: dict[str, tuple[float, float]] = {}
    bad: list[str] = []
    for symbol, text in raw.items():
        try:
            doc = json.loads(text)
            qty = float(doc[QTY])
            entry = float(doc.get(ENTRY_PRICE, 0.0))
            side = doc[SIDE]
        except (ValueError, KeyError, TypeError, AttributeError):
            bad.append(symbol)
            continue
        if side not in ("BUY", "SELL") or qty <= 0:
            bad.append(symbol)
            continue
        out[symbol] = (qty if side == "BUY" else -qty, entry)
    return out, bad


def open_sides(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> tuple[frozenset[str], dict[str, Side]]:
    """``HGETALL state:positions`` (bytes or text) → (every held symbol, the side of each readable one).

    Lenient like :func:`signed_amounts`: a record it cannot read still holds its symbol, without a side."""
    text = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k):
            (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in raw.items()}
    amounts, _unreadable = signed_amounts(text)
    return frozenset(text), {sym: "BUY" if qty > 0 else "SELL" for sym, (qty, _entry) in amounts.items()}
