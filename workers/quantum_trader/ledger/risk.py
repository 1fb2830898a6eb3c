"""``state:risk``: the risk inputs of the gate's kill score and daily-loss rule, one hash.

Writer: the executor (``APPLY_LUA`` and ``RESYNC_NOTIONAL_LUA`` in :mod:`.scripts`). Readers: the
gate (kill score, daily loss, open notional), ``qt check``. Fields (constants below; the Lua
scripts take the same constants):

- ``day`` (UTC ``YYYY-MM-DD`` of the last close), ``realized_pnl_today``, ``realized_pnl_total``,
  ``equity_peak`` (highest ``realized_pnl_total`` seen, never below 0), ``loss_streak``
  (consecutive losing closes; counts only on its ``day``), ``closed_total``, ``error_rate``
  (EWMA of venue errors per execution, see :data:`ERROR_RATE_ALPHA`; read decayed by time since
  ``error_ts`` with :data:`ERROR_RATE_HALF_LIFE_MS`), ``executions`` and ``open_notional_usd``
  (Σ qty × entry over open positions).

Time-based resets avoid a kill-switch deadlock (blocked → no trades → inputs
never change): the loss streak resets with the UTC day, the error rate decays.
The drawdown from the equity peak does not reset by itself: an operator resets
it (``HSET state:risk equity_peak <realized_pnl_total>``) after review.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from quantum_trader.core.messages import decode_raw

ERROR_RATE_ALPHA: Final = 0.05  # EWMA weight of the newest execution (~20-execution memory)
ERROR_RATE_HALF_LIFE_MS: Final = 600_000  # the error rate halves every 10 minutes without executions

DAY: Final = "day"
REALIZED_PNL_TODAY: Final = "realized_pnl_today"
REALIZED_PNL_TOTAL: Final = "realized_pnl_total"
EQUITY_PEAK: Final = "equity_peak"
LOSS_STREAK: Final = "loss_streak"
CLOSED_TOTAL: Final = "closed_total"
ERROR_RATE: Final = "error_rate"
ERROR_TS: Final = "error_ts"
EXECUTIONS: Final = "executions"
OPEN_NOTIONAL: Final = "open_notional_usd"  # Σ qty × entry_price over state:positions


def utc_day(now_ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch-ms instant; pure (no clock read)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000.0))


def open_notional(raw: Mapping[str, str]) -> float:
    """``open_notional_usd`` of a ``state:risk`` hash (0 when absent; +inf when unreadable: fail closed)."""
    try:
        return float(raw.get(OPEN_NOTIONAL, 0.0))
    except ValueError:
        return float("inf")


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
        # equity_peak starts at 0 (absent) and only rises; it is below 0 only after an operator's reset
        # (``qt risk reset`` sets it to realized_pnl_total), which must bring the drawdown to 0.
        return max(0.0, self.equity_peak - self.realized_pnl_total)

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> RiskState:
        """Parse ``HGETALL state:risk`` (empty → zeros); raise ValueError when a field is malformed."""
        d = decode_raw(raw)
        try:
            return cls(
                day=d.get(DAY, ""),
                realized_pnl_today=float(d.get(REALIZED_PNL_TODAY, 0.0)),
                realized_pnl_total=float(d.get(REALIZED_PNL_TOTAL, 0.0)),
                equity_peak=float(d.get(EQUITY_PEAK, 0.0)),
                loss_streak=int(d.get(LOSS_STREAK, 0)),
                error_rate=float(d.get(ERROR_RATE, 0.0)),
                executions=int(d.get(EXECUTIONS, 0)),
                error_ts=int(d.get(ERROR_TS, 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed risk state: {exc}") from None
