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
   signal (BUY if P(up) ≥ 0.5 else SELL) earned more than ``cost_bps`` under the exit rules
   (stop, take-profit, time exit at H — the executor's; H bars held when the dataset has none);
   its probability ≥ ``metalabel_threshold`` sets ``rl_gate_pass``, and when passing signals
   earned more than all signals out of sample it also filters: a failing signal becomes HOLD.
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

from quantum_trader.ai import scorecard
from quantum_trader.ai.baselines import BASELINES, Baseline, fit_baseline, recalibrate
from quantum_trader.ai.dataset import DEAD_BAND_SIGMA, Dataset, Fold, walk_forward_folds
from quantum_trader.ai.evaluation import (
    auc,
    brier,
    confidence_buckets,
    ece,
    fit_logistic,
    log_loss,
    sigmoid,
)
from quantum_trader.ai.exits import ExitSizes, measure
from quantum_trader.ai.features import FEATURE_NAMES, index
from quantum_trader.ai.guards import guard_reasons
from quantum_trader.ai.model import ModelBundle, meta_inputs
from quantum_trader.core.profile import AiSettings
from quantum_trader.market.base import TIMEFRAME_MS

if TYPE_CHECKING:
    import lightgbm

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
Progress = Callable[[str], None]

MIN_TRAIN_ROWS: Final = 500
IMPORTANCE_ROWS: Final = 3000  # held-out rows per fold scored for permutation importance (seeded sample)


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
    features: tuple[str, ...] = FEATURE_NAMES  # the model's inputs (a subset only to test the gate)
    importance: bool = True  # permutation importance in the report (off only to keep unit tests fast)

    @property
    def columns(self) -> list[int]:
        return [index(n) for n in self.features]

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
    fallback: Baseline = field(repr=False)  # the best baseline, recalibrated on its OOS record
    baseline_oos: dict[str, F64] = field(repr=False)  # each baseline's OOS P(up) (NaN elsewhere)
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
    """Promote only if the model beats the best baseline (:mod:`~quantum_trader.ai.scorecard`), its
    OOS AUC ≥ ai.minAuc and ECE ≤ ai.maxCalibrationError. Returns (passed, reasons)."""
    reasons = []
    comparison = report.get("vs_baseline")
    if not isinstance(comparison, dict):
        reasons.append(f"{scorecard.REASON_NOT_BETTER}: no baseline comparison in the report")
    else:
        why = scorecard.not_better_reason(comparison)
        if why:
            reasons.append(why)
    reasons.extend(guard_reasons(report, timeframe=ai.timeframe))
    if not report["auc"] >= ai.min_auc:
        reasons.append(f"auc {report['auc']:.4f} < minAuc {ai.min_auc}")
    if not report["ece"] <= ai.max_calibration_error:
        reasons.append(f"ece {report['ece']:.4f} > maxCalibrationError {ai.max_calibration_error}")
    return (not reasons, reasons)


def exit_sizes(ds: Dataset, *, rows: B, p_up: F64, hold_below: float, bar_s: float) -> ExitSizes | None:
    """Win/loss sizes (ATRs) and holding time of the signals among ``rows`` under the dataset's exit
    rules (:func:`~quantum_trader.ai.exits.measure`); None without exit rules or with too few signals."""
    if ds.exit_long is None or ds.exit_short is None or ds.hold_long is None or ds.hold_short is None:
        return None
    return measure(p_up=p_up[rows], label_up=ds.label_up(ds.barrier_horizon)[rows], ret_long=ds.exit_long[rows],
                   ret_short=ds.exit_short[rows], hold_long=ds.hold_long[rows], hold_short=ds.hold_short[rows],
                   atr_pct=ds.x[rows, index("atr_pct")], hold_below=hold_below, bar_s=bar_s)


def _trade_net(ds: Dataset, rows: B, p_up: F64, params: TrainParams) -> F64:
    """Net log return after ``cost_bps`` of the side the model picks (BUY if P(up) ≥ 0.5) on ``rows``:
    under the exit rules (stop, take-profit, time) when the dataset carries them, else held H bars."""
    buy = p_up >= 0.5
    if ds.exit_long is not None and ds.exit_short is not None:
        gross = np.where(buy, ds.exit_long[rows], ds.exit_short[rows])
    else:
        gross = np.where(buy, 1.0, -1.0) * ds.fwd[params.primary][rows]
    out: F64 = gross - params.cost_bps / 10_000.0
    return out


def _profitable(ds: Dataset, rows: B, p_up: F64, params: TrainParams) -> F64:
    out: F64 = (_trade_net(ds, rows, p_up, params) > 0.0).astype(np.float64)
    return out


def train_walk_forward(
    ds: Dataset,
    *,
    params: TrainParams,
    version: str,
    timeframe: str,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate out-of-sample beside the baselines, refit the final bundle and the fallback.

    Raises TrainingError on too little data.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    if ds.n < MIN_TRAIN_ROWS * 4:
        raise TrainingError(f"only {ds.n} usable rows (need {MIN_TRAIN_ROWS * 4})")
    ev = _out_of_sample(ds, params=params, timeframe=timeframe, say=say)
    say(f"final models on all {ds.n} rows")
    bundle = _final_bundle(ds, params=params, ev=ev, version=version, timeframe=timeframe)
    fallback = _final_fallback(ds, params=params, ev=ev)
    seconds = time.perf_counter() - started
    report = ev.report
    report["train_seconds"] = round(seconds, 3)
    report["meta_model"] = {"coef": [round(float(c), 5) for c in bundle.meta_coef],
                            "intercept": round(bundle.meta_intercept, 5)}
    report["fallback"] = fallback.to_dict()
    return TrainResult(bundle=bundle, report=report, oos_mask=ev.oos, oos_p_up=ev.p_oos, fallback=fallback,
                       baseline_oos=ev.base_oos, seconds=seconds)


@dataclass(frozen=True)
class _OutOfSample:
    """What the walk-forward learnt out of sample: the inputs the final refit and the fallback reuse."""

    x: F64  # the feature columns in use
    y: F64  # the primary horizon's label
    oof: F64  # base models' out-of-fold logits
    has_oof: B
    p_oos: F64  # the model's OOS P(up) (NaN outside the test folds)
    oos: B
    base_oos: dict[str, F64]
    sizes: ExitSizes | None
    bar_s: float
    report: dict[str, Any]


def _out_of_sample(ds: Dataset, *, params: TrainParams, timeframe: str, say: Progress) -> _OutOfSample:
    """Base and meta models fold by fold, the baselines on the same folds, the report and its scorecard."""
    x = ds.x[:, params.columns]
    y = ds.label_up(params.primary)
    folds = walk_forward_folds(
        ds.t, n_blocks=params.n_blocks, purge=params.purge_bars, embargo=params.embargo_bars, first=1
    )
    oof, fold_rows, fold_boosters = _base_models(ds, x, params=params, folds=folds, say=say)
    p_oos, pp_oos, metas, stacking = _meta_models(ds, x, params=params, folds=folds[1:], oof=oof, say=say)
    for row in fold_rows:
        te = np.isfinite(p_oos) & (ds.t >= row["test_bars"][0]) & (ds.t <= row["test_bars"][1])
        if te.any():
            row["auc"] = round(auc(y[te], p_oos[te]), 4)
    oos = np.isfinite(p_oos)
    say("baselines on the same folds")
    base_oos = _baseline_predictions(ds, y, folds=folds[1:], oos=oos, horizon=params.primary)
    report = _report(ds, params=params, oos=oos, p=p_oos, pp=pp_oos, oof=oof)
    report["folds"] = fold_rows
    report["stacking"] = stacking
    bar_s = TIMEFRAME_MS[timeframe] / 1000.0 if timeframe in TIMEFRAME_MS else 0.0
    sizes = exit_sizes(ds, rows=oos, p_up=p_oos, hold_below=params.hold_below, bar_s=bar_s)
    report["exit_sizes"] = None if sizes is None else sizes.to_dict()
    card = scorecard.score(
        y=y[oos], t=ds.t[oos], predictions={"model": p_oos[oos], **{n: b[oos] for n, b in base_oos.items()}},
        edges=[(f.test_start, f.test_end) for f in folds[1:]], fold_ks=[f.k for f in folds[1:]], seed=params.seed,
    )
    report.update(model=card["model"], baselines=card["baselines"], vs_baseline=card["comparison"])
    report["importance"] = []
    if params.importance:
        say("permutation importance on the held-out folds")
        report["importance"] = _permutation_importance(
            x, y, t=ds.t, params=params, folds=folds[1:], oos=oos, boosters=fold_boosters, metas=metas
        )
    return _OutOfSample(x=x, y=y, oof=oof, has_oof=np.all(np.isfinite(oof), axis=1), p_oos=p_oos, oos=oos,
                        base_oos=base_oos, sizes=sizes, bar_s=bar_s, report=report)


def _final_bundle(ds: Dataset, *, params: TrainParams, ev: _OutOfSample, version: str, timeframe: str) -> ModelBundle:
    """Every horizon's booster on all rows, the meta model on the out-of-fold logits (stacked only where
    stacking beat the primary model out of sample), the meta-label model."""
    x, y, oof, has = ev.x, ev.y, ev.oof, ev.has_oof
    finals = tuple(
        _fit(x[m], ds.label_up(h)[m], params, rounds=params.rounds)
        for h in params.horizons
        for m in [ds.trainable(h, dead_band=params.dead_band)]
    )
    if ev.report["stacking"]["kept"]:
        coef, icpt = fit_logistic(oof[has], y[has])
    else:
        one, icpt = fit_logistic(oof[has, :1], y[has])
        coef = np.r_[one, np.zeros(oof.shape[1] - 1)]
    p_all = sigmoid(oof[has] @ coef + icpt)
    ml_final = _fit(meta_inputs(x[has], oof[has], p_all), _profitable(ds, has, p_all, params), params,
                    rounds=params.metalabel_rounds)
    return ModelBundle(
        version=version,
        timeframe=timeframe,
        horizons=params.horizons,
        primary_horizon=params.primary,
        boosters=finals,
        meta_coef=coef,
        meta_intercept=icpt,
        metalabel=ml_final,
        metalabel_threshold=params.metalabel_threshold,
        feature_names=params.features,
        metalabel_filter=bool(ev.report["metalabel"]["filter"]),
        exit_sizes=ev.sizes,
    )


def _final_fallback(ds: Dataset, *, params: TrainParams, ev: _OutOfSample) -> Baseline:
    """The best baseline, fitted on all rows, recalibrated on its own out-of-sample record, with its own
    measured exit sizes."""
    best = str(ev.report["vs_baseline"]["best_baseline"])
    fallback = recalibrate(
        fit_baseline(best, lags=ds.lags, y=ev.y, horizon=params.primary),
        p_oos=ev.base_oos[best][ev.oos], y_oos=ev.y[ev.oos],
    )
    p_fallback = np.full(ds.n, np.nan)
    p_fallback[ev.oos] = fallback.p_up(ds.lags[ev.oos])
    sizes = exit_sizes(ds, rows=ev.oos, p_up=p_fallback, hold_below=params.hold_below, bar_s=ev.bar_s)
    return replace(fallback, exit_sizes=sizes)


def _base_models(
    ds: Dataset, x: F64, *, params: TrainParams, folds: list[Fold], say: Progress
) -> tuple[F64, list[dict[str, Any]], dict[int, tuple[lightgbm.Booster, ...]]]:
    """Out-of-fold base scores (one column per horizon), fold descriptions, each fold's boosters."""
    hs = params.horizons
    oof = np.full((ds.n, len(hs)), np.nan)
    rows: list[dict[str, Any]] = []
    boosters: dict[int, tuple[lightgbm.Booster, ...]] = {}
    for fold in folds:
        tr = fold.train_mask(ds.t)
        te = fold.test_mask(ds.t)
        if not te.any():
            continue
        fitted = []
        for j, h in enumerate(hs):
            m = tr & ds.trainable(h, dead_band=params.dead_band)
            say(f"base model h={h} fold {fold.k}/{params.n_blocks - 1}: {int(m.sum())} training rows")
            booster = _fit(x[m], ds.label_up(h)[m], params, rounds=params.rounds)
            oof[te, j] = _raw(booster, x[te])
            fitted.append(booster)
        boosters[fold.k] = tuple(fitted)
        rows.append(
            {"fold": fold.k, "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
             "train_end_bar": fold.train_end, "test_bars": [fold.test_start, fold.test_end]}
        )
    return oof, rows, boosters


def _meta_models(
    ds: Dataset, x: F64, *, params: TrainParams, folds: list[Fold], oof: F64, say: Progress
) -> tuple[F64, F64, dict[int, tuple[F64, float]], dict[str, Any]]:
    """Out-of-sample P(up) and P(profitable) from per-fold meta and meta-label models.

    The stacking layer (a logistic regression on every horizon's base score) is kept only if its
    pooled out-of-sample log loss beats the primary base model alone (calibrated the same way);
    otherwise the meta model reads the primary score only (the other coefficients are 0).
    """
    has_oof = np.all(np.isfinite(oof), axis=1)
    y = ds.label_up(params.primary)
    fits: dict[str, dict[int, tuple[F64, float]]] = {"stack": {}, "single": {}}
    p_alt = {"stack": np.full(ds.n, np.nan), "single": np.full(ds.n, np.nan)}
    for fold in folds:
        tr = fold.train_mask(ds.t) & has_oof
        te = fold.test_mask(ds.t) & has_oof
        if tr.sum() < MIN_TRAIN_ROWS or not te.any():
            raise TrainingError(f"fold {fold.k}: too few out-of-fold rows for the meta model")
        coef, icpt = fit_logistic(oof[tr], y[tr])
        fits["stack"][fold.k] = (coef, icpt)
        one, icpt1 = fit_logistic(oof[tr, :1], y[tr])
        fits["single"][fold.k] = (np.r_[one, np.zeros(oof.shape[1] - 1)], icpt1)
        for kind in ("stack", "single"):
            c, i = fits[kind][fold.k]
            p_alt[kind][te] = sigmoid(oof[te] @ c + i)
    ok = np.isfinite(p_alt["stack"])
    ll = {kind: log_loss(y[ok], p[ok]) for kind, p in p_alt.items()}
    kind = "stack" if len(params.horizons) > 1 and ll["stack"] < ll["single"] else "single"
    stacking = {"kept": kind == "stack", "stack_log_loss": round(ll["stack"], 5),
                "single_log_loss": round(ll["single"], 5)}
    p_oos = p_alt[kind]
    pp_oos = np.full(ds.n, np.nan)
    for fold in folds:
        tr = fold.train_mask(ds.t) & has_oof
        te = fold.test_mask(ds.t) & has_oof
        coef, icpt = fits[kind][fold.k]
        p_tr = sigmoid(oof[tr] @ coef + icpt)
        say(f"meta + meta-label fold {fold.k}/{params.n_blocks - 1}: {int(tr.sum())} rows")
        ml = _fit(
            meta_inputs(x[tr], oof[tr], p_tr),
            _profitable(ds, tr, p_tr, params),
            params,
            rounds=params.metalabel_rounds,
        )
        pp_oos[te] = np.asarray(ml.predict(meta_inputs(x[te], oof[te], p_oos[te]), num_threads=1))
    return p_oos, pp_oos, fits[kind], stacking


def _baseline_predictions(ds: Dataset, y: F64, *, folds: list[Fold], oos: B, horizon: int) -> dict[str, F64]:
    """Each baseline fitted on the fold's training rows, predicting the fold's out-of-sample rows."""
    out = {name: np.full(ds.n, np.nan) for name in BASELINES}
    for fold in folds:
        tr = fold.train_mask(ds.t)
        te = fold.test_mask(ds.t) & oos
        if not te.any():
            continue
        for name in BASELINES:
            b = fit_baseline(name, lags=ds.lags[tr], y=y[tr], horizon=horizon)
            out[name][te] = b.p_up(ds.lags[te])
    return out


def _permutation_importance(
    x: F64,
    y: F64,
    *,
    t: I64,
    params: TrainParams,
    folds: list[Fold],
    oos: B,
    boosters: dict[int, tuple[lightgbm.Booster, ...]],
    metas: dict[int, tuple[F64, float]],
) -> list[dict[str, Any]]:
    """Out-of-sample log loss increase when one feature is shuffled within each held-out fold
    (on at most ``IMPORTANCE_ROWS`` rows of each).

    Each fold's rows are scored by that fold's base and meta models (never trained on them);
    a feature whose shuffling costs nothing carries none of the model's out-of-sample gain.
    """
    rng = np.random.default_rng(params.seed)
    parts = []
    for f in folds:
        rows = np.flatnonzero(oos & f.test_mask(t))
        if f.k in boosters and f.k in metas and rows.size:
            if rows.size > IMPORTANCE_ROWS:
                rows = np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False))
            parts.append((f.k, rows))
    if not parts:
        return []

    def p_up(k: int, xs: F64) -> F64:
        z = np.stack([_raw(b, xs) for b in boosters[k]], axis=1)
        coef, icpt = metas[k]
        return sigmoid(z @ coef + icpt)

    y_all = np.concatenate([y[m] for _, m in parts])
    base = log_loss(y_all, np.concatenate([p_up(k, x[m]) for k, m in parts]))
    out = []
    for j, name in enumerate(params.features):
        preds = []
        for k, m in parts:
            xs = x[m].copy()
            xs[:, j] = rng.permutation(xs[:, j])
            preds.append(p_up(k, xs))
        out.append({"feature": name, "log_loss_increase": round(log_loss(y_all, np.concatenate(preds)) - base, 6)})
    return sorted(out, key=lambda d: -float(d["log_loss_increase"]))


