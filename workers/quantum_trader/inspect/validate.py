"""``qt validate``: check profile files offline and say it the way a person fixes it.

The rules are :mod:`quantum_trader.core.profile`'s (the CRD, the webhook and the workers
apply the same ones); this module presents them: every document of a multi-document
file (``---``), one line per problem with its path, a "did you mean" for a misspelt
field, and one JSON document with ``--json``. Documents of other API groups in the same
file (a Namespace, a Secret) are skipped and listed as such.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from quantum_trader.core.profile import API_VERSION, ProfileError, TradingProfile, parse_profile
from quantum_trader.core.yamlsafe import safe_load_all

GROUP: Final = API_VERSION.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Issue:
    path: str
    message: str
    suggestion: str = ""

    def line(self) -> str:
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{self.path}: {self.message}{hint}" if self.path else f"{self.message}{hint}"

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "suggestion": self.suggestion}


@dataclass(frozen=True, slots=True)
class DocumentReport:
    file: str
    document: int  # 1-based; 0 when the file itself could not be read or parsed
    documents_in_file: int
    name: str = ""
    kind: str = ""
    skipped: bool = False
    issues: tuple[Issue, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.issues

    @property
    def where(self) -> str:
        return self.file if self.documents_in_file <= 1 or not self.document else f"{self.file} (document {self.document})"

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.where}: skipped ({self.kind or 'no kind'}: not a {GROUP} object)"]
        if self.issues:
            return [f"{self.where}: {i.line()}" for i in self.issues]
        s = self.summary
        return [f"{self.where}: valid TradingProfile {self.name!r} (environment={s['environment']}, "
                f"exchange={s['exchange']}, mode={s['mode']}, strict_health={str(s['strict_health']).lower()})"]

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "name": self.name, "kind": self.kind,
                "skipped": self.skipped, "valid": self.valid, "issues": [i.to_json() for i in self.issues],
                "summary": dict(self.summary)}


# -- did you mean ---------------------------------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _names(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """YAML spelling of each field → the nested model it holds (None for a leaf)."""
    out: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = _model_of(info.annotation)
    return out


def known_fields(path: list[str]) -> list[str]:
    """The field names allowed beside ``path[-1]`` (``["spec", "router", "x"]`` → the router's fields)."""
    model: type[BaseModel] | None = TradingProfile
    for part in path[:-1]:
        if model is None:
            return []
        model = _names(model).get(part)
    return sorted(_names(model)) if model is not None else []


def suggestion(path: str, message: str) -> str:
    """The closest known field for an ``unknown field`` problem, or ''."""
    if not message.startswith("unknown field"):
        return ""
    parts = path.split(".")
    candidates = known_fields(parts)
    lowered = {c.lower(): c for c in candidates}
    if parts[-1].lower() in lowered:
        return lowered[parts[-1].lower()]
    close = difflib.get_close_matches(parts[-1], candidates, n=1, cutoff=0.6)
    return close[0] if close else ""


# -- files ----------------------------------------------------------------------------------------


def _documents(text: str) -> Iterator[Any]:
    yield from safe_load_all(text)  # alias bombs refused, as for every profile file (core/yamlsafe.py)


def validate_document(document: Any, *, file: str, index: int, total: int) -> DocumentReport:
    if isinstance(document, Mapping):
        api = str(document.get("apiVersion", ""))
        kind = str(document.get("kind", ""))
        if api and not api.startswith(GROUP + "/"):
            return DocumentReport(file=file, document=index, documents_in_file=total, kind=kind, skipped=True)
    else:
        kind = ""
    try:
        profile = parse_profile(document)
    except ProfileError as exc:
        name = ""
        if isinstance(document, Mapping) and isinstance(document.get("metadata"), Mapping):
            name = str(document["metadata"].get("name", ""))
        issues = tuple(Issue(i.path, i.message, suggestion(i.path, i.message)) for i in exc.issues)
        return DocumentReport(file=file, document=index, documents_in_file=total, name=name, kind=kind,
                              issues=issues)
    spec = profile.spec
    summary = {"environment": spec.environment, "exchange": spec.exchange.name, "mode": spec.mode,
               "strict_health": spec.health.strict}
    return DocumentReport(file=file, document=index, documents_in_file=total, name=profile.name,
                          kind=profile.kind, summary=summary)


def validate_file(path: str) -> list[DocumentReport]:
    """One report per document of ``path`` (one report with the reason when the file cannot be read)."""
    p = Path(path)

    def failed(message: str) -> list[DocumentReport]:
        return [DocumentReport(file=path, document=0, documents_in_file=0, issues=(Issue("", message),))]

    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return failed(f"cannot read ({exc.strerror})")
    except UnicodeDecodeError:
        return failed("not a UTF-8 text file")
    try:
        documents = [d for d in _documents(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return failed(f"{where}invalid YAML: {problem}")
    if not documents:
        return failed("empty file: no YAML document")
    return [validate_document(d, file=path, index=i, total=len(documents)) for i, d in enumerate(documents, 1)]
