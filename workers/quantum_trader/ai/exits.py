"""Win and loss sizes of a model's signals under the real exits, measured out of sample (pure numpy).

The router's entry rule (``router/core.py: expected_edge``) reads a signal's confidence ``p`` as the
chance that its barrier label comes true — the price reaches ``+stopLossAtr`` ATRs in the signal's
direction before ``−stopLossAtr`` ATRs (or, failing both, closes the horizon on that side). What a
trade then earns is not the take-profit distance: the executor's exits are the stop, the
take-profit and the time exit at the horizon, so a "right" signal often closes at the horizon with
less than the take-profit, and a "wrong" one at the stop or at the horizon with less than the stop.

:func:`measure` takes the out-of-sample signals of a training run (rows whose confidence reaches
``ai.holdBelow``), splits them by whether their barrier label came true, and averages the return
their side earned under the exits, in ATRs:

* ``win_atr``  = mean return (ATRs) of the signals whose label came true;
* ``loss_atr`` = −mean return (ATRs) of the signals whose label did not;
* ``hold_s``   = mean time in the position (bars until the first exit × the bar length).

so that ``p·win_atr − (1 − p)·loss_atr`` is, for a calibrated ``p``, the expected gross return of a
signal in ATRs (before costs). The model card records them (``exit_sizes``), the bundle carries
them, every signal of the model carries them (``win_atr``, ``loss_atr``, ``hold_s``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

MIN_ROWS: Final = 50  # fewer signals on either side: no estimate (the router falls back to the SL/TP distances)


@dataclass(frozen=True, slots=True)
class ExitSizes:
    """Average win and loss of a model's signals under the exits, in ATRs; holding time in seconds."""

    win_atr: float  # mean return of the signals whose label came true (ATRs, ≥ 0)
    loss_atr: float  # minus the mean return of the others (ATRs, ≥ 0)
    hold_s: float  # mean holding time (s)
    rows: int = 0  # out-of-sample signals measured
    win_rate: float = 0.0  # share whose label came true
    mean_p: float = 0.0  # their mean confidence (calibration check: ≈ win_rate)
    mean_atr: float = 0.0  # mean return per signal (ATRs, gross; = win_rate·win − (1 − win_rate)·loss)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # unrounded: a loaded bundle values signals exactly as the trained one

    @classmethod
    def from_dict(cls, doc: Any) -> ExitSizes:
        """Parse :meth:`to_dict` output; ``ValueError`` on anything malformed or negative."""
        try:
            out = cls(win_atr=float(doc["win_atr"]), loss_atr=float(doc["loss_atr"]), hold_s=float(doc["hold_s"]),
                      rows=int(doc.get("rows", 0)), win_rate=float(doc.get("win_rate", 0.0)),
                      mean_p=float(doc.get("mean_p", 0.0)), mean_atr=float(doc.get("mean_atr", 0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed exit sizes: {type(exc).__name__}: {exc}") from None
        sizes = (out.win_atr, out.loss_atr, out.hold_s)
        if not all(np.isfinite(v) and v >= 0.0 for v in sizes):
            raise ValueError(f"malformed exit sizes: win/loss/hold must be finite and >= 0 (got {sizes})")
        return out


def measure(
    *,
    p_up: F64,
    label_up: F64,
    ret_long: F64,
    ret_short: F64,
    hold_long: F64,
    hold_short: F64,
    atr_pct: F64,
    hold_below: float,
    bar_s: float,
) -> ExitSizes | None:
    """Exit sizes of the signals among these rows (all arrays per row, out of sample).

    ``p_up``: calibrated P(up); ``label_up``: the barrier label (1.0 = up); ``ret_long``/``ret_short``:
    log return of a long/short under the exits; ``hold_long``/``hold_short``: bars until its exit;
    ``atr_pct``: ATR / close at the row. None when either side has fewer than ``MIN_ROWS`` signals.
    """
    conf = np.maximum(p_up, 1.0 - p_up)
    ok = np.isfinite(p_up) & np.isfinite(ret_long) & np.isfinite(ret_short) & (atr_pct > 0.0)
    sig: B = ok & (conf >= hold_below)
    buy = p_up >= 0.5
    ret = np.where(buy, ret_long, ret_short)[sig] / atr_pct[sig]
    held = np.where(buy, hold_long, hold_short)[sig]
    right = (label_up[sig] >= 0.5) == buy[sig]
    if int(right.sum()) < MIN_ROWS or int((~right).sum()) < MIN_ROWS:
        return None
    return ExitSizes(
        win_atr=max(0.0, float(ret[right].mean())),
        loss_atr=max(0.0, -float(ret[~right].mean())),
        hold_s=float(held.mean()) * bar_s,
        rows=int(sig.sum()),
        win_rate=float(right.mean()),
        mean_p=float(conf[sig].mean()),
        mean_atr=float(ret.mean()),
    )
