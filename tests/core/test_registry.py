"""The name registries (``t2ibench.registry``): lazy ``module:attribute`` targets, kind checks,
entry points, near-name hints and the built-in-only mode that guards run directories."""

from __future__ import annotations

import pytest

from t2ibench.errors import UserError
from t2ibench.registry import (
    DATASETS,
    METHODS,
    METRICS,
    Registry,
    builtins_only,
    external_code_allowed,
    factory_without_arguments,
    loader_protocol,
    subclass_of,
)


def _methods() -> Registry:
    """A fresh method registry holding one built-in (registering into it leaves METHODS alone)."""
    return Registry("method", "t2ibench.test-methods", {"sd": "t2ibench.baselines.sd:PlainPipeline"},
                    check=subclass_of("t2ibench.method", "Method"))


def _error(call) -> str:
    with pytest.raises(UserError) as exc_info:
        call()
    return str(exc_info.value)


def test_shipped_registries_list_their_catalogs_and_load_each_entry_as_its_kind():
    assert {"sd", "iti-gen", "fairqueue"} <= set(METHODS.names())
    assert "clip_score" in METRICS.names() and "prompts" in DATASETS.names()
    assert METHODS.get("sd").name == "sd"


def test_unknown_name_is_one_error_that_suggests_the_nearest_names():
    message = _error(lambda: _methods().get("sdd", where="methods[0]"))
    assert message.startswith("methods[0]: unknown method 'sdd'; did you mean 'sd'?")
    assert "module:Attribute" in message


def test_module_attribute_of_another_kind_is_refused_with_what_was_expected():
    message = _error(lambda: _methods().get("json:loads"))
    assert "method 'json:loads' is a function json.loads" in message
    assert "expected a subclass of t2ibench.method.Method" in message


@pytest.mark.parametrize("name,words", [
    ("not a target:x", "is not module:Attribute"),
    ("t2ibench_no_such_module:X", "cannot import module 't2ibench_no_such_module'"),
    ("t2ibench.baselines.sd:NoSuchClass", "has no 'NoSuchClass'"),
])
def test_bad_module_attribute_names_are_one_error_each(name, words):
    assert words in _error(lambda: _methods().get(name))


def test_a_name_that_is_not_a_string_is_refused():
    assert "method name 3 is a int; expected a string" in _error(lambda: _methods().get(3))  # type: ignore[arg-type]


def test_registered_objects_are_returned_as_given_and_strings_resolve_lazily():
    registry = _methods()
    marker = object()
    registry.register("mine", marker)
    registry.register("later", "t2ibench.baselines.sd:PlainPipeline")
    assert registry.get("mine") is marker  # code that registers an object vouches for it
    assert registry.get("later").name == "sd"
    assert {"mine", "later", "sd"} <= set(registry.names())


def test_builtins_only_refuses_module_attribute_names_and_restores_on_exit():
    registry = _methods()
    assert external_code_allowed() and "t2ibench.baselines.sd:PlainPipeline" in registry
    with builtins_only():
        assert not external_code_allowed()
        assert "t2ibench.baselines.sd:PlainPipeline" not in registry
        assert "sd" in registry and registry.get("sd").name == "sd"
        assert "--trust-remote-code" in _error(lambda: registry.get("t2ibench.baselines.sd:PlainPipeline"))
        with builtins_only(False):  # a nested block cannot lift the outer refusal
            assert not external_code_allowed()
    assert external_code_allowed()
    with builtins_only(False):
        assert external_code_allowed()


def test_loader_protocol_and_factory_checks():
    def loader(params, *, limit, sample_seed, where):
        return []

    def needs_an_argument(x):
        return x

    assert loader_protocol(loader) is None
    assert loader_protocol(needs_an_argument) is not None and loader_protocol(int) is not None
    assert factory_without_arguments(dict) is None
    assert factory_without_arguments(needs_an_argument) is not None and factory_without_arguments(3) is not None


def test_entry_point_registration(monkeypatch):
    import importlib.metadata as md

    from t2ibench import registry

    ep = md.EntryPoint(name="ep-method", value="t2ibench.baselines.sd:PlainPipeline", group="t2ibench.methods")
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == "t2ibench.methods" else [])
    assert "ep-method" in registry.METHODS.names()
    assert registry.METHODS.get("ep-method").name == "sd"
