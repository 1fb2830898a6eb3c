from __future__ import annotations

import resource

import pytest
import yaml
from quantum_trader.core.yamlsafe import YamlRefused, safe_load

BOMB = "\n".join(
    ["a: &a [" + ",".join(["x"] * 10) + "]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(8)]
    + ["spec: *i"]
)


def test_alias_bomb_is_refused_quickly_within_a_small_memory_budget() -> None:
    assert len(BOMB) < 1500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(YamlRefused, match="aliases"):
        safe_load(BOMB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: < 50 MB grown


def test_refusal_is_a_yaml_error_so_existing_handlers_report_it() -> None:
    assert issubclass(YamlRefused, yaml.YAMLError)


def test_benign_anchors_and_ordinary_documents_load_like_safe_load() -> None:
    text = "base: &b {size: 10, tf: [15m, 1h]}\nprod: *b\nlist: [1, 2.5, true, null]\n"
    assert safe_load(text) == yaml.safe_load(text)
    assert safe_load("") is None


def test_oversized_and_deeply_nested_documents_are_refused() -> None:
    with pytest.raises(YamlRefused, match="bytes"):
        safe_load("a: " + "x" * 2_000_000)
    with pytest.raises(YamlRefused, match="deeper"):
        safe_load("[" * 5000 + "]" * 5000)
    with pytest.raises(YamlRefused, match="deeper"):
        safe_load("[" * 100 + "]" * 100)


def test_profile_file_with_an_alias_bomb_is_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from quantum_trader.core.profile import ProfileError, load_profile

    path = tmp_path / "bomb.yaml"
    path.write_text("apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: x}\n" + BOMB)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert "invalid YAML" in str(info.value) and "aliases" in str(info.value)
