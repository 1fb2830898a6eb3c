"""The executor's view of shared state: re-exports of the shared-state rooms it writes.

``state:positions`` lives in :mod:`quantum_trader.ledger.positions`, ``state:risk`` in
:mod:`quantum_trader.ledger.risk`; import from there in new code.
"""

from __future__ import annotations

from quantum_trader.ledger.positions import Position, parse_positions
from quantum_trader.ledger.risk import ERROR_RATE_ALPHA, ERROR_RATE_HALF_LIFE_MS, RiskState, utc_day

__all__ = ["ERROR_RATE_ALPHA", "ERROR_RATE_HALF_LIFE_MS", "Position", "RiskState", "parse_positions", "utc_day"]
