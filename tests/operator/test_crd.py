"""The CRD: generated from the profile model (drift fails), validates the examples, refuses bad specs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from quantum_operator import crd
from quantum_trader.core.profile import DURATION_PATTERN, GateSettings, RouterSettings

from .crd_door import cel_violations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def committed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(crd.CRD_PATH.read_text())
    return doc


def schema() -> dict[str, Any]:
    s: dict[str, Any] = committed()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return s


def validator() -> jsonschema.Draft4Validator:
    # OpenAPI v3.0 schemas are draft-4 shaped (boolean exclusiveMinimum); x-kubernetes-* keys are ignored
    return jsonschema.Draft4Validator(schema())


def test_committed_crd_matches_the_profile_model_run_crd_write_to_fix() -> None:
    assert crd.CRD_PATH.read_text() == crd.render_yaml(), "run: python -m quantum_operator.crd --write"
    assert crd.main(["--check"]) == 0


def test_crd_names_scope_status_subresource_and_printer_columns() -> None:
    doc = committed()
    assert doc["metadata"]["name"] == "tradingprofiles.quantumtrader.io"
    spec = doc["spec"]
    assert spec["group"] == "quantumtrader.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "TradingProfile" and spec["names"]["shortNames"] == ["tp"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    cols = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert cols == {
        "Phase": ".status.phase",
        "Environment": ".spec.environment",
        "Universe": ".status.universe.hash",
        "Exec5m": ".status.funnel.executions",
        "Age": ".metadata.creationTimestamp",
    }


def test_crd_manifest_passes_kubernetes_validate_strict() -> None:
    kubernetes_validate.validate(committed(), "1.30", strict=True)


def test_schema_is_structural_no_refs_titles_defaults_or_false_additional_properties() -> None:
    text = crd.CRD_PATH.read_text()
    for forbidden in ("$ref", "$defs", "title:", "default:", "additionalProperties: false", "allOf"):
        assert forbidden not in text
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["router"]["properties"]["candidateWindow"] == {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "minLength": 2,
        "maxLength": 32,
        "description": "Batch window; also candidate staleness (100ms..1m). Default 3s.",
    }
    assert spec["gate"]["properties"]["maxExposureUsd"]["exclusiveMinimum"] is True


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_schema(example: Path) -> None:
    validator().validate(yaml.safe_load(example.read_text()))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("environment",), "live"),
        (("router", "minConfidence"), 1.5),
        (("router", "candidateWindow"), "3 seconds"),
        (("universe", "size"), 0),
        (("exchange", "name"), "kraken"),
        (("gate", "maxExposureUsd"), 0),
    ],
)
def test_schema_rejects_out_of_range_enum_and_duration_errors(path: tuple[str, ...], value: Any) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "paper.yaml").read_text())
    target = doc["spec"]
    for p in path[:-1]:
        target = target.setdefault(p, {})
    target[path[-1]] = value
    assert not validator().is_valid(doc)


def test_cross_field_rules_are_cel_validations_with_the_model_defaults() -> None:
    spec = schema()["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("production" in r and "health.strict" in r for r in rules)
    assert any("binanceusdm" in r for r in rules)
    router = [r["rule"] for r in spec["properties"]["router"]["x-kubernetes-validations"]]
    defaults = RouterSettings()
    assert f"self.targetOpenOrders : {defaults.target_open_orders})" in router[0]
    assert f"self.maxOpenOrders : {defaults.max_open_orders})" in router[0]
    assert "minConfidence" in router[1] and "superConfidence" in router[1]
    gate = spec["properties"]["gate"]["x-kubernetes-validations"][0]["rule"]
    assert f"self.killScoreCritical : {GateSettings().kill_score_critical})" in gate


def test_status_schema_declares_phase_conditions_workers_universe_and_funnel() -> None:
    status = schema()["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == ["Pending", "Running", "Degraded", "Paused", "Failed"]
    cond_types = status["properties"]["conditions"]["items"]["properties"]["type"]["enum"]
    assert cond_types == [
        "ConfigApplied",
        "WorkersAvailable",
        "HeartbeatsFresh",
        "UniverseFresh",
        "TradingFlowing",
    ]
    assert {"workers", "universe", "funnel", "observedGeneration"} <= set(status["properties"])
    ok = copy.deepcopy(yaml.safe_load((ROOT / "examples" / "paper.yaml").read_text()))
    ok["status"] = {
        "phase": "Running",
        "observedGeneration": 2,
        "conditions": [
            {"type": "HeartbeatsFresh", "status": "False", "reason": "StaleHeartbeat", "message": "gate"}
        ],
        "workers": {"gate": {"desired": 1, "available": 1, "fresh": False}},
        "universe": {"hash": "abcd", "count": 10, "generatedAt": "2026-01-01T00:00:00Z"},
        "funnel": {"windowSeconds": 300, "executions": 3},
    }
    validator().validate(ok)


# -- the CEL rules, evaluated by cel-python (tests/operator/crd_door.py) ---------------------------


def _violations(doc: dict[str, Any]) -> list[str]:
    return [v.split(": ", 1)[1] for v in cel_violations(doc)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_cel_rules_accept_the_examples(example: Path) -> None:
    assert _violations(yaml.safe_load(example.read_text())) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"environment": "production", "exchange": {"name": "binanceusdm"}, "health": {"strict": False}},
            "production requires health.strict",
        ),
        ({"environment": "testnet"}, "need exchange.name: binanceusdm"),
        ({"environment": "production", "exchange": {"name": "sim"}}, "need exchange.name: binanceusdm"),
        ({"router": {"targetOpenOrders": 11}}, "must be <= maxOpenOrders"),
        ({"router": {"maxOpenOrders": 2}}, "must be <= maxOpenOrders"),
        ({"router": {"minConfidence": 0.95}}, "must be <= superConfidence"),
        ({"gate": {"killScoreWarning": 0.9}}, "must be <= killScoreCritical"),
        ({"exchange": {"name": "replay"}}, "replay needs a folder"),
    ],
)
def test_cel_rules_refuse_what_the_model_refuses_using_the_model_defaults(
    spec: dict[str, Any], message: str
) -> None:
    from quantum_trader.core.profile import ProfileError, parse_spec

    with pytest.raises(ProfileError):
        parse_spec(spec)
    doc = {
        "apiVersion": "quantumtrader.io/v1alpha1",
        "kind": "TradingProfile",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    violations = _violations(doc)
    assert len(violations) == 1 and message in violations[0]


def test_cel_rule_limits_the_profile_name_length() -> None:
    doc = {"metadata": {"name": "x" * 41}, "spec": {}}
    assert _violations(doc) == [
        crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"][0][
            "message"
        ]
    ]
    assert _violations({"metadata": {"name": "x" * 40}, "spec": {}}) == []
