"""The trained model bundle: base boosters, stacked meta model, meta-label model; its artefact format.

Prediction for a feature matrix ``x`` (rows = symbols):

1. each base LightGBM model (one per horizon) gives a raw score (log-odds of "up over h bars");
2. the meta model — a logistic regression fitted on the base models' *out-of-fold*
   scores — maps them to a calibrated P(up over the primary horizon);
3. the meta-label model (LightGBM on features + base scores + P(up)) gives
   P(the primary signal would have been profitable after costs) → ``rl_gate_pass``.

Artefact: zlib-compressed JSON (``format: qt-ai-bundle/1``) with the boosters as
LightGBM model text. The registry stores its SHA-256 in the model card; a
mismatch, a parse error, a wrong feature list or a non-finite smoke prediction
raises :class:`ArtifactError` — such a version is never promoted or loaded.

LightGBM is imported only inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.evaluation import sigmoid
from quantum_trader.ai.exits import ExitSizes
from quantum_trader.ai.features import FEATURE_NAMES, N_FEATURES, index

if TYPE_CHECKING:
    import lightgbm

F64 = npt.NDArray[np.float64]

ARTIFACT_FORMAT: Final = "qt-ai-bundle/1"
PREDICT_THREADS: Final = 1  # 540 rows: thread start-up costs more than it saves


class ArtifactError(ValueError):
    """A model artefact that cannot be used; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Prediction:
    p_up: F64  # calibrated P(close[t+H] > close[t])
    p_profit: F64  # P(the primary signal is profitable after costs)
    base_scores: F64  # (N, horizons) raw base-model log-odds


def meta_inputs(x: F64, base_scores: F64, p_up: F64) -> F64:
    """Inputs of the meta-label model: features, base scores, P(up)."""
    out: F64 = np.hstack([x, base_scores, p_up[:, None]])
    return out


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """Everything needed to turn feature rows into (P(up), P(profitable))."""

    version: str
    timeframe: str
    horizons: tuple[int, ...]
    primary_horizon: int
    boosters: tuple[lightgbm.Booster, ...]  # one per horizon, same order
    meta_coef: F64
    meta_intercept: float
    metalabel: lightgbm.Booster
    metalabel_threshold: float
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metalabel_filter: bool = False  # a failing meta-label turns the signal into HOLD (earned OOS)
    exit_sizes: ExitSizes | None = None  # OOS win/loss sizes under the exits (None: the router uses SL/TP)

    def base_scores(self, x: F64) -> F64:
        cols = [np.asarray(b.predict(x, raw_score=True, num_threads=PREDICT_THREADS)) for b in self.boosters]
        out: F64 = np.stack(cols, axis=1).astype(np.float64)
        return out

    def predict(self, x: F64, *, hold_below: float | None = None) -> Prediction:
        """Predict every row of the full feature matrix ``(rows, N_FEATURES)`` (the bundle reads its
        own ``feature_names`` columns). With ``hold_below``, the meta-label model runs only on rows whose
        confidence reaches it (the others are HOLD, whose gate never passes: ``p_profit`` = 0)."""
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"expected (rows, {N_FEATURES}) features, got {x.shape}")
        if self.feature_names != FEATURE_NAMES:
            x = x[:, [index(n) for n in self.feature_names]]
        z = self.base_scores(x)
        p_up = sigmoid(z @ self.meta_coef + self.meta_intercept)
        rows = np.ones(x.shape[0], dtype=bool)
        if hold_below is not None:
            rows = np.maximum(p_up, 1.0 - p_up) >= hold_below
        p_profit = np.zeros(x.shape[0])
        if rows.any():
            p_profit[rows] = self.metalabel.predict(
                meta_inputs(x[rows], z[rows], p_up[rows]), num_threads=PREDICT_THREADS
            )
        return Prediction(p_up=p_up, p_profit=p_profit, base_scores=z)

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": ARTIFACT_FORMAT,
            "version": self.version,
            "timeframe": self.timeframe,
            "horizons": list(self.horizons),
            "primary_horizon": self.primary_horizon,
            "feature_names": list(self.feature_names),
            "boosters": [b.model_to_string() for b in self.boosters],
            "meta": {"coef": [float(c) for c in self.meta_coef], "intercept": self.meta_intercept},
            "metalabel": self.metalabel.model_to_string(),
            "metalabel_threshold": self.metalabel_threshold,
            "metalabel_filter": self.metalabel_filter,
        }
        if self.exit_sizes is not None:
            doc["exit_sizes"] = self.exit_sizes.to_dict()
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), level=6)


def load_bundle(data: bytes, *, expected_sha256: str | None = None) -> ModelBundle:
    """Parse and verify an artefact; raise :class:`ArtifactError` with a reason code on any defect."""
    import lightgbm

    if expected_sha256 is not None and sha256_hex(data) != expected_sha256:
        raise ArtifactError("checksum_mismatch", "artefact bytes differ from the model card's sha256")
    try:
        doc = json.loads(zlib.decompress(data).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError("unreadable", type(exc).__name__) from None
    if not isinstance(doc, dict) or doc.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError("unknown_format", str(doc.get("format") if isinstance(doc, dict) else type(doc)))
    try:
        names = tuple(str(n) for n in doc["feature_names"])
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if unknown or not names or len(set(names)) != len(names):
            raise ArtifactError("feature_mismatch", f"artefact features unknown to this build: {unknown[:5]}")
        horizons = tuple(int(h) for h in doc["horizons"])
        boosters = tuple(lightgbm.Booster(model_str=str(s)) for s in doc["boosters"])
        if len(boosters) != len(horizons) or not boosters:
            raise ArtifactError("malformed", "one base booster per horizon expected")
        meta_coef = np.asarray(doc["meta"]["coef"], dtype=np.float64)
        if meta_coef.shape != (len(horizons),):
            raise ArtifactError("malformed", "meta coefficients do not match the horizons")
        bundle = ModelBundle(
            version=str(doc["version"]),
            timeframe=str(doc["timeframe"]),
            horizons=horizons,
            primary_horizon=int(doc["primary_horizon"]),
            boosters=boosters,
            meta_coef=meta_coef,
            meta_intercept=float(doc["meta"]["intercept"]),
            metalabel=lightgbm.Booster(model_str=str(doc["metalabel"])),
            metalabel_threshold=float(doc["metalabel_threshold"]),
            feature_names=names,
            metalabel_filter=doc.get("metalabel_filter", False) is True,
            exit_sizes=None if doc.get("exit_sizes") is None else ExitSizes.from_dict(doc["exit_sizes"]),
        )
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, lightgbm.basic.LightGBMError) as exc:
        raise ArtifactError("malformed", f"{type(exc).__name__}: {exc}"[:200]) from None
    for b in (*bundle.boosters, bundle.metalabel):
        if b.num_feature() not in (len(bundle.feature_names), len(bundle.feature_names) + len(horizons) + 1):
            raise ArtifactError("malformed", "booster feature count")
    smoke = bundle.predict(np.zeros((2, N_FEATURES)))
    if not (np.all(np.isfinite(smoke.p_up)) and np.all(np.isfinite(smoke.p_profit))):
        raise ArtifactError("non_finite", "smoke prediction is not finite")
    return bundle
