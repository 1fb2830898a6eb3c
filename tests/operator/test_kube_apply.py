"""The converging apply: create once, merge-patch only on difference, remove stale ConfigMap keys."""

from __future__ import annotations

import copy
from typing import Any

from quantum_operator.kube import KubeError, apply, is_subset


class FakeKube:
    """An in-memory KubeApi that, like a real server, adds defaults the operator never sets."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append(f"GET {path}")
        return copy.deepcopy(self.objects.get(path))

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"POST {path}")
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise KubeError("exists", status=409)
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = "u1"
        stored["metadata"]["annotations"] = {"server/added": "x"}
        self.objects[full] = stored
        return copy.deepcopy(stored)

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"PATCH {path}")

        def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
            for k, v in patch.items():
                if v is None:
                    into.pop(k, None)
                elif isinstance(v, dict) and isinstance(into.get(k), dict):
                    merge(into[k], v)
                else:
                    into[k] = copy.deepcopy(v)

        merge(self.objects[path], body)
        return copy.deepcopy(self.objects[path])


def configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "p-profile", "namespace": "ns"},
        "data": data,
    }


async def test_apply_creates_then_does_nothing_then_patches_and_drops_stale_configmap_keys() -> None:
    kube = FakeKube()
    assert (await apply(kube, configmap({"a": "1", "b": "2"}))).outcome == "created"
    assert (await apply(kube, configmap({"a": "1", "b": "2"}))).outcome == "unchanged"
    assert kube.calls[-1].startswith("GET")  # converged: a GET, no write
    assert (await apply(kube, configmap({"a": "1"}))).outcome == "patched"
    assert kube.objects["/api/v1/namespaces/ns/configmaps/p-profile"]["data"] == {"a": "1"}
    assert (await apply(kube, configmap({"a": "1"}))).outcome == "unchanged"


def test_subset_ignores_server_defaults_but_not_changed_values_or_list_lengths() -> None:
    desired = {"spec": {"containers": [{"name": "w", "ports": [{"containerPort": 8000}]}], "replicas": 1}}
    server = {
        "spec": {
            "containers": [
                {
                    "name": "w",
                    "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                    "terminationMessagePath": "/dev/termination-log",
                }
            ],
            "replicas": 1.0,
        }
    }
    assert is_subset(desired, server)
    assert not is_subset({"spec": {"replicas": 0}}, server)
    assert not is_subset({"spec": {"containers": []}}, server)