def _bps(v: F64) -> float | None:
    return round(float(v.mean()) * 10_000, 2) if v.size else None


def _metalabel_report(ds: Dataset, *, oos: B, p: F64, pp: F64, params: TrainParams) -> dict[str, Any]:
    """How the meta-label model sorts the model's signals out of sample, and whether it filters.

    Signals = rows whose confidence reaches ``hold_below``; net = the chosen side's return under the
    exit rules after ``cost_bps``. The filter (a failing meta-label turns the signal into HOLD) is
    kept only if the passing signals' mean net return beats that of all signals.
    """
    net = _trade_net(ds, oos, p, params)
    prof = (net > 0.0).astype(np.float64)
    passed = pp >= params.metalabel_threshold
    sig = np.maximum(p, 1.0 - p) >= params.hold_below
    all_bps, pass_bps = _bps(net[sig]), _bps(net[sig & passed])
    return {
        "auc": round(auc(prof, pp), 4),
        "threshold": params.metalabel_threshold,
        "pass_rate": round(float(passed.mean()), 4),
        "profitable_rate_pass": round(float(prof[passed].mean()), 4) if passed.any() else None,
        "profitable_rate_fail": round(float(prof[~passed].mean()), 4) if (~passed).any() else None,
        "cost_bps": params.cost_bps,
        "exits": "stop/take-profit/time" if ds.exit_long is not None else f"held {params.primary} bars",
        "signals": int(sig.sum()),
        "net_bps_signals": all_bps,
        "net_bps_passing": pass_bps,
        "filter": bool(all_bps is not None and pass_bps is not None and pass_bps > all_bps),
    }


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
    out["metalabel"] = _metalabel_report(ds, oos=oos, p=po, pp=pp[oos], params=params)
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
