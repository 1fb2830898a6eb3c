"""The chart's Role against the operator's own API calls (recorded by the emulator, not a copied list).

The scenario walks every path of the operator that talks to Kubernetes: create, spec change, pause,
a live profile with its finalizer, deletion, Events and status. The emulator records the RBAC verb
each request needs (including OwnerReferencesPermissionEnforcement's `update` on
`tradingprofiles/finalizers` for children with blockOwnerDeletion) and enforces the chart's Role.
"""

from __future__ import annotations

from typing import Any

import pytest
from quantum_operator import names, rbac

from .conftest import ChartRbac
from .emulator import DEPLOYMENTS, TP, Call, Emulator, add_secret, make_config, profile_body, wait_for
from .test_operator_kmock import objects, status_of

LIVE_SPEC = {"environment": "production", "exchange": {"name": "binanceusdm", "credentialsSecret": "binance"}}


async def _walk_every_path(emulator: Emulator, api: Any, run_operator: Any, redis_url: str) -> None:
    add_secret(emulator, "qt-redis", {"url": redis_url})
    add_secret(emulator, "binance", {"apiKey": "k", "secret": "s"})
    await run_operator(make_config(startup_grace=60.0))
    await api.create_profile(profile_body("paper"))
    await api.create_profile(profile_body("live", LIVE_SPEC))
    await wait_for(lambda: len(objects(emulator, DEPLOYMENTS)) == 12, what="12 deployments")
    await wait_for(lambda: status_of(emulator, "paper").get("phase"), what="status written")
    await api.patch_profile("paper", {"spec": {"paused": True, "router": {"maxOpenOrders": 4}}})
    await wait_for(lambda: status_of(emulator, "paper").get("observedGeneration") == 2, what="generation 2")
    await wait_for(lambda: names.GROUP + "/finalizer" in emulator.objects[TP, "default", "live"].raw["metadata"]
                   .get("finalizers", []), what="finalizer")
    await api.delete_profile("live")
    await wait_for(lambda: emulator.objects[TP, "default", "live"].deleted, what="live profile released")


async def test_every_api_call_of_the_operator_is_granted_by_the_rendered_chart_role(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str, chart_rbac: ChartRbac | None
) -> None:
    if chart_rbac is None:
        pytest.skip("helm unavailable: the chart's Role cannot be rendered")
    emulator, _ = k8s
    await _walk_every_path(emulator, api, run_operator, redis_url)
    role, cluster_role = chart_rbac
    assert emulator.denied == []
    used = sorted(emulator.calls)
    missing = [
        c for c in used
        if not rbac.permits([*role, *cluster_role] if c.namespaced else cluster_role,
                            verb=c.verb, group=c.group, resource=c.resource)
    ]
    assert missing == [], f"the chart's Role lacks: {[str(c) for c in missing]}"
    # the scenario did reach the paths a hardened cluster checks
    assert Call("update", names.GROUP, f"{names.PLURAL}/finalizers", True) in used
    assert Call("patch", names.GROUP, f"{names.PLURAL}/status", True) in used
    assert Call("create", "apps", "deployments", True) in used
    assert Call("get", "", "secrets", True) in used


def test_a_role_without_finalizers_update_fails_the_check_for_owned_children() -> None:
    """The check can fail: the Role before the fix (no tradingprofiles/finalizers) misses what
    OwnerReferencesPermissionEnforcement requires of every child object."""
    old = [r for r in rbac.rules() if r["resources"] != [f"{names.PLURAL}/finalizers"]]
    assert not rbac.permits(old, verb="update", group=names.GROUP, resource=f"{names.PLURAL}/finalizers")
    assert rbac.permits(rbac.rules(), verb="update", group=names.GROUP, resource=f"{names.PLURAL}/finalizers")
