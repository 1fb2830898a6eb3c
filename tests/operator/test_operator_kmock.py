"""The operator running for real (kopf in a thread) against the kmock Kubernetes emulator + a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import redis
from quantum_operator import names
from quantum_operator.handlers import FINALIZER
from quantum_trader.core.keys import WORKERS, Keys

from .emulator import (
    CONFIGMAPS,
    CRONJOBS,
    DEPLOYMENTS,
    EVENTS,
    SERVICES,
    TP,
    Emulator,
    add_secret,
    free_port,
    make_config,
    profile_body,
    wait_for,
)

TRADING = ("ai", "router", "snapshot", "gate", "executor")


def objects(
    emulator: Emulator, kind: Any, *, prefix: str = "", ns: str = "default"
) -> dict[str, dict[str, Any]]:
    return {
        key[2]: obj.raw
        for key, obj in list(emulator.objects.items())
        if key[0] == kind and key[1] == ns and not obj.deleted and str(key[2]).startswith(prefix)
    }


def profile(emulator: Emulator, name: str) -> dict[str, Any]:
    return emulator.objects[TP, "default", name].raw


def status_of(emulator: Emulator, name: str) -> dict[str, Any]:
    return dict(profile(emulator, name).get("status") or {})


def hashes(emulator: Emulator, name: str) -> set[str]:
    return {
        d["spec"]["template"]["metadata"]["annotations"][names.ANNOTATION_CONFIG_HASH]
        for d in objects(emulator, DEPLOYMENTS, prefix=f"{name}-").values()
    }


def play_deployment_controller(emulator: Emulator, name: str) -> None:
    """kmock has no controllers: make every Deployment of the profile report its replicas available."""
    for dep_name, dep in objects(emulator, DEPLOYMENTS, prefix=f"{name}-").items():
        n = dep["spec"]["replicas"]
        emulator.objects[DEPLOYMENTS, "default", dep_name].patch(
            {"status": {"replicas": n, "readyReplicas": n, "availableReplicas": n, "updatedReplicas": n}}
        )


def beat(r: redis.Redis, profile_name: str, *, ago_s: float = 1.0, only: tuple[str, ...] = WORKERS) -> None:
    ts = int((time.time() - ago_s) * 1000)
    for w in only:
        r.hset(Keys(profile_name, namespace="default").heartbeat(w), mapping={"ts": str(ts), "pid": "1"})


def publish_universe(
    r: redis.Redis, profile_name: str, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
) -> None:
    now = int(time.time() * 1000)
    r.set(
        Keys(profile_name, namespace="default").universe_active,
        json.dumps(
            {
                "universe_hash": "feedbeefcafe0123",
                "generated_at": now - 1000,
                "valid_until": now + 3_600_000,
                "symbols": [{"symbol": s, "rank": i + 1} for i, s in enumerate(symbols)],
            }
        ),
    )


def events(emulator: Emulator, name: str) -> list[tuple[str, str, str]]:
    return [
        (e["type"], e["reason"], e["message"])
        for e in objects(emulator, EVENTS).values()
        if e.get("involvedObject", {}).get("name") == name
    ]


async def test_create_profile_applies_configmap_six_deployments_service_and_cronjob_owned_by_it(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    await run_operator()
    uid = (await api.create_profile(profile_body("paper")))["metadata"]["uid"]
    await wait_for(
        lambda: len(objects(emulator, DEPLOYMENTS)) == 6 and objects(emulator, CRONJOBS), what="objects"
    )
    assert sorted(objects(emulator, DEPLOYMENTS)) == sorted(f"paper-{w}" for w in WORKERS)
    assert list(objects(emulator, CONFIGMAPS)) == ["paper-profile"]
    assert list(objects(emulator, SERVICES)) == ["paper-metrics"]
    for kind in (CONFIGMAPS, SERVICES, CRONJOBS, DEPLOYMENTS):
        for obj in objects(emulator, kind).values():
            assert [
                (r["kind"], r["name"], r["uid"], r["controller"]) for r in obj["metadata"]["ownerReferences"]
            ] == [("TradingProfile", "paper", uid, True)]
    s = await wait_for(
        lambda: status_of(emulator, "paper").get("phase") and status_of(emulator, "paper"), what="status"
    )
    assert s["observedGeneration"] == 1
    assert s["conditions"][0]["type"] == "ConfigApplied" and s["conditions"][0]["status"] == "True"
    await wait_for(
        lambda: ("Normal", "Created", "Created Deployment paper-router") in events(emulator, "paper"),
        what="Created event",
    )


async def test_spec_change_patches_configmap_and_rolls_every_deployment_and_only_then(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    await run_operator()
    await api.create_profile(profile_body("paper"))
    await wait_for(
        lambda: len(hashes(emulator, "paper")) == 1 and len(objects(emulator, DEPLOYMENTS)) == 6,
        what="deployments",
    )
    before = hashes(emulator, "paper")
    versions = len(emulator.objects[DEPLOYMENTS, "default", "paper-gate"].history)

    await api.patch_profile("paper", {"metadata": {"labels": {"team": "quant"}}})  # no spec change
    await wait_for(lambda: profile(emulator, "paper")["metadata"].get("labels"), what="label")
    await wait_for(lambda: status_of(emulator, "paper").get("workers"), what="reconciled")
    assert hashes(emulator, "paper") == before

    await api.patch_profile("paper", {"spec": {"router": {"maxOpenOrders": 12}}})
    cm = await wait_for(
        lambda: (c := objects(emulator, CONFIGMAPS)["paper-profile"])["data"]["maxOpenOrders"] == "12" and c,
        what="ConfigMap patched",
    )
    assert "maxOpenOrders: 12" in cm["data"]["profile.yaml"]
    after = await wait_for(
        lambda: (h := hashes(emulator, "paper")) != before and len(h) == 1 and h, what="config hash rolled"
    )
    assert after != before
    assert len(emulator.objects[DEPLOYMENTS, "default", "paper-gate"].history) > versions
    await wait_for(lambda: status_of(emulator, "paper").get("observedGeneration") == 2, what="generation 2")
    n = len(emulator.objects[DEPLOYMENTS, "default", "paper-gate"].history)
    await asyncio.sleep(1.0)  # a few timer reconciles (0.3 s): converged, so no further patches
    assert len(emulator.objects[DEPLOYMENTS, "default", "paper-gate"].history) == n


async def test_pause_scales_trading_workers_to_zero_keeps_universe_and_sets_the_redis_flag(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    r = redis.Redis.from_url(redis_url)
    await run_operator()
    await api.create_profile(profile_body("paper"))
    await wait_for(lambda: len(objects(emulator, DEPLOYMENTS)) == 6, what="deployments")
    before = hashes(emulator, "paper")
    await api.patch_profile("paper", {"spec": {"paused": True}})

    def replicas() -> dict[str, int]:
        return {
            d["metadata"]["labels"][names.LABEL_WORKER]: d["spec"]["replicas"]
            for d in objects(emulator, DEPLOYMENTS).values()
        }

    await wait_for(lambda: replicas() == {"universe": 1, **{w: 0 for w in TRADING}}, what="scaled to zero")
    assert hashes(emulator, "paper") == before  # the universe is not restarted
    flag = await wait_for(lambda: r.get(Keys("paper", namespace="default").control_paused), what="control:paused")
    assert json.loads(flag)["by"] == "operator"
    await wait_for(
        lambda: status_of(emulator, "paper").get("phase") in ("Paused", "Degraded"), what="paused phase"
    )
    await api.patch_profile("paper", {"spec": {"paused": False}})
    await wait_for(lambda: set(replicas().values()) == {1}, what="scaled back")
    await wait_for(lambda: r.get(Keys("paper", namespace="default").control_paused) is None, what="flag cleared")
    r.close()


async def test_status_reports_design_vs_reality_from_deployment_status_and_redis_heartbeats(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    r = redis.Redis.from_url(redis_url)
    await run_operator()
    await api.create_profile(profile_body("paper"))
    await wait_for(lambda: len(objects(emulator, DEPLOYMENTS)) == 6, what="deployments")
    s = await wait_for(
        lambda: (s := status_of(emulator, "paper")).get("phase") == "Degraded" and s, what="degraded"
    )
    assert "not available" in s["message"]

    play_deployment_controller(emulator, "paper")
    beat(r, "paper")
    publish_universe(r, "paper")
    for _ in range(3):
        r.xadd(Keys("paper", namespace="default").execution_result, {"v": "1", "status": "FILLED"})
    s = await wait_for(
        lambda: (s := status_of(emulator, "paper")).get("phase") == "Running" and s, what="running"
    )
    assert [c["status"] for c in s["conditions"]] == ["True"] * 5
    assert s["universe"]["hash"] == "feedbeefcafe0123" and s["universe"]["count"] == 2
    assert s["funnel"]["executions"] == 3
    assert s["workers"]["router"]["available"] == 1 and s["workers"]["router"]["fresh"] is True

    beat(r, "paper", ago_s=600, only=("gate",))  # the gate pod is "available" but its loop is dead
    s = await wait_for(
        lambda: (s := status_of(emulator, "paper")).get("phase") == "Degraded" and s, what="stale gate"
    )
    hb = next(c for c in s["conditions"] if c["type"] == "HeartbeatsFresh")
    assert hb["reason"] == "StaleHeartbeat" and hb["message"].startswith(
        "Deployment available but heartbeat stale: gate"
    )
    await wait_for(
        lambda: any(t == "Warning" and "gate" in m for t, _, m in events(emulator, "paper")),
        what="Degraded warning event",
    )
    r.close()


async def test_missing_redis_secret_then_unreachable_redis_are_degraded_and_the_operator_keeps_going(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any
) -> None:
    emulator, _ = k8s
    op = await run_operator()
    await api.create_profile(profile_body("paper"))
    s = await wait_for(lambda: (s := status_of(emulator, "paper")).get("phase") and s, what="status")
    assert s["phase"] == "Degraded" and "Secret qt-redis not found" in s["message"]
    add_secret(emulator, "qt-redis", {"url": "redis://127.0.0.1:1/0"})
    s = await wait_for(
        lambda: "Redis unreachable" in (s := status_of(emulator, "paper")).get("message", "") and s,
        what="redis unreachable",
    )
    assert "Secret qt-redis" in s["message"]
    assert not op.errors


async def test_invalid_spec_that_bypassed_admission_is_failed_with_an_event_and_nothing_applied(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any
) -> None:
    emulator, _ = k8s
    await run_operator()
    await api.create_profile(profile_body("bad", {"router": {"maxOpenOrders": 2, "targetOpenOrders": 5}}))
    s = await wait_for(lambda: (s := status_of(emulator, "bad")).get("phase") and s, what="status")
    assert s["phase"] == "Failed"
    assert s["message"] == "spec.router.targetOpenOrders: must be <= maxOpenOrders (5 > 2)"
    await wait_for(
        lambda: ("Warning", "Failed", s["message"]) in events(emulator, "bad"), what="warning event"
    )
    assert objects(emulator, DEPLOYMENTS) == {}


async def test_webhook_admission_review_accepts_a_valid_profile_and_rejects_with_qt_validate_lines(
    k8s: tuple[Emulator, str], run_operator: Any
) -> None:
    port = free_port()
    await run_operator(webhook_port=port)

    def review(
        uid: str, spec: dict[str, Any], name: str = "paper", old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        obj = profile_body(name, spec)
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": names.GROUP, "version": names.VERSION, "kind": names.KIND},
                "resource": {"group": names.GROUP, "version": names.VERSION, "resource": names.PLURAL},
                "name": name,
                "namespace": "default",
                "operation": "UPDATE" if old else "CREATE",
                "object": obj,
                "oldObject": old,
                "userInfo": {"username": "tester"},
                "dryRun": False,
            },
        }

    url = f"http://127.0.0.1:{port}/validate-tradingprofile"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=review("u1", {"environment": "paper"})) as resp:
            ok = await resp.json()
        bad_spec = {
            "environment": "production",
            "health": {"strict": False},
            "exchange": {"name": "binanceusdm"},
            "router": {"minConfidence": 0.95},
        }
        async with session.post(url, json=review("u2", bad_spec)) as resp:
            bad = await resp.json()
        # a metadata-only UPDATE of a profile that got in while the webhook was down is not blocked
        async with session.post(
            url, json=review("u3", bad_spec, old=profile_body("paper", bad_spec))
        ) as resp:
            untouched = await resp.json()
    assert ok["response"]["uid"] == "u1" and ok["response"]["allowed"] is True
    assert bad["response"]["uid"] == "u2" and bad["response"]["allowed"] is False
    assert bad["response"]["status"]["code"] == 422
    message = bad["response"]["status"]["message"]
    assert "spec.router.minConfidence: must be <= superConfidence (0.95 > 0.7)" in message.splitlines()
    assert untouched["response"]["allowed"] is True


async def test_two_profiles_side_by_side_get_separate_objects_and_separate_redis_prefixes(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    r = redis.Redis.from_url(redis_url)
    await run_operator()
    await api.create_profile(profile_body("alpha"))
    await api.create_profile(profile_body("beta", {"router": {"maxOpenOrders": 4}}))
    await wait_for(
        lambda: len(objects(emulator, DEPLOYMENTS)) == 12 and len(objects(emulator, CRONJOBS)) == 2,
        what="12 deployments",
    )
    assert set(objects(emulator, CONFIGMAPS)) == {"alpha-profile", "beta-profile"}
    assert set(objects(emulator, SERVICES)) == {"alpha-metrics", "beta-metrics"}
    assert hashes(emulator, "alpha") != hashes(emulator, "beta")
    svc = objects(emulator, SERVICES)["beta-metrics"]
    assert svc["spec"]["selector"][names.LABEL_PROFILE] == "beta"
    for name in ("alpha", "beta"):
        play_deployment_controller(emulator, name)
        publish_universe(r, name)
    beat(r, "alpha")  # only alpha's workers are alive
    await wait_for(lambda: status_of(emulator, "alpha").get("phase") == "Running", what="alpha running")
    s = await wait_for(
        lambda: "(never)" in (s := status_of(emulator, "beta")).get("message", "") and s,
        what="beta degraded: no heartbeats",
    )
    assert s["phase"] == "Degraded" and "executor (never)" in s["message"]
    assert Keys("alpha", namespace="default").prefix != Keys("beta", namespace="default").prefix
    r.close()


async def test_deleting_a_live_profile_first_sets_no_new_positions_in_redis(
    k8s: tuple[Emulator, str], api: Any, run_operator: Any, redis_url: str
) -> None:
    emulator, _ = k8s
    add_secret(emulator, "qt-redis", {"url": redis_url})
    add_secret(emulator, "binance-live", {"apiKey": "k", "secret": "s"})
    r = redis.Redis.from_url(redis_url)
    await run_operator(make_config(startup_grace=60.0))
    spec = {
        "environment": "production",
        "exchange": {"name": "binanceusdm", "credentialsSecret": "binance-live"},
    }
    await api.create_profile(profile_body("live", spec))
    await wait_for(
        lambda: FINALIZER in profile(emulator, "live")["metadata"].get("finalizers", []),
        what="finalizer on a live profile",
    )
    await wait_for(lambda: status_of(emulator, "live").get("phase"), what="reconciled")
    assert r.get(Keys("live", namespace="default").control_no_new_positions) is None
    await api.delete_profile("live")
    flag = await wait_for(lambda: r.get(Keys("live", namespace="default").control_no_new_positions), what="no_new_positions")
    assert json.loads(flag)["reason"] == "TradingProfile deleted"
    await wait_for(lambda: emulator.objects[TP, "default", "live"].deleted, what="profile released")
    r.close()
