"""Copy the repository's CRDs (crds/*.yaml) into the chart (charts/quantum-trader/crds/).

    python tools/sync_crd.py           # copy
    python tools/sync_crd.py --check   # exit 1 when the chart's copy differs

Helm installs a chart's crds/ before its templates and never upgrades or deletes
them; `kubectl apply -f crds/` upgrades them (see docs/kubernetes.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "crds"
DST = REPO / "charts" / "quantum-trader" / "crds"


def differences() -> list[str]:
    src = {p.name: p.read_bytes() for p in sorted(SRC.glob("*.yaml"))}
    dst = {p.name: p.read_bytes() for p in sorted(DST.glob("*.yaml"))}
    out = [f"missing in chart: {n}" for n in src if n not in dst]
    out += [f"not in crds/: {n}" for n in dst if n not in src]
    out += [f"differs: {n}" for n in src if n in dst and src[n] != dst[n]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        diff = differences()
        for line in diff:
            print(f"sync_crd: {line} (run python tools/sync_crd.py)", file=sys.stderr)
        return 1 if diff else 0
    DST.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in SRC.glob("*.yaml")}
    for stale in DST.glob("*.yaml"):
        if stale.name not in names:
            stale.unlink()
    for src in sorted(SRC.glob("*.yaml")):
        (DST / src.name).write_bytes(src.read_bytes())
        print(f"{src.relative_to(REPO)} -> {(DST / src.name).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
