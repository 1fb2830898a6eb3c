"""skaffold.yaml: builds both images from images/, deploys the chart with the built images wired in.

No skaffold binary here: the config is checked as data against what the repository holds.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, REPO

IMAGES = {"quantum-trader/worker": "images/worker.Dockerfile", "quantum-trader/operator": "images/operator.Dockerfile"}


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    return yaml.safe_load((REPO / "skaffold.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))


def _has_path(values: dict[str, Any], dotted: str) -> bool:
    """values.yaml has the key, or the key lands in a free-form map that is empty by default (labels: {})."""
    node: Any = values
    for part in dotted.split("."):
        if isinstance(node, dict) and part not in node and node == {}:
            return True
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _apply_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """Minimal RFC 6902 'add'/'replace' (what the profiles use); fails when a parent is missing."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    assert op["op"] in ("add", "replace")
    if op["op"] == "replace":
        assert last in node
    node[last] = op["value"]


def test_skaffold_config_is_v4_and_named(skaffold: dict[str, Any]) -> None:
    assert re.fullmatch(r"skaffold/v4beta\d+", skaffold["apiVersion"])
    assert skaffold["kind"] == "Config" and skaffold["metadata"]["name"] == "quantum-trader"


def test_skaffold_builds_both_images_from_the_repository_dockerfiles(skaffold: dict[str, Any]) -> None:
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert set(artifacts) == set(IMAGES)
    for image, dockerfile in IMAGES.items():
        a = artifacts[image]
        assert a["context"] == "."
        assert a["docker"]["dockerfile"] == dockerfile
        assert (REPO / a["context"] / dockerfile).is_file()
    assert skaffold["build"]["local"]["push"] is False


def test_skaffold_deploys_the_chart_with_the_built_images_wired_into_values(
    skaffold: dict[str, Any], values: dict[str, Any]
) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    templates = release["setValueTemplates"]
    for image in IMAGES:
        key = re.sub(r"[/\-.:]", "_", image)  # skaffold's IMAGE_REPO_<name> normalisation
        component = image.split("/")[1]
        assert templates[f"{component}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{component}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    for dotted in [*templates, *release.get("setValues", {})]:
        assert _has_path(values, dotted), f"skaffold sets {dotted}, which values.yaml does not have"


@pytest.mark.parametrize(("profile", "context"), [("kind", "kind-kind"), ("minikube", "minikube")])
def test_profile_targets_its_cluster_and_its_patches_apply(skaffold: dict[str, Any], values: dict[str, Any],
                                                           profile: str, context: str) -> None:
    (p,) = [p for p in skaffold["profiles"] if p["name"] == profile]
    assert re.fullmatch(p["activation"][0]["kubeContext"], context)
    patched = copy.deepcopy(skaffold)
    for op in p["patches"]:
        _apply_patch(patched, op)
    assert patched["deploy"]["kubeContext"] == context
    (release,) = patched["deploy"]["helm"]["releases"]
    for dotted in release.get("setValues", {}):
        assert _has_path(values, dotted), dotted
