"""The entry rule's arithmetic, shared by the router (which applies it to each signal) and ``qt train``
(which counts how many out-of-sample rows it would let through): round-trip costs from the settings
that declare them, and a trade's expected net return in bps of notional. Pure; works on floats and on
numpy arrays alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from quantum_trader.core.profile import ExecutorSettings, UniverseSettings

Num = TypeVar("Num")  # float, or a numpy array (elementwise)


@dataclass(frozen=True, slots=True)
class EntryCosts:
    """Round-trip costs of one trade in bps of notional, from the settings that own them (passed explicitly)."""

    fee_bps: float = 4.0  # executor.feeBps, paid on entry and on exit
    spread_bps: float = 2.0  # universe.spreadBps: half crossed on entry, half on exit
    slippage_bps: float = 5.0  # expected slippage per side (paper: half of executor.maxSlippageBps)

    @property
    def round_trip_bps(self) -> float:
        return 2.0 * self.fee_bps + self.spread_bps + 2.0 * self.slippage_bps


def entry_costs(*, executor: ExecutorSettings, universe: UniverseSettings) -> EntryCosts:
    """The entry rule's costs from the sections that declare them (fees and slippage: executor; spread: universe)."""
    return EntryCosts(fee_bps=executor.fee_bps, spread_bps=universe.spread_bps,
                      slippage_bps=executor.max_slippage_bps / 2.0)


def net_edge_bps(p: Num, *, win_bps: Num, loss_bps: Num, cost_bps: float, funding_bps: float = 0.0) -> Num:
    """Expected net return in bps of notional: ``p·win − (1−p)·loss − costs − funding``."""
    out: Num = p * win_bps - (1.0 - p) * loss_bps - cost_bps - funding_bps  # type: ignore[operator]
    return out
