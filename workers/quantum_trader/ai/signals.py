"""Signal decisions (pure): probabilities or the fallback trend score → side, confidence, gate, regime.

* Model signals: side = BUY when calibrated P(up) ≥ 0.5 else SELL; confidence =
  the calibrated probability of that side (``max(p, 1 − p)``); HOLD when the
  confidence is below ``ai.holdBelow``; ``rl_gate_pass`` when the side is not HOLD
  and the meta-label model's P(profitable) ≥ its threshold; HOLD as well when the
  meta-label fails and the bundle's filter is on (kept only where it paid out of sample).
* Fallback (``model=fallback-trend``, only with no promoted model and
  ``ai.allowFallback``): an explicit trend follower — the close's distance from the
  slow (1h) EMA and that EMA's slope, both in ATRs, must agree in sign; strength =
  ``min(|gap|, 4·|slope|) / 4``; confidence = ``0.5 + 0.10·tanh(strength)`` in
  [0.5, 0.60): capped at ``FALLBACK_MAX_CONFIDENCE`` because it has no out-of-sample
  record (measured on the sim with the old 0.95 ceiling it lost 7 bps per trade after
  costs, its "confident" signals no better than the rest), so it never claims the
  router's super-confidence nor a high probability it has not shown. It is not a trained
  model and says so in every signal; ``rl_gate_pass`` is always false; its signals
  claim symmetric win and loss sizes at the stop distance (:func:`fallback_sizes`), so
  the router's expected-value rule gives it ``(2p − 1)·stop − costs`` — negative unless
  the ATR is wide. After a ``qt train`` the fallback is the best baseline, calibrated on
  its own record, with its own measured sizes.
* Regime (a label carried on the signal): ``high_vol`` when vol_regime > 0.35, else
  ``trend_up`` / ``trend_down`` when efficiency_16 ≥ 0.4 and |ema_slope_slow| ≥ 0.3,
  else ``range``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.exits import ExitSizes
from quantum_trader.ai.features import index

F64 = npt.NDArray[np.float64]
SideT = Literal["BUY", "SELL", "HOLD"]

FALLBACK_MODEL: Final = "fallback-trend"
FALLBACK_VERSION: Final = "fallback-trend-1"
FALLBACK_SCALE: Final = 4.0
FALLBACK_MAX_CONFIDENCE: Final = 0.60  # the ceiling of the untrained fallback's confidence (never reached)
FALLBACK_MAX_EXTRA: Final = FALLBACK_MAX_CONFIDENCE - 0.5
HIGH_VOL_REGIME: Final = 0.35
TREND_EFFICIENCY: Final = 0.4
TREND_SLOPE: Final = 0.3


@dataclass(frozen=True, slots=True)
class Decision:
    symbol: str
    side: SideT
    confidence: float
    rl_gate_pass: bool
    regime: str
    price: float
    atr: float
    win_atr: float = 0.0  # the model's OOS mean win under the exits, ATRs (0: unknown → router uses take-profit)
    loss_atr: float = 0.0  # its OOS mean loss, ATRs (0: unknown → router uses the stop distance)
    hold_s: float = 0.0  # its OOS mean holding time, seconds (0: unknown)


def model_tag(version: str) -> str:
    """The ``model`` field of a trained model's signals."""
    return f"lgbm-{version}"


def regimes(x: F64) -> list[str]:
    """Regime label per feature row."""
    vol = x[:, index("vol_regime")]
    eff = x[:, index("efficiency_16")]
    slope = x[:, index("ema_slope_slow")]
    out = []
    for v, e, s in zip(vol.tolist(), eff.tolist(), slope.tolist(), strict=True):
        if v > HIGH_VOL_REGIME:
            out.append("high_vol")
        elif e >= TREND_EFFICIENCY and abs(s) >= TREND_SLOPE:
            out.append("trend_up" if s > 0 else "trend_down")
        else:
            out.append("range")
    return out


def sides(p_up: F64, *, hold_below: float) -> tuple[list[SideT], F64]:
    conf = np.maximum(p_up, 1.0 - p_up)
    out: list[SideT] = [
        "HOLD" if c < hold_below else ("BUY" if p >= 0.5 else "SELL")
        for p, c in zip(p_up.tolist(), conf.tolist(), strict=True)
    ]
    return out, conf


def decide_model(
    symbols: tuple[str, ...],
    *,
    x: F64,
    price: F64,
    p_up: F64,
    p_profit: F64,
    hold_below: float,
    gate_threshold: float,
    gate_filters: bool = False,
    sizes: ExitSizes | None = None,
) -> list[Decision]:
    """One decision per symbol from calibrated P(up) and the meta-label P(profitable).

    With ``gate_filters`` (the bundle earned it out of sample) a signal whose meta-label fails
    is HOLD instead of BUY/SELL. ``sizes``: the model's out-of-sample win/loss sizes under the
    exits, carried on every decision (absent: 0, and the router uses its SL/TP distances).
    """
    side, conf = sides(p_up, hold_below=hold_below)
    if gate_filters:
        side = [s if s == "HOLD" or p_profit[i] >= gate_threshold else "HOLD" for i, s in enumerate(side)]
    reg = regimes(x)
    atr = x[:, index("atr_pct")] * price
    confidence = np.clip(conf, 0.0, 1.0).tolist()  # one numpy call for all rows, not one per row
    gate_ok = (p_profit >= gate_threshold).tolist()
    return [
        Decision(
            symbol=s,
            side=side[i],
            confidence=confidence[i],
            rl_gate_pass=side[i] != "HOLD" and gate_ok[i],
            regime=reg[i],
            price=float(price[i]),
            atr=float(atr[i]),
            win_atr=0.0 if sizes is None else sizes.win_atr,
            loss_atr=0.0 if sizes is None else sizes.loss_atr,
            hold_s=0.0 if sizes is None else sizes.hold_s,
        )
        for i, s in enumerate(symbols)
    ]


def fallback_p_up(x: F64) -> F64:
    """The fallback trend model as a pseudo-probability of up (0.40 … 0.60, ``FALLBACK_MAX_CONFIDENCE``)."""
    gap = x[:, index("ema_gap_slow")]
    slope = x[:, index("ema_slope_slow")]
    agree = np.sign(gap) == np.sign(slope)
    strength = np.where(agree, np.minimum(np.abs(gap), 4.0 * np.abs(slope)) / FALLBACK_SCALE, 0.0)
    conf = 0.5 + FALLBACK_MAX_EXTRA * np.tanh(strength)
    out: F64 = np.where(gap >= 0, conf, 1.0 - conf)
    return out


def fallback_sizes(stop_atr: float) -> ExitSizes:
    """What the untrained fallback claims about its wins and losses: nothing beyond symmetry — a win
    and a loss the size of the stop distance (its p is the chance of that barrier first). It has no
    record showing its winners run further than its losers, so it is not credited with the take-profit."""
    return ExitSizes(win_atr=stop_atr, loss_atr=stop_atr, hold_s=0.0)


def decide_fallback(
    symbols: tuple[str, ...], *, x: F64, price: F64, hold_below: float, stop_atr: float
) -> list[Decision]:
    """The trend rule's decisions, with symmetric win/loss sizes at ``stop_atr`` (``router.stopLossAtr``)."""
    p = fallback_p_up(x)
    return decide_model(
        symbols, x=x, price=price, p_up=p, p_profit=np.zeros_like(p), hold_below=hold_below,
        gate_threshold=np.inf, sizes=fallback_sizes(stop_atr),
    )
