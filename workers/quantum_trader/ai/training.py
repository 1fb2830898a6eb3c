"""Walk-forward training and the honest out-of-sample report (pure: arrays in, bundle + report out).

Procedure on a pooled :class:`~quantum_trader.ai.dataset.Dataset` with time cut into
``n_blocks`` blocks B0 … B(K−1):

1. **Base models** (one LightGBM per horizon, default ``H`` and ``2H``): for each block
   Bk, k ≥ 1, train on rows before Bk (minus purge + embargo, dead-band rows
   dropped) and predict Bk → out-of-fold (OOF) base scores for B1 … B(K−1).
2. **Meta model** (stacking = calibration): for each Bk, k ≥ 2, fit a logistic
   regression of "up over H" on the OOF base scores of rows before Bk (same gap),
   i.e. a multivariate Platt scaling fitted on data the base models never trained
   on; predict Bk → calibrated P(up).
3. **Meta-label model**: on the same rows, LightGBM predicts whether the primary
   signal (BUY if P(up) ≥ 0.5 else SELL) earned more than ``cost_bps`` over H bars;
   its probability ≥ ``metalabel_threshold`` sets ``rl_gate_pass``.
4. **Report**: every metric is computed on B2 … B(K−1), where base, meta and
   meta-label predictions all come from models that never saw those bars (nor the
   purge/embargo gap before them).
5. **Final bundle**: base models refitted on all rows, meta model on all OOF rows,
   meta-label model on all OOF rows (standard stacking).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.dataset import DEAD_BAND_SIGMA, Dataset, walk_forward_folds
from quantum_trader.ai.evaluation import (
    auc,
    brier,
    confidence_buckets,
    ece,
    fit_logistic,
    log_loss,
    sigmoid,
)
from quantum_trader.ai.model import ModelBundle, meta_inputs
from quantum_trader.core.profile import AiSettings

if TYPE_CHECKING:
    import lightgbm

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Progress = Callable[[str], None]

MIN_TRAIN_ROWS: Final = 500


class TrainingError(ValueError):
    """Not enough (or unusable) data to train and evaluate honestly."""


@dataclass(frozen=True, slots=True)
class TrainParams:
    """Hyper-parameters (recorded in the model card)."""

    horizons: tuple[int, ...]
    n_blocks: int = 6
    purge: int = 0  # bars; 0 → the longest horizon
    embargo: int = 0  # bars; 0 → the primary horizon
    rounds: int = 60  # 60 × lr 0.1 matched 150 × 0.05 OOS on the sim at 40 % of the inference cost
    metalabel_rounds: int = 40
    num_leaves: int = 15
    learning_rate: float = 0.1
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.7
    lambda_l2: float = 5.0
    threads: int = 1  # 2 is ~1.7x faster on a quiet machine, far slower on a contended one
    seed: int = 7
    dead_band: float = DEAD_BAND_SIGMA
    cost_bps: float = 8.0  # round-trip taker fees assumed by the meta-label target
    metalabel_threshold: float = 0.5
    hold_below: float = 0.55

    @property
    def primary(self) -> int:
        return self.horizons[0]

    @property
    def purge_bars(self) -> int:
        return max(self.purge, max(self.horizons))

    @property
    def embargo_bars(self) -> int:
        return max(self.embargo, self.primary)

    @classmethod
    def from_settings(cls, ai: AiSettings, **overrides: Any) -> TrainParams:
        h = ai.horizon_bars
        base = cls(horizons=(h, 2 * h), hold_below=ai.hold_below)
        return replace(base, **overrides)

    def lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "max_bin": 63,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }


@dataclass(frozen=True, slots=True)
class TrainResult:
    bundle: ModelBundle
    report: dict[str, Any]  # JSON-able out-of-sample report
    oos_mask: B = field(repr=False)
    oos_p_up: F64 = field(repr=False)
    seconds: float = 0.0


def _fit(x: F64, y: F64, params: TrainParams, *, rounds: int) -> lightgbm.Booster:
    import lightgbm

    if x.shape[0] < MIN_TRAIN_ROWS:
        raise TrainingError(f"only {x.shape[0]} training rows (need {MIN_TRAIN_ROWS})")
    data = lightgbm.Dataset(x, label=y, params={"max_bin": 63, "verbose": -1})
    return lightgbm.train(params.lgb_params(), data, num_boost_round=rounds)


def _raw(b: lightgbm.Booster, x: F64) -> F64:
    out: F64 = np.asarray(b.predict(x, raw_score=True, num_threads=1), dtype=np.float64)
    return out


def quality_gate(report: dict[str, Any], ai: AiSettings) -> tuple[bool, list[str]]:
    """Promote only if OOS AUC ≥ ai.minAuc and ECE ≤ ai.maxCalibrationError. Returns (passed, reasons)."""
    reasons = []
    if not report["auc"] >= ai.min_auc:
        reasons.append(f"auc {report['auc']:.4f} < minAuc {ai.min_auc}")
    if not report["ece"] <= ai.max_calibration_error:
        reasons.append(f"ece {report['ece']:.4f} > maxCalibrationError {ai.max_calibration_error}")
    return (not reasons, reasons)


def _profitable(p_up: F64, fwd: F64, cost_bps: float) -> F64:
    side = np.where(p_up >= 0.5, 1.0, -1.0)
    out: F64 = (side * fwd > cost_bps / 10_000.0).astype(np.float64)
    return out


def train_walk_forward(
    ds: Dataset,
    *,
    params: TrainParams,
    version: str,
    timeframe: str,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate out-of-sample, refit the final bundle. Raises TrainingError on too little data."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    if ds.n < MIN_TRAIN_ROWS * 4:
        raise TrainingError(f"only {ds.n} usable rows (need {MIN_TRAIN_ROWS * 4})")
    hs = params.horizons
    h0 = params.primary
    y = ds.label_up(h0)
    folds = walk_forward_folds(
        ds.t, n_blocks=params.n_blocks, purge=params.purge_bars, embargo=params.embargo_bars, first=1
    )
    oof = np.full((ds.n, len(hs)), np.nan)
    fold_rows: list[dict[str, Any]] = []
    for fold in folds:
        tr = fold.train_mask(ds.t)
        te = fold.test_mask(ds.t)
        if not te.any():
            continue
        for j, h in enumerate(hs):
            m = tr & ds.trainable(h, dead_band=params.dead_band)
            say(f"base model h={h} fold {fold.k}/{params.n_blocks - 1}: {int(m.sum())} training rows")
            booster = _fit(ds.x[m], ds.label_up(h)[m], params, rounds=params.rounds)
            oof[te, j] = _raw(booster, ds.x[te])
        fold_rows.append(
            {"fold": fold.k, "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
             "train_end_bar": fold.train_end, "test_bars": [fold.test_start, fold.test_end]}
        )

    has_oof = np.all(np.isfinite(oof), axis=1)
    p_oos = np.full(ds.n, np.nan)
    pp_oos = np.full(ds.n, np.nan)
    fwd0 = ds.fwd[h0]
    for fold in folds[1:]:
        tr = fold.train_mask(ds.t) & has_oof
        te = fold.test_mask(ds.t) & has_oof
        if tr.sum() < MIN_TRAIN_ROWS or not te.any():
            raise TrainingError(f"fold {fold.k}: too few out-of-fold rows for the meta model")
        coef, icpt = fit_logistic(oof[tr], y[tr])
        p_tr = sigmoid(oof[tr] @ coef + icpt)
        p_te = sigmoid(oof[te] @ coef + icpt)
        say(f"meta + meta-label fold {fold.k}/{params.n_blocks - 1}: {int(tr.sum())} rows")
        ml = _fit(
            meta_inputs(ds.x[tr], oof[tr], p_tr),
            _profitable(p_tr, fwd0[tr], params.cost_bps),
            params,
            rounds=params.metalabel_rounds,
        )
        p_oos[te] = p_te
        pp_oos[te] = np.asarray(ml.predict(meta_inputs(ds.x[te], oof[te], p_te), num_threads=1))
        for row in fold_rows:
            if row["fold"] == fold.k:
                row["auc"] = round(auc(y[te], p_te), 4)

    oos = np.isfinite(p_oos)
    report = _report(ds, params=params, oos=oos, p=p_oos, pp=pp_oos, oof=oof)
    report["folds"] = fold_rows

    say(f"final models on all {ds.n} rows")
    finals = tuple(
        _fit(ds.x[m], ds.label_up(h)[m], params, rounds=params.rounds)
        for h in hs
        for m in [ds.trainable(h, dead_band=params.dead_band)]
    )
    coef, icpt = fit_logistic(oof[has_oof], y[has_oof])
    p_all = sigmoid(oof[has_oof] @ coef + icpt)
    ml_final = _fit(
        meta_inputs(ds.x[has_oof], oof[has_oof], p_all),
        _profitable(p_all, fwd0[has_oof], params.cost_bps),
        params,
        rounds=params.metalabel_rounds,
    )
    bundle = ModelBundle(
        version=version,
        timeframe=timeframe,
        horizons=hs,
        primary_horizon=h0,
        boosters=finals,
        meta_coef=coef,
        meta_intercept=icpt,
        metalabel=ml_final,
        metalabel_threshold=params.metalabel_threshold,
    )
    seconds = time.perf_counter() - started
    report["train_seconds"] = round(seconds, 3)
    report["meta_model"] = {"coef": [round(float(c), 5) for c in coef], "intercept": round(icpt, 5)}
    return TrainResult(bundle=bundle, report=report, oos_mask=oos, oos_p_up=p_oos, seconds=seconds)


def _report(
    ds: Dataset, *, params: TrainParams, oos: B, p: F64, pp: F64, oof: F64
) -> dict[str, Any]:
    h0 = params.primary
    y = ds.label_up(h0)[oos]
    po = p[oos]
    base_rate = float(y.mean())
    const = np.full_like(y, base_rate)
    ll = log_loss(y, po)
    out: dict[str, Any] = {
        "rows": ds.n,
        "oos_rows": int(oos.sum()),
        "symbols": len(ds.symbols),
        "oos_window_ts": [int(ds.ts[oos].min()), int(ds.ts[oos].max())],
        "horizon_bars": h0,
        "horizons": list(params.horizons),
        "purge_bars": params.purge_bars,
        "embargo_bars": params.embargo_bars,
        "n_blocks": params.n_blocks,
        "base_rate": round(base_rate, 4),
        "auc": round(auc(y, po), 4),
        "log_loss": round(ll, 5),
        "log_loss_constant": round(log_loss(y, const), 5),
        "brier": round(brier(y, po), 5),
        "ece": round(ece(y, po), 4),
        "hit_rate": round(float(np.mean(np.where(po >= 0.5, y, 1.0 - y))), 4),
        "signal_share": round(float(np.mean(np.maximum(po, 1 - po) >= params.hold_below)), 4),
        "buckets": [asdict(b) for b in confidence_buckets(y, po)],
        "base_models": {
            str(h): round(auc(ds.label_up(h)[oos], sigmoid(oof[oos, j])), 4)
            for j, h in enumerate(params.horizons)
        },
    }
    prof = _profitable(po, ds.fwd[h0][oos], params.cost_bps)
    passed = pp[oos] >= params.metalabel_threshold
    out["metalabel"] = {
        "auc": round(auc(prof, pp[oos]), 4),
        "threshold": params.metalabel_threshold,
        "pass_rate": round(float(passed.mean()), 4),
        "profitable_rate_pass": round(float(prof[passed].mean()), 4) if passed.any() else None,
        "profitable_rate_fail": round(float(prof[~passed].mean()), 4) if (~passed).any() else None,
        "cost_bps": params.cost_bps,
    }
    if ds.oracle is not None:
        o = ds.oracle[oos]
        o_auc = auc(y, o)
        o_ll = log_loss(y, o)
        ll_c = log_loss(y, const)
        out["oracle"] = {
            "auc": round(o_auc, 4),
            "log_loss": round(o_ll, 5),
            "ece": round(ece(y, o), 4),
            "auc_skill_share": round((auc(y, po) - 0.5) / (o_auc - 0.5), 4) if o_auc > 0.5 else None,
            "log_loss_skill_share": round((ll_c - ll) / (ll_c - o_ll), 4) if ll_c > o_ll else None,
        }
    return out
