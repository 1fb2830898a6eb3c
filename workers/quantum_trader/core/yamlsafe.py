"""YAML loading within a small memory budget: alias bombs, huge and deeply nested documents refused.

``yaml.safe_load`` builds a document whose aliases share objects, so a 1 KB "billion laughs"
file loads quickly — and then costs gigabytes the moment anything walks it (validation,
JSON, a diff). :func:`safe_load` composes the node graph first (small: aliases are shared
nodes), counts the nodes the document *would* have with every alias expanded, and refuses
it above ``max_nodes`` before constructing anything.

    from quantum_trader.core.yamlsafe import safe_load, YamlRefused   # YamlRefused is a yaml.YAMLError
"""

from __future__ import annotations

from typing import Any, Final

import yaml

MAX_BYTES: Final = 1_000_000  # a TradingProfile is a few KB
MAX_NODES: Final = 100_000  # nodes after alias expansion
MAX_DEPTH: Final = 64


class YamlRefused(yaml.YAMLError):
    """A document refused before construction (size, alias expansion, depth): one clear reason."""


def _expanded(node: yaml.Node, memo: dict[int, int], depth: int, limit: int) -> int:
    """Nodes under ``node`` with aliases expanded (memoised per shared node; stops past ``limit``)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > MAX_DEPTH:
        raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels")
    total = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded(k, memo, depth + 1, limit) + _expanded(v, memo, depth + 1, limit)
            if total > limit:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded(item, memo, depth + 1, limit)
            if total > limit:
                break
    memo[key] = total
    if total > limit:
        raise YamlRefused(f"expands to more than {limit} nodes (anchors/aliases): refused")
    return total


def safe_load(text: str | bytes, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` that refuses what would not fit a small memory budget (:class:`YamlRefused`)."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise YamlRefused(f"document is {size} bytes, more than {max_bytes}")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        _expanded(node, {}, 0, max_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def safe_load_all(text: str | bytes, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> list[Any]:
    """Every document of a multi-document stream, each within the same budget as :func:`safe_load`."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise YamlRefused(f"document is {size} bytes, more than {max_bytes}")
    loader = yaml.SafeLoader(text)
    out: list[Any] = []
    try:
        while loader.check_node():
            try:
                node = loader.get_node()
            except RecursionError:
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels") from None
            if node is None:
                continue
            _expanded(node, {}, 0, max_nodes)
            out.append(loader.construct_document(node))
        return out
    finally:
        loader.dispose()
