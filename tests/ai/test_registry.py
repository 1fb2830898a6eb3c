"""Registry through real Redis: promote / reject by the quality gate, corrupt artefacts, loading."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import numpy as np
import pytest
import redis.asyncio as aredis
from quantum_trader.ai import registry
from quantum_trader.ai.dataset import Dataset
from quantum_trader.ai.model import ArtifactError, load_bundle, sha256_hex
from quantum_trader.ai.training import TrainResult
from quantum_trader.core.keys import Keys
from quantum_trader.core.profile import AiSettings

from .conftest import beats_baselines

KEYS = Keys("paper")
PASSING = AiSettings(min_auc=0.52, max_calibration_error=0.05)


def _probe(ds: Dataset) -> np.ndarray:
    return ds.x[:: max(1, ds.n // 64)]


async def _register(client: aredis.Redis, trained: TrainResult, ds: Dataset, *, version: str,
                    ai: AiSettings = PASSING, report: dict | None = None) -> registry.Registration:
    bundle = replace(trained.bundle, version=version)
    return await registry.register(client, KEYS, bundle=bundle, card={"created_ms": 1, "data_hash": "x"},
                                   report=report or beats_baselines(trained.report), ai=ai, probe=_probe(ds))


async def test_a_passing_version_is_stored_with_its_card_and_promoted(
    aredis_client: aredis.Redis, trained: TrainResult, dataset: Dataset
) -> None:
    reg = await _register(aredis_client, trained, dataset, version="v1")
    assert reg.promoted and reg.reasons == ()
    assert await registry.promoted_version(aredis_client, KEYS) == "v1"
    card = await registry.read_card(aredis_client, KEYS, "v1")
    assert card is not None and card["status"] == "promoted" and card["gate"]["passed"]
    assert card["artifact_sha256"] == reg.card["artifact_sha256"]
    bundle, _ = await registry.load_version(aredis_client, KEYS, "v1")
    np.testing.assert_allclose(bundle.predict(dataset.x[:50]).p_up, trained.bundle.predict(dataset.x[:50]).p_up)
    assert bundle.metalabel_filter == trained.bundle.metalabel_filter


async def test_a_version_failing_the_gate_is_recorded_rejected_and_not_promoted(
    aredis_client: aredis.Redis, trained: TrainResult, dataset: Dataset
) -> None:
    await _register(aredis_client, trained, dataset, version="good")
    strict = AiSettings(min_auc=0.99, max_calibration_error=0.001)
    reg = await _register(aredis_client, trained, dataset, version="bad", ai=strict)
    assert not reg.promoted and any("minAuc" in r for r in reg.reasons)
    assert await registry.promoted_version(aredis_client, KEYS) == "good"
    card = await registry.read_card(aredis_client, KEYS, "bad")
    assert card is not None and card["status"] == "rejected"


async def test_a_corrupt_artefact_is_detected_on_load(
    aredis_client: aredis.Redis, trained: TrainResult, dataset: Dataset
) -> None:
    await _register(aredis_client, trained, dataset, version="v1")
    raw = await aredis_client.get(KEYS.model_artifact("v1"))
    data = bytearray(registry.decode_artifact(raw))
    data[len(data) // 2] ^= 0xFF
    await aredis_client.set(KEYS.model_artifact("v1"), registry.encode_artifact(bytes(data)))
    with pytest.raises(ArtifactError) as exc:
        await registry.load_version(aredis_client, KEYS, "v1")
    assert exc.value.reason == "checksum_mismatch"
    await aredis_client.set(KEYS.model_artifact("v1"), "%%% not base64 %%%")
    with pytest.raises(ArtifactError):
        await registry.load_version(aredis_client, KEYS, "v1")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"garbage", "unreadable"),
        (lambda d: zlib.compress(b'{"format": "other"}'), "unknown_format"),
        (lambda d: _edit(d, feature_names=["a", "b"]), "feature_mismatch"),
        (lambda d: _edit(d, boosters=["not a model"] * 2), "malformed"),
        (lambda d: _edit(d, meta={"coef": [1.0], "intercept": 0.0}), "malformed"),
    ],
)
def test_corrupt_artefacts_are_refused_with_a_reason(trained: TrainResult, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    data = mutate(trained.bundle.to_bytes())
    with pytest.raises(ArtifactError) as exc:
        load_bundle(data, expected_sha256=sha256_hex(data))
    assert exc.value.reason == reason


def _edit(data: bytes, **fields: object) -> bytes:
    doc = json.loads(zlib.decompress(data))
    doc.update(fields)
    return zlib.compress(json.dumps(doc).encode())


async def test_an_artefact_that_does_not_reload_identically_is_never_promoted(
    aredis_client: aredis.Redis, trained: TrainResult, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = registry.verify_roundtrip

    def broken(bundle, data, *, sha256, probe):  # type: ignore[no-untyped-def]
        return real(bundle, data[:-10], sha256=sha256, probe=probe)

    monkeypatch.setattr(registry, "verify_roundtrip", broken)
    reg = await _register(aredis_client, trained, dataset, version="v1")
    assert not reg.promoted
    assert reg.reasons[0].startswith("artifact_invalid:")
    assert await registry.promoted_version(aredis_client, KEYS) is None


async def test_missing_versions_and_cards_are_reported(aredis_client: aredis.Redis) -> None:
    assert await registry.promoted_version(aredis_client, KEYS) is None
    with pytest.raises(ArtifactError) as exc:
        await registry.load_version(aredis_client, KEYS, "nope")
    assert exc.value.reason == "no_card"
