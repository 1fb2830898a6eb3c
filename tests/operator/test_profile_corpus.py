"""One rule set at every door: the same corpus of good and bad profiles through `qt validate`,
worker start-up (`qt worker`), the admission webhook (kopf's server, AdmissionReview over HTTP) and
the CRD (its schema plus every CEL rule, evaluated by cel-python).

Each file in profile_corpus/ says what it is (first comment line), the exact `qt validate` lines
(`# expect: ...`, or `# expect: valid`), `# crd: accepts` when the CRD keeps the document for the
webhook to refuse (unknown fields and inline credentials: pruning would drop them silently for lax
clients), and `# doors: file` when only a file can carry the fault (a YAML alias bomb).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from quantum_operator import names
from quantum_trader import cli

from .crd_door import refusals
from .emulator import Emulator, free_port

CORPUS = Path(__file__).parent / "profile_corpus"


@dataclass(frozen=True)
class Case:
    path: Path
    expect: tuple[str, ...]  # () = valid
    crd_accepts: bool
    file_only: bool

    @property
    def valid(self) -> bool:
        return not self.expect

    def document(self) -> Any:
        return yaml.safe_load(self.path.read_text(encoding="utf-8"))


def _case(path: Path) -> Case:
    head = [line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    expect = tuple(
        h.removeprefix("expect: ").replace("<file>: ", "")
        for h in head
        if h.startswith("expect: ") and h != "expect: valid"
    )
    return Case(path, expect, "crd: accepts" in head, "doors: file" in head)


CASES = [_case(p) for p in sorted(CORPUS.glob("*.yaml"))]
IDS = [c.path.stem for c in CASES]
INVALID = [c for c in CASES if not c.valid]
OVER_HTTP = [c for c in CASES if not c.file_only]  # what a client can send to the API server


def test_the_corpus_is_large_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 40
    assert sum(c.valid for c in CASES) >= 12 and sum(not c.valid for c in CASES) >= 28


@contextlib.contextmanager
def _no_log_records() -> Iterator[None]:
    """The doors print their verdict; log records (of any thread still winding down) stay out of it."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _stderr_lines(case: Case, err: str) -> list[str]:
    """The lines without the file name each command puts in front (``qt validate`` may repeat it) and
    without the hint ``qt validate`` adds to an unknown field (`` (did you mean 'x'?)``)."""
    return [re.sub(r" \(did you mean '[^']*'\?\)$", "", line.replace(f"{case.path}: ", ""))
            for line in err.splitlines()]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_qt_validate(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    with _no_log_records():
        code = cli.main(["validate", str(case.path)])
    out, err = capsys.readouterr()
    if case.valid:
        assert (code, err) == (0, "") and "valid TradingProfile" in out
    else:
        assert code == 1 and _stderr_lines(case, err) == list(case.expect)
        for secret in ("hunter2", "k-123", "s-456", "AKIA"):
            assert secret not in err  # never echoed


@pytest.mark.parametrize("case", INVALID, ids=[c.path.stem for c in INVALID])
def test_worker_start_up_refuses_with_the_same_lines(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    with _no_log_records():
        code = cli.main(["worker", "gate", "--profile", str(case.path)])
    assert code == 1 and _stderr_lines(case, capsys.readouterr().err) == list(case.expect)


@pytest.mark.parametrize("case", OVER_HTTP, ids=[c.path.stem for c in OVER_HTTP])
def test_crd_schema_and_cel_rules(case: Case) -> None:
    refused = refusals(case.document())
    if case.valid or case.crd_accepts:
        assert refused == []
    else:
        assert refused, "the CRD accepts what qt validate refuses"


def _review(uid: str, obj: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": names.GROUP, "version": names.VERSION, "kind": names.KIND},
            "resource": {"group": names.GROUP, "version": names.VERSION, "resource": names.PLURAL},
            "name": obj.get("metadata", {}).get("name", ""),
            "namespace": "default",
            "operation": "CREATE",
            "object": obj,
            "oldObject": None,
            "userInfo": {"username": "lax-client"},
            "dryRun": False,
        },
    }


async def test_admission_webhook_accepts_and_refuses_the_corpus_with_qt_validate_lines(
    k8s: tuple[Emulator, str], run_operator: Any
) -> None:
    port = free_port()
    await run_operator(webhook_port=port)
    url = f"http://127.0.0.1:{port}/validate-tradingprofile"
    mismatches = []
    async with aiohttp.ClientSession() as session:
        for i, case in enumerate(OVER_HTTP):
            async with session.post(url, json=_review(f"u{i}", case.document())) as resp:
                answer = (await resp.json())["response"]
            lines = tuple(answer["status"]["message"].splitlines()) if not answer["allowed"] else ()
            if lines != case.expect:
                mismatches.append((case.path.stem, lines, case.expect))
    assert mismatches == []
