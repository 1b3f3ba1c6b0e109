"""Name → object registries for methods, prompt-set loaders and metrics, typed and checked.

An entry is resolved lazily from a ``"module:attribute"`` string, so listing what exists
imports nothing heavy. A name not registered may be given as ``module:attribute`` directly
(a user's own method in their own module), or come from an installed package through an
entry-point group (``t2ibench.methods``, ``t2ibench.datasets``, ``t2ibench.metrics``).

Every object loaded from a ``module:attribute`` string is checked against its kind before use: a method is a subclass of
:class:`t2ibench.method.Method`, a metric a subclass of
:class:`t2ibench.metrics.common.Scorer`, a prompt-set loader a callable taking
``(params, *, limit, sample_seed, where)``. Anything else (``json:loads``, ``os:system``) is one
line and exit 2. An unknown name suggests the nearest known ones (``difflib``).

Trust. Importing ``module:attribute`` runs that module's code, so a suite file is code, like a
Makefile. Commands that read a run directory someone else may have written (``score``,
``table``, ``check``, ``report``) run inside :func:`builtins_only`, where only built-in and
installed (entry-point) names resolve; ``--trust-remote-code`` lifts it.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import re
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator

from .errors import UserError

#: ``package.module:Attribute.path`` (dotted identifiers on both sides)
TARGET = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")

_EXTERNAL_ALLOWED: ContextVar[bool] = ContextVar("t2ibench_external_code_allowed", default=True)


@contextlib.contextmanager
def builtins_only(enabled: bool = True) -> Iterator[None]:
    """Within this block, ``module:attribute`` names that are not registered are refused."""
    token = _EXTERNAL_ALLOWED.set(not enabled and _EXTERNAL_ALLOWED.get())
    try:
        yield
    finally:
        _EXTERNAL_ALLOWED.reset(token)


def external_code_allowed() -> bool:
    return _EXTERNAL_ALLOWED.get()


#: a check of a loaded object: returns None if it fits, else what was expected (for the message)
Check = Callable[[Any], "str | None"]


def subclass_of(module: str, attr: str) -> Check:
    """A check that the object is a subclass of ``module:attr`` (imported when first checked)."""

    def check(obj: Any) -> str | None:
        base = getattr(importlib.import_module(module), attr)
        if isinstance(obj, type) and issubclass(obj, base):
            return None
        return f"a subclass of {base.__module__}.{base.__qualname__}"

    return check


def loader_protocol(obj: Any) -> str | None:
    """A prompt-set loader: a function ``(params, *, limit, sample_seed, where) -> list[PromptItem]``."""
    expected = "a prompt-set loader function (params, *, limit, sample_seed, where)"
    if isinstance(obj, type) or not callable(obj):
        return expected
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return expected
    names = set(sig.parameters)
    return None if {"limit", "sample_seed", "where"} <= names else expected


def factory_without_arguments(obj: Any) -> str | None:
    """A factory called with no arguments (e.g. an alignment judge's builder)."""
    expected = "a callable that takes no arguments and returns the object"
    if not callable(obj):
        return expected
    try:
        inspect.signature(obj).bind()
    except TypeError:
        return expected
    except ValueError:  # no signature (some builtins): let the call decide
        return None
    return None


class Registry:
    """A lazy mapping from names to ``module:attribute`` targets, checked with ``check`` on load."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str], check: Check | None = None) -> None:
        self.kind = kind
        self.group = group
        self._targets = dict(builtins)
        self._check = check

    def register(self, name: str, target: str | Any) -> None:
        """Add ``name``; ``target`` is an object or a ``module:attribute`` string."""
        self._targets[name] = target

    def _entry_points(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted({**self._entry_points(), **self._targets})

    def __contains__(self, name: str) -> bool:
        return name in self._targets or name in self._entry_points() or (
            isinstance(name, str) and bool(TARGET.match(name)) and external_code_allowed())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _unknown(self, name: str, loc: str) -> UserError:
        names = self.names()
        near = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
        return UserError(f"{loc}unknown {self.kind} {name!r}; {hint}expected one of {names} or module:Attribute")

    def get(self, name: str, *, where: str = "") -> Any:
        """The object registered as ``name`` (or named by ``module:attribute``), checked for its kind."""
        loc = f"{where}: " if where else ""
        if not isinstance(name, str):
            raise UserError(f"{loc}{self.kind} name {name!r} is a {type(name).__name__}; expected a string")
        target = self._targets.get(name) or self._entry_points().get(name)
        if target is None and ":" in name:
            if not TARGET.match(name):
                raise UserError(f"{loc}{self.kind} {name!r} is not module:Attribute (dotted Python names on both sides)")
            if not external_code_allowed():
                raise UserError(
                    f"{loc}{self.kind} {name!r} would import code named by this run directory; built-in names only "
                    "(a suite file is code: pass --trust-remote-code if you trust whoever wrote it)"
                )
            target = name
        if target is None:
            raise self._unknown(name, loc)
        if not isinstance(target, str):
            return target  # registered in-process by code: the caller vouches for it
        obj = self._load(name, target, loc)
        if self._check is not None:
            expected = self._check(obj)
            if expected is not None:
                raise UserError(f"{loc}{self.kind} {name!r} is {_describe(obj)}; expected {expected}")
        return obj

    def _load(self, name: str, target: str, loc: str) -> Any:
        module_name, _, attr = target.partition(":")
        if not TARGET.match(target):
            raise UserError(f"{loc}{self.kind} {name!r}: target {target!r} is not module:Attribute")
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


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    kind = type(obj).__name__
    qual = getattr(obj, "__qualname__", None)
    mod = getattr(obj, "__module__", None)
    return f"a {kind} {mod}.{qual}" if qual and mod else f"a {kind}"


def _catalog(module: str, table: str = "CATALOG") -> dict[str, str]:
    """Built-in entries: each subpackage owns a ``catalog`` module with name → target dicts."""
    return dict(getattr(importlib.import_module(module), table))


METHODS = Registry("method", "t2ibench.methods", _catalog("t2ibench.baselines.catalog"),
                   check=subclass_of("t2ibench.method", "Method"))
DATASETS = Registry("dataset", "t2ibench.datasets", _catalog("t2ibench.datasets.catalog"), check=loader_protocol)
METRICS = Registry("metric", "t2ibench.metrics", _catalog("t2ibench.metrics.catalog"),
                   check=subclass_of("t2ibench.metrics.common", "Scorer"))
REFERENCE_SETS = Registry("reference set", "t2ibench.references", _catalog("t2ibench.metrics.catalog", "REFERENCE_SETS"))
