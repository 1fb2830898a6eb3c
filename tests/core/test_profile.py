from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from quantum_trader.core.profile import (
    ProfileError,
    format_duration,
    load_profile,
    parse_duration,
    parse_profile,
    spec_to_json,
)

ROOT = Path(__file__).resolve().parents[2]


def manifest(**spec: object) -> dict[str, object]:
    return {"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile", "metadata": {"name": "t"}, "spec": spec}


def issues(doc: dict[str, object]) -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile(doc)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize("name", ["paper", "testnet", "production"])
def test_examples_are_valid(name: str) -> None:
    profile = load_profile(ROOT / "examples" / f"{name}.yaml")
    assert profile.name == name


def test_defaults_match_the_design_document() -> None:
    spec = parse_profile(manifest()).spec
    assert spec.environment == "paper" and spec.exchange.name == "sim" and spec.exchange.seed == 7
    assert spec.universe.size == 10 and spec.universe.refresh_interval == 1800.0
    assert spec.universe.min_quote_volume_24h == 1_000_000
    assert spec.health.strict and spec.health.max_staleness_bars == 2 and spec.health.max_repair_rounds == 2
    r = spec.router
    assert (r.max_open_orders, r.target_open_orders, r.max_new_per_cycle) == (10, 3, 2)
    assert (r.candidate_window, r.min_confidence, r.super_confidence) == (3.0, 0.55, 0.70)
    assert spec.snapshot.ranking == "intent" and spec.snapshot.min_top_k == 10 and spec.snapshot.ttl == 60.0
    assert spec.gate.cooldown == 300.0 and spec.gate.max_exposure_usd == 1000
    assert spec.ai.horizon_bars == 4 and spec.ai.retrain_interval == 86400.0
    assert spec.executor.fee_bps == 4 and spec.executor.max_slippage_bps == 10


def test_target_above_max_names_path_and_values() -> None:
    assert issues(manifest(router={"targetOpenOrders": 12})) == [
        "spec.router.targetOpenOrders: must be <= maxOpenOrders (12 > 10)"
    ]


def test_min_confidence_above_super_is_refused() -> None:
    assert issues(manifest(router={"minConfidence": 0.95})) == [
        "spec.router.minConfidence: must be <= superConfidence (0.95 > 0.7)"
    ]


def test_confidence_outside_unit_interval_is_refused() -> None:
    [line] = issues(manifest(router={"superConfidence": 1.5}))
    assert line.startswith("spec.router.superConfidence:")


def test_production_requires_strict_health() -> None:
    doc = manifest(environment="production", exchange={"name": "binanceusdm"}, health={"strict": False})
    assert issues(doc) == ["spec.health.strict: production requires health.strict: true (it cannot be disabled)"]


def test_no_environment_variable_can_disable_strict_health(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STRICT_HEALTH", "TV_STRICT_HEALTH", "QT_STRICT_HEALTH", "HEALTH_STRICT"):
        monkeypatch.setenv(var, "0")
    profile = load_profile(ROOT / "examples" / "production.yaml")
    assert profile.spec.health.strict is True
    doc = manifest(environment="production", exchange={"name": "binanceusdm"}, health={"strict": False})
    assert issues(doc)


def test_real_orders_need_a_real_exchange() -> None:
    [line] = issues(manifest(environment="testnet"))
    assert line.startswith("spec.exchange.name: testnet places real orders")


def test_unknown_field_is_named() -> None:
    assert issues(manifest(router={"maxOpenOrder": 3})) == ["spec.router.maxOpenOrder: unknown field 'maxOpenOrder'"]


def test_credentials_cannot_be_written_into_the_profile() -> None:
    [line] = issues(manifest(exchange={"name": "sim", "apiKey": "abc"}))
    assert line == ("spec.exchange.apiKey: inline credentials are not allowed: put them in a Secret "
                    "and name it in exchange.credentialsSecret or redis.urlSecret")
    assert "abc" not in line


def test_bad_duration_is_explained() -> None:
    [line] = issues(manifest(router={"candidateWindow": "3 seconds"}))
    assert line.startswith("spec.router.candidateWindow: a duration like")


def test_every_issue_is_reported_not_only_the_first() -> None:
    assert len(issues(manifest(router={"maxOpenOrder": 3}, universe={"size": 0}))) == 2


def test_invalid_yaml_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata:\n  name: x\nspec:\n  router: {maxOpenOrders: [\n")
    with pytest.raises(ProfileError) as info:
        load_profile(bad)
    assert str(info.value).startswith(f"{bad}:")
    assert "invalid YAML" in str(info.value)


def test_spec_round_trips_through_camel_case_json() -> None:
    spec = load_profile(ROOT / "examples" / "paper.yaml").spec
    again = parse_profile(manifest(**spec_to_json(spec))).spec
    assert again == spec
    assert yaml.safe_dump(spec_to_json(spec))  # serialisable for the ConfigMap


@pytest.mark.parametrize(("text", "seconds"), [("3s", 3.0), ("30m", 1800.0), ("24h", 86400.0), ("2d", 172800.0), ("250ms", 0.25)])
def test_durations_parse_and_format(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text
