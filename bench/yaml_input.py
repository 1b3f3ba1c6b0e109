"""YAML from files a user or a run directory supplies, parsed with bounds.

A YAML document may reuse a node by alias, so ten lines of anchors expand to 10^9 nodes once
anything walks the result (hashing a suite, validating it). ``load_yaml`` composes the node
graph first (aliases stay shared there, so this is cheap), measures the size the document
would have once expanded, and constructs Python objects only when it stays within the bounds.
Every failure is one ``UserError`` line naming the file.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import UserError

#: a document's size in bytes, before parsing
MAX_YAML_BYTES = 8 * 1024 * 1024
#: alias uses (``*name``) in one document
MAX_YAML_ALIASES = 1000
#: nodes of the document once every alias is expanded (scalars, sequences, mappings)
MAX_YAML_NODES = 1_000_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built


def expanded_size(node: yaml.Node, limit: int) -> int:
    """Nodes of ``node``'s tree with every alias expanded, counted up to just above ``limit``.

    Shared nodes are measured once (memoised by identity), so a bomb is measured in time linear
    in its composed size; a node that contains itself (a recursive alias) counts as over the limit.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            return limit + 1
        open_nodes.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        open_nodes.discard(key)
        sizes[key] = min(total, limit + 1)
        return sizes[key]

    return size(node)


def load_yaml(text: str, where: str, expected: str) -> Any:
    """The document in ``text`` as Python objects (``None`` for an empty one).

    where: the file (and role) named in errors; expected: what the file should be. Malformed
    YAML, more than ``MAX_YAML_ALIASES`` aliases, or more than ``MAX_YAML_NODES`` nodes after
    expanding aliases is a ``UserError``.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise UserError(f"{where}: larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; expected {expected}")
    try:
        aliases = sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_Loader))
        if aliases > MAX_YAML_ALIASES:
            raise UserError(f"{where}: {aliases} YAML aliases; expected at most {MAX_YAML_ALIASES} ({expected})")
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
                raise UserError(f"{where}: expands to more than {MAX_YAML_NODES} YAML nodes through its aliases; "
                                f"expected {expected}")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{at}: malformed YAML ({problem}); expected {expected}") from None
    except RecursionError:
        raise UserError(f"{where}: YAML nested too deeply; expected {expected}") from None
