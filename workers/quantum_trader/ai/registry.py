"""Model registry in Redis: artefacts, model cards, the promoted version.

* ``Keys.model_artifact(version)`` — the artefact (:mod:`quantum_trader.ai.model`), base64 text so
  that clients with ``decode_responses=True`` can read it;
* ``Keys.model_registry`` — hash ``version → model card JSON`` (features, training window,
  parameters, out-of-sample metrics, data hash, artefact SHA-256, gate result, status);
* ``Keys.model_promoted`` — the version the ai worker serves (hot-reloaded by polling);
* ``Keys.model_fallback`` — the best baseline of the latest training run, recalibrated on its
  own out-of-sample record (:mod:`quantum_trader.ai.baselines`): what the worker serves while
  no version is promoted.

A version is promoted only if (1) its artefact, read back from Redis, loads and reproduces
the trainer's predictions, and (2) it passes the quality gate (it beats the best baseline,
OOS AUC ≥ ai.minAuc and ECE ≤ ai.maxCalibrationError). Otherwise it is stored with
``status: rejected`` and the reasons, and the promoted pointer does not move. ``force``
promotes a version whose only failures are the quality gate's; its card records
``forced: true`` and the reasons it overrode. A defective artefact is never promoted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import redis.asyncio as aredis

from quantum_trader.ai.baselines import Baseline
from quantum_trader.ai.model import ArtifactError, ModelBundle, load_bundle, sha256_hex
from quantum_trader.ai.training import quality_gate
from quantum_trader.core.keys import Keys
from quantum_trader.core.profile import AiSettings

STATUS_PROMOTED: Final = "promoted"
STATUS_REJECTED: Final = "rejected"
_ROUNDTRIP_TOL: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Registration:
    version: str
    promoted: bool
    reasons: tuple[str, ...]
    card: dict[str, Any]


def _text(v: bytes | str | None) -> str | None:
    if v is None:
        return None
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v


def encode_artifact(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_artifact(text: bytes | str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ArtifactError("unreadable", "artefact is not base64") from None


def verify_roundtrip(bundle: ModelBundle, data: bytes, *, sha256: str, probe: np.ndarray) -> ModelBundle:
    """Load ``data`` and check it predicts exactly what ``bundle`` predicts on ``probe`` rows."""
    loaded = load_bundle(data, expected_sha256=sha256)
    a, b = bundle.predict(probe), loaded.predict(probe)
    if not (
        np.allclose(a.p_up, b.p_up, atol=_ROUNDTRIP_TOL) and np.allclose(a.p_profit, b.p_profit, atol=_ROUNDTRIP_TOL)
    ):
        raise ArtifactError("roundtrip_mismatch", "reloaded artefact predicts differently")
    return loaded


@dataclass(frozen=True, slots=True)
class _Verdict:
    reasons: tuple[str, ...]  # artefact defects first, then the quality gate's reasons
    forced: bool
    promoted: bool


def _verdict(defects: list[str], gate_reasons: list[str], *, force: bool) -> _Verdict:
    """Promote when nothing failed, or with ``force`` when only the quality gate did (never a defect)."""
    reasons = tuple(defects + gate_reasons)
    forced = force and not defects and bool(gate_reasons)
    return _Verdict(reasons=reasons, forced=forced, promoted=not reasons or forced)


def _full_card(
    card: dict[str, Any], *, version: str, data: bytes, sha256: str, passed: bool, gate_reasons: list[str],
    verdict: _Verdict, ai: AiSettings, fallback: Baseline | None,
) -> dict[str, Any]:
    """The model card as the registry keeps it: the caller's card plus artefact, gate, status and fallback."""
    full = {
        **card,
        "version": version,
        "artifact_sha256": sha256,
        "artifact_bytes": len(data),
        "gate": {
            "passed": passed,
            "reasons": list(verdict.reasons),
            "min_auc": ai.min_auc,
            "max_calibration_error": ai.max_calibration_error,
        },
        "status": STATUS_PROMOTED if verdict.promoted else STATUS_REJECTED,
        "forced": verdict.forced,
    }
    if verdict.forced:
        full["forced_over"] = list(gate_reasons)
    if fallback is not None:
        full["fallback"] = {**fallback.to_dict(), "version": version}
    return full


