"""Name → object registries for methods, prompt-set loaders and metrics.

An entry is resolved lazily from a ``"module:attribute"`` string, so listing what exists
imports nothing heavy. A name not registered may be given as ``module:attribute`` directly
(a user's own method in their own module), or come from an installed package through an
entry-point group (``t2ibench.methods``, ``t2ibench.datasets``, ``t2ibench.metrics``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Iterator

from .errors import UserError


class Registry:
    """A lazy mapping from names to ``module:attribute`` targets."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._targets = dict(builtins)

    def register(self, name: str, target: str | Any) -> None:
        """Add ``name``; ``target`` is an object or a ``module:attribute`` string."""
        self._targets[name] = target

    def _entry_points(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted({**self._entry_points(), **self._targets})

    def __contains__(self, name: str) -> bool:
        return name in self._targets or name in self._entry_points() or ":" in name

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str, *, where: str = "") -> Any:
        """The object registered as ``name`` (or named by ``module:attribute``)."""
        target = self._targets.get(name) or self._entry_points().get(name)
        if target is None and ":" in name:
            target = name
        loc = f"{where}: " if where else ""
        if target is None:
            raise UserError(f"{loc}unknown {self.kind} {name!r}; expected one of {self.names()} or module:Class")
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise UserError(f"{loc}{self.kind} {name!r}: cannot import module {module_name!r}") from None
            raise
        try:
            obj = module
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"{loc}{self.kind} {name!r}: module {module_name!r} has no {attr!r}") from None
        return obj


def _catalog(module: str) -> dict[str, str]:
    """Built-in entries: each subpackage owns a ``catalog`` module with a name → target dict."""
    return dict(importlib.import_module(module).CATALOG)


METHODS = Registry("method", "t2ibench.methods", _catalog("t2ibench.baselines.catalog"))
DATASETS = Registry("dataset", "t2ibench.datasets", _catalog("t2ibench.datasets.catalog"))
METRICS = Registry("metric", "t2ibench.metrics", _catalog("t2ibench.metrics.catalog"))
