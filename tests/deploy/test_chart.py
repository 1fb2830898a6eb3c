"""charts/quantum-trader: lint, render every documented variant, validate every object."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import CHART, NAMESPACE, RELEASE, REPO, VARIANTS, Rendered, load_tool, run_helm

# 1.28: the oldest the chart supports (Chart.yaml kubeVersion; CRD rules use fieldPath)
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


_VALIDATED: set[str] = set()  # objects equal across variants are validated once per session


def _k8s_validate(obj: dict[str, Any], version: str) -> None:
    key = version + json.dumps(obj, sort_keys=True)
    if key in _VALIDATED:
        return
    kubernetes_validate.validate(obj, version, strict=True)
    _VALIDATED.add(key)


def _crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


# -- lint and schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("variants", [["default"], ["redis-external", "json-logs", "example-profile", "service-monitor"],
                                      ["api", "webhook-cert-manager"]],
                         ids=["default", "variants", "api-and-webhook"])
def test_helm_lint_strict_passes(helm: Path, variants: list[str]) -> None:
    args = [a for v in variants for a in VARIANTS[v]]
    res = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *args)
    assert res.returncode == 0, res.stdout + res.stderr


def test_chart_packages_into_an_archive(helm: Path, tmp_path: Path) -> None:
    res = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "quantum-trader-0.1.0.tgz").is_file()


def test_clusters_older_than_1_28_are_refused(helm: Path) -> None:
    res = run_helm(helm, "template", RELEASE, str(CHART), "--kube-version", "1.27.0")
    assert res.returncode != 0 and "kubeVersion" in res.stderr


def test_values_yaml_satisfies_values_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8")), schema)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "logFormat=yaml"], "logFormat"),
        (["--set", "redis.enabled=false"], "externalUrlSecret"),
        (["--set", "operator.imagee.tag=x"], "imagee"),
    ],
    ids=["unknown-log-format", "external-redis-without-secret", "misspelled-key"],
)
def test_bad_values_are_refused_with_the_offending_key(helm: Path, args: list[str], message: str) -> None:
    res = run_helm(helm, "template", RELEASE, str(CHART), *args)
    assert res.returncode != 0
    assert message in res.stderr


# -- every variant renders into objects the API server would accept ------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_object_passes_kubernetes_validate_strict(render, crd, variant: str) -> None:
    rendered: Rendered = render(*VARIANTS[variant])
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] == "TradingProfile":
            jsonschema.validate(obj, _crd_schema(crd), cls=jsonschema.Draft4Validator)
            continue
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "cert-manager.io/")):
            continue  # a custom resource: kubernetes-validate has no schema for it
        for version in K8S_VERSIONS:
            try:
                _k8s_validate(obj, version)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {exc}") from exc
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_carries_the_standard_labels(render, variant: str) -> None:
    for obj in render(*VARIANTS[variant]).objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # crds/ is copied verbatim from the repository (not templated)
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/part-of"] == "quantum-trader"


def test_default_install_has_operator_rbac_crd_redis_and_dashboards(render) -> None:
    kinds = sorted({o["kind"] for o in render().objects})
    assert kinds == sorted(
        ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment", "Job",
         "NetworkPolicy", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "StatefulSet"]
    )
    names = {o["metadata"]["name"] for o in render().objects if o["metadata"].get("namespace") == NAMESPACE}
    assert {"qt-quantum-trader-operator", "qt-redis", "qt-redis-headless"} <= names


# -- operator --------------------------------------------------------------------------------------


def test_operator_runs_non_root_read_only_with_probes_and_resources(render) -> None:
    dep = render().one("Deployment", "-operator")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz"
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--standalone" in c["args"]  # one replica, no kopf peering (the Role has no kopfpeerings)
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == render().one("ServiceAccount")["metadata"]["name"]


def test_operator_args_are_accepted_by_the_qt_operator_parser(render) -> None:
    main = pytest.importorskip("quantum_operator.main")
    (c,) = render().one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in c["args"]]
    parsed = main.parser().parse_args(args)
    assert parsed.namespace == [NAMESPACE] and parsed.standalone


def test_operator_listens_on_all_addresses_in_the_container_only_through_explicit_args(render) -> None:
    main = pytest.importorskip("quantum_operator.main")
    (c,) = render().one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    parsed = main.parser().parse_args([a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in c["args"]])
    assert parsed.metrics_host == "0.0.0.0" and parsed.liveness.startswith("http://0.0.0.0:")
    defaults = main.parser().parse_args([])
    assert defaults.metrics_host == "127.0.0.1" and defaults.liveness.startswith("http://127.0.0.1:")
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": parsed.metrics_port}


def test_uninstall_hook_stops_the_operator_then_releases_finalizers_as_its_service_account(render) -> None:
    main = pytest.importorskip("quantum_operator.main")
    rendered = render()
    job = rendered.one("Job", "-release")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    assert "hook-succeeded" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]
    (c,) = pod["containers"]
    parsed = main.parser().parse_args([a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in c["args"]])
    assert parsed.release_finalizers and parsed.namespace == [NAMESPACE]
    assert parsed.scale_down == rendered.one("Deployment", "-operator")["metadata"]["name"]
    assert c["image"] == rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert render("--set", "operator.releaseFinalizersOnUninstall=false").of("Job") == []


def test_operator_env_wires_worker_image_redis_secret_and_log_format(render) -> None:
    (c,) = render("--set", "worker.image.tag=abc123").one("Deployment", "-operator")["spec"]["template"]["spec"][
        "containers"
    ]
    env = _env(c)
    assert env["QT_WORKER_IMAGE"] == "quantum-trader/worker:abc123"
    assert env["QT_REDIS_SECRET"] == "qt-redis"
    assert env["REDIS_URL"] == {"secretKeyRef": {"name": "qt-redis", "key": "url"}}
    assert env["QT_LOG_FORMAT"] == "text"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["image"] == "quantum-trader/operator:0.1.0"


def test_image_digest_wins_over_tag(render) -> None:
    digest = "sha256:" + "a" * 64
    (c,) = render("--set", f"operator.image.digest={digest}").one("Deployment", "-operator")["spec"]["template"][
        "spec"
    ]["containers"]
    assert c["image"] == f"quantum-trader/operator@{digest}"


def test_json_logs_switch_reaches_operator_env_and_example_profile(render) -> None:
    rendered = render("--set", "logFormat=json", "--set", "exampleProfile.enabled=true")
    (c,) = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    assert _env(c)["QT_LOG_FORMAT"] == "json"
    assert rendered.one("TradingProfile")["spec"]["workers"]["logFormat"] == "json"


def test_operator_rbac_is_namespaced_and_mirrors_quantum_operator_rbac(render) -> None:
    rbac = pytest.importorskip("quantum_operator.rbac")
    rendered = render()
    role = rendered.one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _triples(role["rules"]) == _triples(rbac.rules())
    assert _triples(rendered.one("ClusterRole")["rules"]) == _triples(rbac.cluster_rules())
    # least privilege: secrets are read one by one, nothing is deleted, nothing cluster-wide is written
    assert ("", "secrets", "list") not in _triples(role["rules"])
    assert not [t for t in _triples(role["rules"]) if t[2] in ("delete", "deletecollection", "*")]
    assert {t[2] for t in _triples(rendered.one("ClusterRole")["rules"])} <= {"get", "list", "watch"}
    sa = rendered.one("ServiceAccount")["metadata"]["name"]
    for binding in (rendered.one("RoleBinding"), rendered.one("ClusterRoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_rbac_create_false_renders_no_rbac(render) -> None:
    kinds = {o["kind"] for o in render("--set", "rbac.create=false").objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


# -- redis -----------------------------------------------------------------------------------------


def test_redis_statefulset_has_aof_a_pvc_and_the_password_from_the_secret(render) -> None:
    sts = render().one("StatefulSet", "-redis")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    args = c["args"][0].split()  # a start script (tests/deploy/test_chart_security.py runs it)
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--aclfile") + 1] == "/data/users.acl"
    assert _env(c)["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "qt-redis", "key": "password"}}
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    (pvc,) = sts["spec"]["volumeClaimTemplates"]
    assert pvc["metadata"]["name"] == "data" and pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_redis_secret_url_points_at_the_release_redis_with_the_generated_password(render) -> None:
    data = _decoded(render().one("Secret", "-redis"))
    assert len(data["password"]) == 32 and data["password"].isalnum()
    assert data["url"] == f"redis://:{data['password']}@{RELEASE}-redis:6379/0"
    svc = render().one("Service", "qt-redis")
    assert svc["spec"]["ports"][0]["port"] == 6379


def test_given_redis_password_is_used_verbatim(render) -> None:
    data = _decoded(render("--set", "redis.auth.password=s3cret").one("Secret", "-redis"))
    assert data == {"password": "s3cret", "url": "redis://:s3cret@qt-redis:6379/0"}


def test_existing_redis_secret_is_used_and_no_secret_is_rendered(render) -> None:
    rendered = render(*VARIANTS["redis-existing-secret"])
    assert rendered.of("Secret") == []
    sts = rendered.one("StatefulSet")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert _env(c)["REDISCLI_AUTH"]["secretKeyRef"]["name"] == "my-redis-auth"
    (password,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "password"]
    assert password["secret"]["secretName"] == "my-redis-auth"
    (op,) = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    assert _env(op)["QT_REDIS_SECRET"] == "my-redis-auth"


def test_redis_disabled_renders_no_redis_and_uses_the_external_url_secret(render) -> None:
    rendered = render(*VARIANTS["redis-external"])
    assert rendered.of("StatefulSet") == [] and rendered.of("Secret") == [] and rendered.of("NetworkPolicy") == []
    assert not [s for s in rendered.of("Service") if "redis" in s["metadata"]["name"]]
    (c,) = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    env = _env(c)
    assert env["QT_REDIS_SECRET"] == "my-redis"
    assert env["REDIS_URL"] == {"secretKeyRef": {"name": "my-redis", "key": "url"}}


# -- metrics and dashboards -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "expected"),
    [("default", False), ("service-monitor", True), ("prometheus-operator-detected", True)],
)
def test_pod_monitor_only_with_prometheus_operator_or_when_enabled(render, variant: str, expected: bool) -> None:
    monitors = render(*VARIANTS[variant]).of("PodMonitor")
    assert bool(monitors) is expected
    if expected:
        (pm,) = monitors
        assert pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_pod_monitor_selects_the_labels_and_port_the_operator_gives_workers(render) -> None:
    names = pytest.importorskip("quantum_operator.names")
    (pm,) = render(*VARIANTS["service-monitor"]).of("PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = pm["spec"]["selector"]["matchLabels"]
    assert selector == {
        names.LABEL_PART_OF: names.APP_NAME,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: names.COMPONENT_WORKER,
    }
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == names.PORT_NAME


def test_auto_detection_can_be_turned_off(render) -> None:
    rendered = render("--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.serviceMonitor.autoDetect=false")
    assert rendered.of("PodMonitor") == []


def test_each_dashboard_is_a_configmap_labelled_for_the_grafana_sidecar(render) -> None:
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    cms = [c for c in render().of("ConfigMap") if "-dashboard-" in c["metadata"]["name"]]
    assert len(cms) == len(files) == 4
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = cm["data"].items()
        assert key.startswith("quantum-trader-") and key.endswith(".json")
        assert json.loads(text) == json.loads((CHART / "dashboards" / key.removeprefix("quantum-trader-")).read_text())


def test_dashboard_label_and_namespace_are_configurable(render) -> None:
    cms = [c for c in render(*VARIANTS["dashboards-other-namespace"]).of("ConfigMap") if "-dashboard-" in c["metadata"]["name"]]
    assert cms and all(c["metadata"]["namespace"] == "monitoring" for c in cms)
    assert all(c["metadata"]["labels"]["grafana_dashboard_qt"] == "1" for c in cms)


# -- CRD and profiles ------------------------------------------------------------------------------


def test_chart_crd_equals_the_repository_crd(crd) -> None:
    sync = load_tool("sync_crd")
    assert sync.differences() == [], "run python tools/sync_crd.py"


def test_rendered_crd_is_the_repository_crd(render, crd) -> None:
    assert render().one("CustomResourceDefinition") == crd


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_profiles_validate_against_the_crd_schema(crd, path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == f"{crd['spec']['group']}/v1alpha1" and doc["kind"] == crd["spec"]["names"]["kind"]
    jsonschema.validate(doc, _crd_schema(crd), cls=jsonschema.Draft4Validator)


def test_crd_schema_refuses_a_profile_with_a_bad_field(crd) -> None:
    doc = yaml.safe_load((REPO / "examples" / "paper.yaml").read_text(encoding="utf-8"))
    doc["spec"]["environment"] = "moon"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _crd_schema(crd), cls=jsonschema.Draft4Validator)


def test_example_profile_in_chart_is_accepted_by_qt_validate_rules(render) -> None:
    profile = pytest.importorskip("quantum_trader.core.profile")
    tp = render(*VARIANTS["example-profile"]).one("TradingProfile")
    parsed = profile.parse_profile(tp)
    assert parsed.name == "paper" and parsed.spec.environment == "paper"


# -- NOTES.txt -------------------------------------------------------------------------------------


def _notes(helm: Path, tmp_path: Path, *args: str) -> str:
    """helm template does not print NOTES.txt: render it as a YAML string in a copy of the chart."""
    chart = tmp_path / "quantum-trader"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "notes.yaml").write_text(
        "notes: |\n" + "".join("  " + line for line in notes.splitlines(True)), encoding="utf-8"
    )
    res = run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE,
                   "--show-only", "templates/notes.yaml", *args)
    assert res.returncode == 0, res.stderr
    return str(yaml.safe_load(res.stdout)["notes"])


def test_notes_tell_the_next_commands(helm: Path, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path)
    assert f"kubectl -n {NAMESPACE} apply -f examples/paper.yaml" in notes
    assert "kubectl -n trading logs deploy/paper-router" in notes
    assert "port-forward svc/kube-prometheus-stack-grafana 3000:80" in notes
    assert "rollout status deploy/qt-quantum-trader-operator" in notes


def test_notes_with_external_redis_name_the_url_secret(helm: Path, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, *VARIANTS["redis-external"])
    assert "secret/my-redis" in notes and "statefulset/" not in notes


def test_notes_name_the_profile_secrets_the_api_and_the_webhook(helm: Path, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, *VARIANTS["api"], *VARIANTS["webhook-cert-manager"])
    assert "secret/<profile>-redis-auth" in notes
    assert "svc/qt-quantum-trader-api:8080 for profile paper" in notes and "secret/qt-quantum-trader-api-token" in notes
    assert "svc/qt-quantum-trader-webhook (failurePolicy Fail)" in notes
