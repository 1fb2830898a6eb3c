"""charts/quantum-trader: Redis auth without a command-line password, the Redis NetworkPolicy, the
operations API Deployment, and the admission webhook's registration — rendered by the real helm binary,
the Redis start script and `qt api` run for real."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.deploy.conftest import NAMESPACE, RELEASE, REPO, VARIANTS, run_helm

PASSWORD_FILE = "/run/secrets/redis/password"
NO_RETRY = Retry(NoBackoff(), 0)  # an authentication failure is final


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return c


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Redis: auth from a mounted file, the ACL file on the volume ------------------------------------


def test_redis_gets_its_password_from_a_mounted_file_never_from_a_command_line(render) -> None:
    sts = render().one("StatefulSet", "-redis")
    c = _container(sts)
    text = " ".join(c["command"] + c["args"])
    assert "requirepass" not in text and "$(REDIS_PASSWORD)" not in text and "REDIS_PASSWORD" not in _env(c)
    assert f"< {PASSWORD_FILE} | sha256sum" in text and "--aclfile /data/users.acl" in text
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["password"]["secret"]["secretName"] == "qt-redis"
    assert {"name": "password", "mountPath": "/run/secrets/redis", "readOnly": True} in c["volumeMounts"]
    assert _env(c)["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "qt-redis", "key": "password"}}  # probes


def _start_script(render: Any, tmp_path: Path) -> tuple[list[str], Path]:
    """The chart's Redis start script, run here with the local redis-server on a unix socket."""
    from quantum_trader.core.embedded import find_server_binary

    script = _container(render().one("StatefulSet", "-redis"))["args"][0]
    sock = tmp_path / "redis.sock"
    script = (script.replace(PASSWORD_FILE, str(tmp_path / "password")).replace("/data", str(tmp_path / "data"))
              .replace("exec redis-server", f"exec {find_server_binary()} --port 0 --unixsocket {sock} --save ''"))
    (tmp_path / "data").mkdir(exist_ok=True)
    return ["/bin/sh", "-c", script], sock


def _run_redis(argv: list[str], sock: Path) -> subprocess.Popen[bytes]:
    if sock.exists():
        sock.unlink()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.02)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


def test_the_chart_redis_start_script_protects_the_default_user_and_keeps_profile_users_across_restarts(
    render: Any, tmp_path: Path,
) -> None:
    from quantum_operator.redis_acl import ensure_user
    from quantum_trader.core.acl import ProfileUser
    from quantum_trader.core.keys import Keys

    argv, sock = _start_script(render, tmp_path)
    (tmp_path / "password").write_text("first-admin-password\n")
    proc = _run_redis(argv, sock)
    try:
        assert b"first-admin-password" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(unix_socket_path=str(sock), retry=NO_RETRY).ping()
        assert redis.Redis(unix_socket_path=str(sock), password="first-admin-password").ping()
        user = ProfileUser(keys=Keys("paper", namespace=NAMESPACE), password="profile-password-" + "z" * 20)

        async def assert_user() -> tuple[bool, bool]:
            admin = aredis.Redis(unix_socket_path=str(sock), password="first-admin-password")
            try:
                first, again = await ensure_user(admin, user), await ensure_user(admin, user)
            finally:
                await admin.aclose()
            assert not first.error and not again.error
            return first.saved, again.changed

        assert asyncio.run(assert_user()) == (True, False)  # saved to the ACL file once; converged after
    finally:
        _stop(proc)
    acl_file = (tmp_path / "data" / "users.acl").read_text()
    assert "first-admin-password" not in acl_file and user.password not in acl_file
    (tmp_path / "password").write_text("second-admin-password")  # the Secret changed: the next start uses it
    proc = _run_redis(argv, sock)
    try:
        assert redis.Redis(unix_socket_path=str(sock), password="second-admin-password").ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(unix_socket_path=str(sock), password="first-admin-password", retry=NO_RETRY).ping()
        mine = redis.Redis(unix_socket_path=str(sock), username=user.name, password=user.password)
        assert mine.set(Keys("paper", namespace=NAMESPACE).control_paused, "x")  # the profile's user survived
        with pytest.raises(redis.exceptions.NoPermissionError):
            mine.flushall()
    finally:
        _stop(proc)


