"""Generate docs/profile-reference.md from the TradingProfile model (every field, default, meaning).

    python tools/profile_reference.py            # print
    python tools/profile_reference.py --write    # write docs/profile-reference.md
    python tools/profile_reference.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from quantum_trader.core.profile import Settings, TradingProfileSpec, format_duration

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "profile-reference.md"


def _default(model: type[BaseModel], name: str) -> str:
    value = model.model_fields[name].get_default(call_default_factory=True)
    if isinstance(value, Settings):
        return "(section)"
    annotation = str(model.model_fields[name].metadata) + str(model.model_fields[name].annotation)
    if isinstance(value, float) and "_duration_field" in annotation:
        return format_duration(value)
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (str, dict)) else str(value)


def _rows(model: type[BaseModel], prefix: str, out: list[tuple[str, str, str]], sections: list[Any]) -> None:
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, Settings):
            sections.append((path, kind))
            continue
        out.append((path, _default(model, name), (info.description or "").replace("|", "\\|")))


def render() -> str:
    lines = [
        "# TradingProfile reference",
        "",
        "Generated from `workers/quantum_trader/core/profile.py` by `python tools/profile_reference.py --write`",
        "(a test fails when it is stale). Durations are written `250ms`, `3s`, `5m`, `1h30m`, `24h`, `7d`.",
        "Cross-field rules: `production` ⇒ `health.strict: true` (no environment variable can change it);",
        "`testnet`/`production` ⇒ `exchange.name: binanceusdm`; `router.targetOpenOrders ≤ router.maxOpenOrders`;",
        "`router.minConfidence ≤ router.superConfidence`; `gate.killScoreWarning ≤ gate.killScoreCritical`;",
        "`replay` needs `exchange.data`. `qt validate FILE` checks all of them offline.",
        "",
    ]
    top: list[tuple[str, str, str]] = []
    sections: list[Any] = []
    _rows(TradingProfileSpec, "spec", top, sections)
    lines += ["## spec", "", "| field | default | meaning |", "|---|---|---|"]
    lines += [f"| `{p}` | `{d}` | {m} |" for p, d, m in top]
    while sections:
        path, model = sections.pop(0)
        rows: list[tuple[str, str, str]] = []
        nested: list[Any] = []
        _rows(model, path, rows, nested)
        sections[:0] = nested
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        lines += ["", f"## {path}", ""] + ([doc, ""] if doc else [])
        lines += ["| field | default | meaning |", "|---|---|---|"]
        lines += [f"| `{p}` | `{d}` | {m} |" for p, d, m in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python tools/profile_reference.py --write",
                  file=sys.stderr)
            return 1
        return 0
    if args.write:
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
