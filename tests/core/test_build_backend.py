"""The build backend forces strict editable installs (the namespace subpackages need them)."""

import importlib.util
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[2] / "tools" / "build_backend.py"


@pytest.fixture(scope="module")
def backend():
    spec = importlib.util.spec_from_file_location("t2ibench_build_backend", BACKEND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_editable_install_gets_strict_mode(backend):
    assert backend._strict(None) == {"editable_mode": "strict"}
    assert backend._strict({"editable-mode": "strict", "x": "1"}) == {"editable_mode": "strict", "x": "1"}


@pytest.mark.parametrize("mode", ["lenient", "compat"])
def test_other_editable_modes_fail_with_the_command_to_use(backend, mode):
    with pytest.raises(SystemExit, match="editable_mode=strict"):
        backend._strict({"editable_mode": mode})


def test_pyproject_uses_the_backend():
    import tomllib

    system = tomllib.loads((BACKEND.parents[1] / "pyproject.toml").read_text())["build-system"]
    assert system["build-backend"] == "build_backend" and system["backend-path"] == ["tools"]