async def _store_artifact(
    redis: aredis.Redis, keys: Keys, bundle: ModelBundle, *, data: bytes, sha256: str, probe: np.ndarray
) -> list[str]:
    """Write the artefact, read it back and check it reproduces ``bundle``; the defects found (reason codes)."""
    await redis.set(keys.model_artifact(bundle.version), encode_artifact(data))
    try:
        stored = await redis.get(keys.model_artifact(bundle.version))
        if stored is None:
            raise ArtifactError("missing", "artefact vanished after write")
        verify_roundtrip(bundle, decode_artifact(stored), sha256=sha256, probe=probe)
    except ArtifactError as exc:
        return [f"artifact_invalid:{exc.reason}"]
    return []


async def _publish(
    redis: aredis.Redis, keys: Keys, *, version: str, card: dict[str, Any], fallback: dict[str, Any] | None,
    promoted: bool,
) -> None:
    """Card, fallback and (when promoted) the promoted pointer in one transaction."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.model_registry, version, json.dumps(card, separators=(",", ":"), default=str))
    if fallback is not None:
        pipe.set(keys.model_fallback, json.dumps(fallback, separators=(",", ":")))
    if promoted:
        pipe.set(keys.model_promoted, version)
    await pipe.execute()


async def register(
    redis: aredis.Redis,
    keys: Keys,
    *,
    bundle: ModelBundle,
    card: dict[str, Any],
    report: dict[str, Any],
    ai: AiSettings,
    probe: np.ndarray,
    fallback: Baseline | None = None,
    force: bool = False,
) -> Registration:
    """Store the version's artefact and card (and the fallback baseline); promote it when it
    passes, or with ``force`` when only the quality gate failed (see module doc)."""
    version = bundle.version
    data = bundle.to_bytes()
    sha = sha256_hex(data)
    defects = await _store_artifact(redis, keys, bundle, data=data, sha256=sha, probe=probe)
    passed, gate_reasons = quality_gate(report, ai)
    verdict = _verdict(defects, gate_reasons, force=force)
    full = _full_card(card, version=version, data=data, sha256=sha, passed=passed, gate_reasons=gate_reasons,
                      verdict=verdict, ai=ai, fallback=fallback)
    await _publish(redis, keys, version=version, card=full, fallback=full["fallback"] if fallback is not None else None,
                   promoted=verdict.promoted)
    return Registration(version=version, promoted=verdict.promoted, reasons=verdict.reasons, card=full)


async def read_card(redis: aredis.Redis, keys: Keys, version: str) -> dict[str, Any] | None:
    raw = _text(await redis.hget(keys.model_registry, version))
    if raw is None:
        return None
    try:
        card = json.loads(raw)
    except ValueError:
        return None
    return card if isinstance(card, dict) else None


async def promoted_version(redis: aredis.Redis, keys: Keys) -> str | None:
    v = _text(await redis.get(keys.model_promoted))
    return v or None


async def load_version(redis: aredis.Redis, keys: Keys, version: str) -> tuple[ModelBundle, dict[str, Any]]:
    """The verified bundle and card of ``version``; raises :class:`ArtifactError` with a reason."""
    card = await read_card(redis, keys, version)
    if card is None:
        raise ArtifactError("no_card", f"no model card for version {version}")
    raw = await redis.get(keys.model_artifact(version))
    if raw is None:
        raise ArtifactError("missing", f"no artefact for version {version}")
    sha = card.get("artifact_sha256")
    if not isinstance(sha, str) or not sha:
        raise ArtifactError("no_checksum", "model card carries no artefact checksum")
    bundle = load_bundle(decode_artifact(raw), expected_sha256=sha)
    if bundle.version != version:
        raise ArtifactError("version_mismatch", f"artefact says {bundle.version}")
    return bundle, card


async def load_fallback(redis: aredis.Redis, keys: Keys) -> tuple[Baseline, str] | None:
    """The stored fallback baseline and the training version it came from; None when absent.

    Raises :class:`ArtifactError` (``malformed``) when the stored document cannot be used.
    """
    raw = _text(await redis.get(keys.model_fallback))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        return Baseline.from_dict(doc), str(doc["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError("malformed", f"fallback baseline: {exc}"[:200]) from None
