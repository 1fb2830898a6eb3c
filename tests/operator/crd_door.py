"""The CRD as a door, without an API server: its openAPIV3Schema (jsonschema, draft 4 shaped) and
every x-kubernetes-validations CEL rule, evaluated by a real CEL implementation (cel-python) with
the one Kubernetes extension our rules use (``string.replace``, from cel-go's ext strings)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from quantum_operator import crd


def _replace(value: Any, old: Any, new: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value).replace(str(old), str(new)))


@cache
def schema() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(crd.CRD_PATH.read_text())
    root: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


@cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions={"replace": _replace})


def rules(node: dict[str, Any] | None = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    node = schema() if node is None else node
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule
    for key, child in node.get("properties", {}).items():
        yield from rules(child, (*path, key))


def cel_violations(doc: Any) -> list[str]:
    """``<path>: <message>`` of every CEL rule the document breaks (rules on absent objects skip)."""
    bad = []
    for path, rule in rules():
        target: Any = doc
        for p in path:
            if not isinstance(target, dict) or p not in target:
                break
            target = target[p]
        else:
            try:
                ok = bool(_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(target)}))
            except celpy.CELEvalError:
                ok = False  # the API server refuses on an evaluation error too
            if not ok:
                where = ".".join(path) + rule.get("fieldPath", "")
                bad.append(f"{where}: {rule['message']}")
    return bad


def schema_errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft4Validator(schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def refusals(doc: Any) -> list[str]:
    """Everything the CRD alone refuses in ``doc`` (schema first: CEL runs on well-typed values)."""
    errors = schema_errors(doc)
    return errors or cel_violations(doc)
