"""Executor-owned Redis state as plain records: positions and risk inputs.

Both the executor (writer) and the gate (reader) parse ``state:positions`` and
``state:risk`` through this module so they agree on the encoding:

- ``state:positions``: hash symbol → JSON of :class:`Position`.
- ``state:risk``: hash with ``day`` (UTC ``YYYY-MM-DD`` of the last close),
  ``realized_pnl_today``, ``realized_pnl_total``, ``equity_peak`` (highest
  ``realized_pnl_total`` seen, never below 0), ``loss_streak`` (consecutive
  losing closes; counts only on its ``day``), ``closed_total``, ``error_rate``
  (EWMA of venue errors per execution, see :data:`ERROR_RATE_ALPHA`; read decayed
  by time since ``error_ts`` with :data:`ERROR_RATE_HALF_LIFE_MS`), ``executions``
  and ``open_notional_usd`` (Σ qty × entry over open positions).

Time-based resets avoid a kill-switch deadlock (blocked → no trades → inputs
never change): the loss streak resets with the UTC day, the error rate decays.
The drawdown from the equity peak does not reset by itself: an operator resets
it (``HSET state:risk equity_peak <realized_pnl_total>``) after review.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from quantum_trader.core.messages import Side, decode_raw

ERROR_RATE_ALPHA: Final = 0.05  # EWMA weight of the newest execution (~20-execution memory)
ERROR_RATE_HALF_LIFE_MS: Final = 600_000  # the error rate halves every 10 minutes without executions


def utc_day(now_ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch-ms instant; pure (no clock read)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000.0))


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
                "entry_price": self.entry_price,
                "intent_id": self.intent_id,
                "leverage": self.leverage,
                "opened_ts": self.opened_ts,
                "order_id": self.order_id,
                "qty": self.qty,
                "side": self.side,
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
            side = data["side"]
            if side not in ("BUY", "SELL"):
                raise ValueError(f"bad side {side!r}")
            return cls(
                symbol=str(data["symbol"]),
                side=side,
                qty=float(data["qty"]),
                entry_price=float(data["entry_price"]),
                stop_loss=float(data.get("stop_loss", 0.0)),
                take_profit=float(data.get("take_profit", 0.0)),
                opened_ts=int(data.get("opened_ts", 0)),
                order_id=str(data["order_id"]),
                intent_id=str(data.get("intent_id", "")),
                entry_fee_usd=float(data.get("entry_fee_usd", 0.0)),
                leverage=float(data.get("leverage", 1.0)),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed position: {exc}") from None


@lru_cache(maxsize=8192)
def _cached_position(raw: str) -> Position:
    return Position.from_json(raw)  # positions are immutable: parse each distinct JSON once


def parse_positions(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> tuple[dict[str, Position], list[str]]:
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


@dataclass(frozen=True, slots=True)
class RiskState:
    """Executor-maintained risk inputs of the gate's kill score and daily-loss rule."""

    day: str = ""
    realized_pnl_today: float = 0.0
    realized_pnl_total: float = 0.0
    equity_peak: float = 0.0
    loss_streak: int = 0
    error_rate: float = 0.0
    executions: int = 0
    error_ts: int = 0  # epoch ms of the last error-rate update

    def loss_streak_on(self, today: str) -> int:
        """Consecutive losses of ``today`` (0 when the last close was on another day)."""
        return self.loss_streak if self.day == today else 0

    def error_rate_at(self, now_ms: int) -> float:
        """The error-rate EWMA decayed by the time since its last update."""
        idle = max(0, now_ms - self.error_ts) if self.error_ts else 0
        return float(self.error_rate * 0.5 ** (idle / ERROR_RATE_HALF_LIFE_MS))

    def pnl_today(self, today: str) -> float:
        """Realised PnL of ``today``: 0 when the last close was on another day."""
        return self.realized_pnl_today if self.day == today else 0.0

    @property
    def drawdown_usd(self) -> float:
        return max(0.0, max(self.equity_peak, 0.0) - self.realized_pnl_total)

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> RiskState:
        """Parse ``HGETALL state:risk`` (empty → zeros); raise ValueError when a field is malformed."""
        d = decode_raw(raw)
        try:
            return cls(
                day=d.get("day", ""),
                realized_pnl_today=float(d.get("realized_pnl_today", 0.0)),
                realized_pnl_total=float(d.get("realized_pnl_total", 0.0)),
                equity_peak=float(d.get("equity_peak", 0.0)),
                loss_streak=int(d.get("loss_streak", 0)),
                error_rate=float(d.get("error_rate", 0.0)),
                executions=int(d.get("executions", 0)),
                error_ts=int(d.get("error_ts", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed risk state: {exc}") from None
