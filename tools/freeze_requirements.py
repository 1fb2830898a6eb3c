"""Pin the runtime dependencies of quantum-trader from the installed environment.

    python tools/freeze_requirements.py            # write requirements/runtime.txt
    python tools/freeze_requirements.py --check    # exit 1 when the file is stale

Walks ``[project].dependencies`` of pyproject.toml (extras included, e.g.
``redis[hiredis]``) through the installed distributions' metadata, evaluating
markers for the image (Linux, CPython 3.11), and writes ``name==version`` for
the whole closure — what the container images install, nothing from ``dev``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "requirements" / "runtime.txt"
# The images' platform (python:3.11 slim, linux/amd64 and linux/arm64).
TARGET_ENV = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "python_version": "3.11", "implementation_name": "cpython",
              "platform_python_implementation": "CPython"}
HEADER = """\
# Runtime dependencies of the quantum-trader images, pinned (generated; do not edit).
# Regenerate after changing [project].dependencies:  python tools/freeze_requirements.py
"""


class Missing(RuntimeError):
    pass


def _applies(req: Requirement, extra: str = "") -> bool:
    if req.marker is None:
        return True
    return bool(req.marker.evaluate({**TARGET_ENV, "extra": extra}))


def closure(roots: list[str]) -> dict[str, str]:
    """canonical name → installed version for the dependency closure of ``roots``."""
    pins: dict[str, str] = {}
    todo: list[tuple[Requirement, str]] = [(Requirement(r), "") for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, via_extra = todo.pop()
        if not _applies(req, via_extra):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as exc:
            raise Missing(f"{req.name} is required but not installed") from exc
        if not req.specifier.contains(dist.version, prereleases=True):
            raise Missing(f"installed {req.name}=={dist.version} does not satisfy {req}")
        pins[name] = dist.version
        for raw in dist.requires or ():
            sub = Requirement(raw)
            if sub.marker is None or _applies(sub, ""):
                todo.append((sub, ""))
            else:
                for extra in req.extras:
                    if _applies(sub, extra):
                        todo.append((Requirement(str(sub).split(";")[0]), ""))
                        break
    return pins


def project_dependencies() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["project"]["dependencies"])


def render() -> str:
    pins = closure(project_dependencies())
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    try:
        text = render()
    except Missing as exc:
        print(f"freeze_requirements: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(REPO)} is stale: python tools/freeze_requirements.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(OUT.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