def test_redis_networkpolicy_admits_only_the_operator_the_workers_and_the_api(render) -> None:
    names = pytest.importorskip("quantum_operator.names")
    rendered = render("--set", "api.enabled=true")
    policy = rendered.one("NetworkPolicy", "-redis")
    sts = rendered.one("StatefulSet", "-redis")
    assert policy["spec"]["podSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "redis", "protocol": "TCP"}]
    selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    operator_pod = rendered.one("Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    api_pod = rendered.one("Deployment", "-api")["spec"]["template"]["metadata"]["labels"]
    # what the operator labels every worker and train pod with (render.labels)
    worker_pod = {names.LABEL_PART_OF: names.APP_NAME, names.LABEL_MANAGED_BY: names.MANAGED_BY,
                  names.LABEL_COMPONENT: names.COMPONENT_WORKER}
    for pod in (operator_pod, api_pod, worker_pod):
        assert any(sel.items() <= pod.items() for sel in selectors), pod
    assert len(selectors) == 3  # nothing else
    assert render("--set", "redis.networkPolicy.enabled=false").of("NetworkPolicy") == []


def test_operator_manages_acl_users_unless_turned_off(render) -> None:
    assert _env(_container(render().one("Deployment", "-operator")))["QT_REDIS_ACL"] == "managed"
    off = render("--set", "redis.aclUsers=false").one("Deployment", "-operator")
    assert _env(_container(off))["QT_REDIS_ACL"] == "off"


# -- the operations REST API -----------------------------------------------------------------------


def test_api_deployment_runs_qt_api_for_one_profile_with_a_token_secret_and_the_profiles_redis_user(
    render,
) -> None:
    names = pytest.importorskip("quantum_operator.names")
    cli = pytest.importorskip("quantum_trader.cli")
    rendered = render(*VARIANTS["api"])
    dep, svc = rendered.one("Deployment", "-api"), rendered.one("Service", "-api")
    pod = dep["spec"]["template"]["spec"]
    c = _container(dep)
    args = cli.build_parser().parse_args(c["args"])
    assert (args.command, args.profile, args.host, args.port) == ("api", names.PROFILE_PATH, "0.0.0.0", 8080)
    env = _env(c)
    token = rendered.one("Secret", "-api-token")
    assert env["QT_API_TOKEN"] == {"secretKeyRef": {"name": token["metadata"]["name"], "key": "token"}}
    assert len(base64.b64decode(token["data"]["token"])) == 40
    auth = names.redis_auth_secret_name("paper")  # the Secret the operator makes for the profile
    assert env["REDIS_URL"] == {"secretKeyRef": {"name": auth, "key": "url"}}
    assert env["REDIS_USERNAME"] == {"secretKeyRef": {"name": auth, "key": "username"}}
    assert env["REDIS_PASSWORD_FILE"] == f"{names.REDIS_AUTH_DIR}/{names.SECRET_KEY_PASSWORD}"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["profile"]["configMap"]["name"] == names.configmap_name("paper")
    assert volumes["redis-auth"]["secret"]["secretName"] == auth
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert render().of("Deployment") == [render().one("Deployment", "-operator")]  # off by default


def test_api_with_an_existing_token_secret_and_acl_off(render) -> None:
    rendered = render("--set", "api.enabled=true", "--set", "api.token.existingSecret=my-token",
                      "--set", "redis.aclUsers=false")
    assert [s["metadata"]["name"] for s in rendered.of("Secret")] == ["qt-redis"]
    env = _env(_container(rendered.one("Deployment", "-api")))
    assert env["QT_API_TOKEN"] == {"secretKeyRef": {"name": "my-token", "key": "token"}}
    assert env["REDIS_URL"] == {"secretKeyRef": {"name": "qt-redis", "key": "url"}}
    assert "REDIS_PASSWORD_FILE" not in env


def test_the_rendered_api_container_serves_its_probe_and_a_token_call_as_the_profiles_user(
    render, tmp_path: Path,
) -> None:
    """`qt api` started with the Deployment's own args and env (paths mapped to files here), against a real
    Redis that enforces the profile's ACL user, answers the probe path and an authenticated pause."""
    from quantum_operator.render import RenderContext, build_configmap
    from quantum_trader.core.acl import ProfileUser
    from quantum_trader.core.embedded import EmbeddedRedis
    from quantum_trader.core.keys import Keys
    from quantum_trader.core.profile import parse_spec

    rendered = render(*VARIANTS["api"])
    c = _container(rendered.one("Deployment", "-api"))
    token = base64.b64decode(rendered.one("Secret", "-api-token")["data"]["token"]).decode()
    cm = build_configmap(parse_spec({}), RenderContext(profile="paper", namespace=NAMESPACE))
    (tmp_path / "profile.yaml").write_text(cm["data"]["profile.yaml"])
    keys = Keys("paper", namespace=NAMESPACE)
    user = ProfileUser(keys=keys, password="api-profile-password-" + "q" * 20)
    port = _free_port()
    with EmbeddedRedis(users=[user], appendonly=False) as server:
        (tmp_path / "password").write_text(user.password)
        args = [a.replace("/etc/quantum/profile.yaml", str(tmp_path / "profile.yaml")) for a in c["args"]]
        args[args.index("--port") + 1] = str(port)
        args[args.index("--host") + 1] = "127.0.0.1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        env.update({"QT_API_TOKEN": token, "REDIS_URL": server.url, "REDIS_USERNAME": user.name,
                    "REDIS_PASSWORD_FILE": str(tmp_path / "password")})
        proc = subprocess.Popen([sys.executable, "-m", "quantum_trader.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(base + c["readinessProbe"]["httpGet"]["path"], timeout=2) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                    time.sleep(0.2)
            request = urllib.request.Request(base + "/api/v1/pause", method="POST", data=b"{}",
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                assert r.status == 200
            admin = redis.Redis(unix_socket_path=str(server.socket_path), password=server.admin_password)
            assert admin.exists(keys.control_paused)
            assert admin.execute_command("ACL", "LOG") == []
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()


# -- the admission webhook ----------------------------------------------------------------------------


def test_webhook_is_registered_with_the_operators_path_port_and_a_cert_manager_certificate(render) -> None:
    handlers = pytest.importorskip("quantum_operator.handlers")
    main = pytest.importorskip("quantum_operator.main")
    rendered = render(*VARIANTS["webhook-cert-manager"])
    vwc = rendered.one("ValidatingWebhookConfiguration")
    svc = rendered.one("Service", "-webhook")
    cert = rendered.one("Certificate")
    (hook,) = vwc["webhooks"]
    client = hook["clientConfig"]["service"]
    assert client == {"name": svc["metadata"]["name"], "namespace": NAMESPACE,
                      "path": f"/{handlers.WEBHOOK_ID}", "port": 443}
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{cert['metadata']['name']}"
    assert f"{svc['metadata']['name']}.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"] == {"name": rendered.one("Issuer")["metadata"]["name"], "kind": "Issuer"}
    assert hook["rules"] == [{"apiGroups": ["quantumtrader.io"], "apiVersions": ["v1alpha1"],
                              "operations": ["CREATE", "UPDATE"], "resources": ["tradingprofiles"],
                              "scope": "Namespaced"}]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    assert "object.spec != oldObject.spec" in hook["matchConditions"][0]["expression"]
    # the Service reaches the operator's webhook port, which the operator serves with the mounted certificate
    op = rendered.one("Deployment", "-operator")
    c = _container(op)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] == "webhook"
    assert svc["spec"]["selector"].items() <= op["spec"]["template"]["metadata"]["labels"].items()
    parsed = main.parser().parse_args([a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in c["args"]])
    assert parsed.webhook == ("0.0.0.0", ports["webhook"])
    mount = next(m for m in c["volumeMounts"] if m["name"] == "webhook-tls")
    assert parsed.webhook_cert == f"{mount['mountPath']}/tls.crt" and parsed.webhook_key == f"{mount['mountPath']}/tls.key"
    volume = next(v for v in op["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]


def test_webhook_with_your_own_certificate_and_ignore_policy(render) -> None:
    rendered = render(*VARIANTS["webhook-own-cert"], "--set", "webhook.failurePolicy=Ignore")
    assert rendered.of("Certificate") == [] and rendered.of("Issuer") == []
    (hook,) = rendered.one("ValidatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["caBundle"] == "Q0E=" and hook["failurePolicy"] == "Ignore"
    volume = next(v for v in rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == "my-webhook-tls"
    assert render().of("ValidatingWebhookConfiguration") == []  # off by default


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--set", "webhook.enabled=true"], "webhook.certManager.enabled=true, or webhook.tls.secretName"),
     (["--set", "webhook.enabled=true", "--set", "webhook.tls.secretName=x"], "webhook.tls.caBundle"),
     (["--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true",
       "--set", "webhook.failurePolicy=Sometimes"], "failurePolicy"),
     (["--set", "api.enabled=true", "--set", "api.profile=Not_A_Name"], "api.profile")],
    ids=["webhook-without-certificate", "own-cert-without-ca", "bad-failure-policy", "bad-profile-name"],
)
def test_webhook_and_api_values_that_cannot_work_are_refused(helm: Path, args: list[str], message: str) -> None:
    res = run_helm(helm, "template", RELEASE, str(REPO / "charts" / "quantum-trader"), "--namespace", NAMESPACE, *args)
    assert res.returncode != 0 and message in res.stderr, res.stderr
