"""Pure builders: every object, labels, owner refs, probes, security, config hash (spec change only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from quantum_operator import names, rbac
from quantum_operator.render import (
    Owner,
    RenderContext,
    build_all,
    config_hash,
    cron_schedule,
    desired_replicas,
)
from quantum_trader.core.profile import TradingProfileSpec, load_profile, parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
K8S_VERSION = "1.30"


def ctx(profile: str = "paper", **kw: Any) -> RenderContext:
    return RenderContext(
        profile=profile,
        namespace="trading",
        worker_image="img:1",
        redis_secret="qt-redis",
        owner=Owner(name=profile, uid="uid-123"),
        **kw,
    )


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def deployment(objs: list[dict[str, Any]], worker: str) -> dict[str, Any]:
    return next(
        o for o in by_kind(objs, "Deployment") if o["metadata"]["labels"][names.LABEL_WORKER] == worker
    )


def container(dep: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return c


def env_map(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def pod_hash(dep: dict[str, Any]) -> str:
    return str(dep["spec"]["template"]["metadata"]["annotations"][names.ANNOTATION_CONFIG_HASH])


def test_build_all_renders_configmap_six_deployments_service_and_cronjob_named_after_the_profile() -> None:
    objs = build_all(TradingProfileSpec(), ctx())
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "paper-profile"),
        *[("Deployment", f"paper-{w}") for w in names.ALL_WORKERS],
        ("Service", "paper-metrics"),
        ("CronJob", "paper-train"),
    ]
    assert all(o["metadata"]["namespace"] == "trading" for o in objs)


def test_every_object_has_standard_labels_profile_label_and_controller_owner_reference() -> None:
    for obj in build_all(TradingProfileSpec(), ctx()):
        labels = obj["metadata"]["labels"]
        assert labels[names.LABEL_NAME] == "quantum-trader"
        assert labels[names.LABEL_INSTANCE] == "paper"
        assert labels[names.LABEL_MANAGED_BY] == "quantum-operator"
        assert labels[names.LABEL_PART_OF] == "quantum-trader"
        assert labels[names.LABEL_PROFILE] == "paper"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "quantumtrader.io/v1alpha1",
                "kind": "TradingProfile",
                "name": "paper",
                "uid": "uid-123",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_deployment_selector_matches_pod_labels_and_service_selects_the_profiles_workers() -> None:
    objs = build_all(TradingProfileSpec(), ctx())
    for dep in by_kind(objs, "Deployment"):
        sel = dep["spec"]["selector"]["matchLabels"]
        assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    svc = by_kind(objs, "Service")[0]
    assert svc["spec"]["selector"][names.LABEL_PROFILE] == "paper"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}
    ]
    for dep in by_kind(objs, "Deployment"):
        assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("worker", names.ALL_WORKERS)
def test_worker_container_runs_qt_worker_with_profile_probes_port_and_locked_down_security(
    worker: str,
) -> None:
    dep = deployment(build_all(TradingProfileSpec(), ctx()), worker)
    c = container(dep)
    assert c["image"] == "img:1"
    assert c["args"] == ["worker", worker, "--profile", "/etc/quantum/profile.yaml"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 8000, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts == {"/etc/quantum": "profile", "/tmp": "tmp"}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["profile"]["configMap"]["name"] == "paper-profile"
    assert "emptyDir" in vols["tmp"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert env_map(c)["REDIS_URL"] == {"secretKeyRef": {"name": "qt-redis", "key": "url"}}
    assert env_map(c)["QT_HTTP_PORT"] == "8000"


def test_router_runs_one_replica_with_recreate_strategy_others_roll() -> None:
    objs = build_all(TradingProfileSpec(), ctx())
    router = deployment(objs, "router")
    assert router["spec"]["replicas"] == 1
    assert router["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment(objs, "gate")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_exchange_credentials_and_redis_url_come_only_from_secret_refs() -> None:
    spec = parse_spec(
        {
            "environment": "testnet",
            "exchange": {"name": "binanceusdm", "credentialsSecret": "binance-tn"},
            "redis": {"urlSecret": "my-redis"},
        }
    )
    objs = build_all(spec, ctx("testnet"))
    for dep in by_kind(objs, "Deployment"):
        env = env_map(container(dep))
        assert env["REDIS_URL"] == {"secretKeyRef": {"name": "my-redis", "key": "url"}}
        worker = dep["metadata"]["labels"][names.LABEL_WORKER]
        pod = dep["spec"]["template"]["spec"]
        secret_vols = [v["secret"] for v in pod["volumes"] if "secret" in v]
        mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
        if worker in ("snapshot", "executor"):
            assert [(v["secretName"], [i["key"] for i in v["items"]]) for v in secret_vols] == [
                ("binance-tn", ["apiKey", "secret"])
            ]
            assert mounts["/var/run/secrets/quantum/exchange"]["readOnly"] is True
            assert env["QT_EXCHANGE_CREDENTIALS_DIR"] == "/var/run/secrets/quantum/exchange"
        else:
            assert secret_vols == [] and "QT_EXCHANGE_CREDENTIALS_DIR" not in env
        assert "QT_EXCHANGE_KEY" not in env and "QT_EXCHANGE_SECRET" not in env
        assert all(isinstance(v, (str, dict)) for v in env.values())
    text = yaml.safe_dump(objs)
    assert "apiKey:" not in text.replace("key: apiKey", "")


def test_paused_scales_trading_workers_to_zero_keeps_universe_and_does_not_change_config_hash() -> None:
    running, paused = TradingProfileSpec(), parse_spec({"paused": True})
    objs_r, objs_p = build_all(running, ctx()), build_all(paused, ctx())
    assert deployment(objs_p, "universe")["spec"]["replicas"] == 1
    for w in ("ai", "router", "snapshot", "gate", "executor"):
        assert deployment(objs_p, w)["spec"]["replicas"] == 0
        assert desired_replicas(running, w) == 1
    assert objs_r[0]["data"] == objs_p[0]["data"]
    assert pod_hash(deployment(objs_r, "universe")) == pod_hash(deployment(objs_p, "universe"))


def test_config_hash_changes_with_a_spec_change_and_only_then() -> None:
    a1 = build_all(parse_spec({"router": {"maxOpenOrders": 10}}), ctx())
    a2 = build_all(parse_spec({"router": {"maxOpenOrders": 10}}), ctx())  # same spec, written again
    a3 = build_all(TradingProfileSpec(), ctx())  # same values through defaults
    b = build_all(parse_spec({"router": {"maxOpenOrders": 12}}), ctx())
    h = {pod_hash(deployment(objs, "gate")) for objs in (a1, a2, a3)}
    assert len(h) == 1
    assert pod_hash(deployment(b, "gate")) not in h
    assert b[0]["data"]["maxOpenOrders"] == "12"
    assert {pod_hash(d) for d in by_kind(b, "Deployment")} == {config_hash(b[0]["data"])}
    # an image change rolls through the pod template itself, not through the config hash
    img = build_all(parse_spec({"workers": {"image": "other:2"}}), ctx())
    assert container(deployment(img, "ai"))["image"] == "other:2"


def test_configmap_holds_a_loadable_profile_manifest_and_flat_keys_for_humans(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "snapshot": {"allowlistSource": "env", "allowlist": ["BTCUSDT"], "ranking": "volume"},
            "router": {"maxOpenOrders": 7, "targetOpenOrders": 2},
        }
    )
    cm = build_all(spec, ctx())[0]
    for key in ("allowlistSource", "ranking", "maxOpenOrders", "targetOpenOrders", "environment"):
        assert key in cm["data"]
    assert cm["data"]["allowlistSource"] == "env" and cm["data"]["ranking"] == "volume"
    assert cm["data"]["maxOpenOrders"] == "7" and cm["data"]["targetOpenOrders"] == "2"
    f = tmp_path / "profile.yaml"
    f.write_text(cm["data"]["profile.yaml"])
    loaded = load_profile(f)
    assert loaded.name == "paper"
    assert loaded.spec == spec


@pytest.mark.parametrize(
    ("interval", "schedule"),
    [
        (86400, "0 3 * * *"),
        (2 * 86400, "0 3 */2 * *"),
        (7 * 86400, "0 3 * * 0"),
        (6 * 3600, "0 */6 * * *"),
        (5 * 3600, "0 */6 * * *"),
        (3600, "0 * * * *"),
        (13 * 3600, "0 3 * * *"),
        (30 * 60, "*/30 * * * *"),
        (45 * 60, "0 * * * *"),
        (60, "* * * * *"),
        (7 * 60, "*/10 * * * *"),
    ],
)
def test_retrain_interval_maps_to_a_cron_schedule_rounding_up(interval: float, schedule: str) -> None:
    assert cron_schedule(interval) == schedule


def test_train_cronjob_runs_qt_train_with_the_profile_and_forbids_overlap() -> None:
    cj = build_all(parse_spec({"ai": {"retrainInterval": "12h"}}), ctx())[-1]
    assert cj["spec"]["schedule"] == "0 */12 * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    c = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["train", "--profile", "/etc/quantum/profile.yaml"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_workers_resources_from_the_spec_replace_the_defaults() -> None:
    spec = parse_spec({"workers": {"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}})
    for dep in by_kind(build_all(spec, ctx()), "Deployment"):
        assert container(dep)["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_rendered_manifests_pass_kubernetes_validate_strict(example: Path) -> None:
    profile = load_profile(example)
    for obj in build_all(profile.spec, ctx(profile.name)):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_rbac_manifests_pass_kubernetes_validate_strict_and_never_delete() -> None:
    for obj in rbac.manifests(namespace="trading", webhook_managed=True):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for rule in [*rbac.rules(peering=True), *rbac.cluster_rules(webhook_managed=True)]:
        assert "delete" not in rule["verbs"] and "*" not in rule["verbs"]


def test_workers_log_in_the_operator_default_unless_the_profile_chooses() -> None:
    from quantum_operator.render import RenderContext, container_env
    from quantum_trader.core.profile import parse_spec

    def fmt(spec: dict[str, object], default: str) -> str:
        env = container_env(parse_spec(spec), RenderContext(profile="p", namespace="n", log_format=default),
                            worker="gate")
        return next(str(e["value"]) for e in env if e["name"] == "QT_LOG_FORMAT")

    assert fmt({}, "json") == "json"
    assert fmt({}, "text") == "text"
    assert fmt({"workers": {"logFormat": "text"}}, "json") == "text"
