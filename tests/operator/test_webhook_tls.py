"""The chart's webhook registration, end to end without a cluster: the operator started with the rendered
Deployment's own `--webhook/--webhook-cert/--webhook-key` options serves HTTPS with that certificate, and a
client that trusts only the rendered `caBundle` and checks the Service's DNS name (what the API server
does) posts an AdmissionReview to the rendered path and gets the `qt validate` refusal."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from quantum_operator import main, names

from tests.deploy.conftest import CHART, NAMESPACE, RELEASE, load_tool, run_helm

from .emulator import Emulator, free_port, profile_body


def _certificate(tmp_path: Path, dns: list[str]) -> tuple[Path, Path]:
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(crt), "-subj", f"/CN={dns[0]}", "-addext", "subjectAltName=" + ",".join(f"DNS:{d}" for d in dns)],
        check=True, capture_output=True, timeout=60,
    )
    return crt, key


def _render(helm: Path, *args: str) -> list[dict[str, Any]]:
    res = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def _post(port: int, *, server_name: str, cadata: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """HTTPS POST as the API server makes it: trust only ``cadata``, verify ``server_name``."""
    context = ssl.create_default_context(cadata=cadata)
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(f"POST {path} HTTP/1.1\r\nHost: {server_name}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return dict(json.loads(rest))


async def test_the_rendered_webhook_registration_reaches_the_operator_over_verified_https(
    k8s: tuple[Emulator, str], run_operator: Any, tmp_path: Path
) -> None:
    fetch = load_tool("fetch_helm")
    try:
        helm = fetch.ensure_helm()
    except fetch.HelmUnavailable as exc:
        pytest.skip(f"helm unavailable: {exc}")
    service = f"{RELEASE}-quantum-trader-webhook"
    crt, key = _certificate(tmp_path, [f"{service}.{NAMESPACE}.svc", f"{service}.{NAMESPACE}.svc.cluster.local"])
    ca_bundle = base64.b64encode(crt.read_bytes()).decode()
    objects = _render(helm, "--set", "webhook.enabled=true", "--set", "webhook.tls.secretName=qt-webhook-tls",
                      "--set", f"webhook.tls.caBundle={ca_bundle}")
    (vwc,) = [o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"]
    (op,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator")]
    (hook,) = vwc["webhooks"]
    client = hook["clientConfig"]
    assert client["service"]["name"] == service

    # the operator's own options, as rendered; only the address and the mounted files are mapped to here
    (container,) = op["spec"]["template"]["spec"]["containers"]
    port = free_port()
    args = [a.replace("$(POD_NAMESPACE)", NAMESPACE).replace("0.0.0.0:9443", f"127.0.0.1:{port}")
            .replace("/etc/quantum-webhook/tls.crt", str(crt)).replace("/etc/quantum-webhook/tls.key", str(key))
            for a in container["args"]]
    server = main.admission_server(main.parser().parse_args(args))
    assert server is not None and not server.insecure
    await run_operator(webhook_server=server)

    bad = profile_body("paper", {"router": {"maxOpenOrders": 2, "targetOpenOrders": 5}}, namespace=NAMESPACE)
    review = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-tls", "kind": {"group": names.GROUP, "version": names.VERSION, "kind": names.KIND},
                    "resource": {"group": names.GROUP, "version": names.VERSION, "resource": names.PLURAL},
                    "name": "paper", "namespace": NAMESPACE, "operation": "CREATE", "object": bad,
                    "oldObject": None, "userInfo": {"username": "tester"}, "dryRun": False},
    }
    cadata = base64.b64decode(client["caBundle"]).decode()
    answer = _post(port, server_name=f"{service}.{NAMESPACE}.svc", cadata=cadata,
                   path=client["service"]["path"], body=review)
    assert answer["response"]["uid"] == "u-tls" and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"] == "spec.router.targetOpenOrders: must be <= maxOpenOrders (5 > 2)"
    with pytest.raises(ssl.SSLCertVerificationError):  # a name the certificate does not carry is refused
        _post(port, server_name="elsewhere.example", cadata=cadata, path=client["service"]["path"], body=review)
