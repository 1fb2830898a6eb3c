"""Finalizers: only live profiles carry one, and uninstalling the operator releases them.

Against the kmock emulator under the chart's RBAC: the release hook's own calls
(`qt operator --release-finalizers`) must be granted by the same Role.
"""

from __future__ import annotations

import asyncio
from typing import Any

from quantum_operator.handlers import FINALIZER
from quantum_operator.release import HttpKube, release_finalizers, scale_down

from .emulator import (
    DEPLOYMENTS,
    OPERATOR_TOKEN,
    TP,
    Emulator,
    add_secret,
    make_config,
    profile_body,
    wait_for,
)
from .test_operator_kmock import status_of

LIVE_SPEC = {"environment": "production", "exchange": {"name": "binanceusdm"}}


def finalizers(emulator: Emulator, name: str) -> list[str]:
    return list(emulator.objects[TP, "default", name].raw["metadata"].get("finalizers") or [])


async def test_paper_and_testnet_profiles_never_get_a_finalizer_live_ones_do(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    await run_operator(make_config(startup_grace=60.0))
    await api.create_profile(profile_body("paper"))
    await api.create_profile(profile_body("test", {"environment": "testnet", "exchange": {"name": "binanceusdm"}}))
    await api.create_profile(profile_body("live", LIVE_SPEC))
    await wait_for(lambda: FINALIZER in finalizers(emulator, "live"), what="finalizer on the live profile")
    for name in ("paper", "test"):
        await wait_for(lambda n=name: status_of(emulator, n).get("phase"), what=f"{name} reconciled")
    await asyncio.sleep(1.0)  # several refresh timers (0.3 s) have run on every profile
    assert finalizers(emulator, "paper") == [] and finalizers(emulator, "test") == []
    await api.delete_profile("paper")  # no finalizer: gone at once
    assert emulator.objects[TP, "default", "paper"].deleted


async def test_a_live_profile_turned_paper_loses_its_finalizer(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    await run_operator(make_config(startup_grace=60.0))
    await api.create_profile(profile_body("live", LIVE_SPEC))
    await wait_for(lambda: FINALIZER in finalizers(emulator, "live"), what="finalizer")
    await api.patch_profile("live", {"spec": {"environment": "paper", "exchange": {"name": "sim"}}})
    await wait_for(lambda: finalizers(emulator, "live") == [], what="finalizer removed")


async def test_release_hook_stops_the_operator_and_frees_live_profiles_so_deletion_never_hangs(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, url = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    emulator.objects[DEPLOYMENTS, "default", "qt-operator"] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "qt-operator", "namespace": "default"},
        "spec": {"replicas": 1}, "status": {"replicas": 1},
    }
    op = await run_operator(make_config(startup_grace=60.0))
    await api.create_profile(profile_body("live", LIVE_SPEC))
    await api.create_profile(profile_body("live2", LIVE_SPEC))
    await wait_for(lambda: all(FINALIZER in finalizers(emulator, n) for n in ("live", "live2")), what="finalizers")
    await op.stop()  # what the Deployment controller does once replicas: 0 is set

    async def controller_scales_to_zero() -> None:
        dep = emulator.objects[DEPLOYMENTS, "default", "qt-operator"]
        while dep.raw["spec"]["replicas"] != 0:
            await asyncio.sleep(0.05)
        dep.patch({"status": {"replicas": 0}})

    kube = HttpKube(server=url, token=OPERATOR_TOKEN)  # the operator's ServiceAccount, under the chart's Role
    try:
        controller = asyncio.ensure_future(controller_scales_to_zero())
        await scale_down(kube, namespace="default", deployment="qt-operator", timeout=10)
        await controller
        released = await release_finalizers(kube, namespaces=["default"], finalizer=FINALIZER)
    finally:
        await kube.close()
    assert sorted(r.name for r in released) == ["live", "live2"]
    assert emulator.denied == []
    assert finalizers(emulator, "live") == []
    await api.delete_profile("live")  # no operator any more, and still no hang
    assert emulator.objects[TP, "default", "live"].deleted


async def test_release_leaves_other_controllers_finalizers_alone(k8s: tuple[Emulator, str], api: Any) -> None:
    emulator, url = k8s
    body = profile_body("live", LIVE_SPEC)
    body["metadata"]["finalizers"] = ["example.com/backup", FINALIZER]
    await api.create_profile(body)
    kube = HttpKube(server=url, token=OPERATOR_TOKEN)
    try:
        await release_finalizers(kube, namespaces=["default"], finalizer=FINALIZER)
    finally:
        await kube.close()
    assert finalizers(emulator, "live") == ["example.com/backup"]
