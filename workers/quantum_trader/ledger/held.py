"""``state:held_signals``: the router's verdict on a fresh signal for a symbol that already holds a position.

One position per symbol (one-way mode), so a signal on a held symbol cannot open a trade. It still
carries information about the position:

* the **same side**, with a positive expected value of holding on (no round trip to pay) → ``renew``:
  the position takes the signal's stop loss and take profit and its time exit moves to the signal's time
  + the label horizon, as if it had been opened now without paying the round trip again;
* the **other side**, with a negative expected value of holding on → ``close``: the executor closes the
  position at the mark (``close_reason=signal``).

Writer: the router (``HSET`` symbol → :meth:`HeldSignal.to_json`; a newer verdict replaces an older one).
Reader: the executor's monitor, which applies a verdict to the position it names (the same side for a
renewal, the other side for a close, and only a verdict newer than the position's opening) and then
deletes it with :data:`DELETE_IF_UNCHANGED_LUA`, so a verdict the router wrote meanwhile is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from quantum_trader.core.messages import Side

HeldAction = Literal["renew", "close"]
ACTIONS: Final = ("renew", "close")

# KEYS[1] = state:held_signals, ARGV[1] = symbol, ARGV[2] = the value read → 1 when deleted
DELETE_IF_UNCHANGED_LUA: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class HeldSignal:
    """The router's verdict on one signal for a held symbol."""

    symbol: str
    action: HeldAction
    side: Side  # the signal's side (a renewal: the position's; a close: the other one)
    signal_id: str
    stop_loss: float  # the signal's stop loss (price; what a renewed position takes)
    take_profit: float  # the signal's take profit (price)
    ts: int  # the signal's time (epoch ms): a renewed position's time exit is ts + the label horizon
    ev_bps: float  # expected value of holding on, bps of notional (> 0 renew, < 0 close)

    def to_json(self) -> str:
        return json.dumps(
            {"action": self.action, "ev_bps": round(self.ev_bps, 4), "side": self.side, "signal_id": self.signal_id,
             "stop_loss": self.stop_loss, "symbol": self.symbol, "take_profit": self.take_profit, "ts": self.ts},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> HeldSignal:
        """Parse a ``state:held_signals`` value; raise ValueError when malformed."""
        try:
            data = json.loads(raw)
            action, side = data["action"], data["side"]
            if action not in ACTIONS or side not in ("BUY", "SELL"):
                raise ValueError(f"bad action/side {action!r}/{side!r}")
            return cls(symbol=str(data["symbol"]), action=action, side=side, signal_id=str(data["signal_id"]),
                       stop_loss=float(data["stop_loss"]), take_profit=float(data["take_profit"]),
                       ts=int(data["ts"]), ev_bps=float(data.get("ev_bps", 0.0)))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed held signal: {exc}") from None


def parse_held(raw: Mapping[str, str]) -> tuple[dict[str, HeldSignal], list[str]]:
    """``HGETALL state:held_signals`` (decoded) → (symbol → verdict, symbols whose value is malformed)."""
    out: dict[str, HeldSignal] = {}
    bad: list[str] = []
    for symbol, value in raw.items():
        try:
            held = HeldSignal.from_json(value)
        except ValueError:
            bad.append(symbol)
            continue
        if held.symbol != symbol:
            bad.append(symbol)
            continue
        out[symbol] = held
    return out, bad
