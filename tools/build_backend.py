"""Build backend: setuptools, with editable installs always in ``strict`` mode.

``bench/``, ``metrics/``, ``datasets/`` and ``baselines/`` are mapped onto ``t2ibench`` and its
subpackages (``[tool.setuptools] package-dir``), and the last three are namespace folders (no
``__init__.py``) so that they never shadow Hugging Face ``datasets`` or another top-level
``metrics``. setuptools' default ("lenient") editable install cannot import a namespace folder
mapped under a regular package: ``pip install -e .`` would succeed and ``t2ibench.baselines``
would be missing at first use. The strict mode builds a tree of links instead, which imports
everything. So a plain ``pip install -e .`` gets ``editable_mode=strict``; asking for another mode
fails at install time with the command to use. (After adding a module, rerun the install so the
link tree sees it.)
"""

from __future__ import annotations

from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the PEP 517/660 hooks not wrapped here)

COMMAND = "pip install -e '.[test]' --config-settings editable_mode=strict"


def _strict(config_settings: dict[str, Any] | None) -> dict[str, Any]:
    settings = dict(config_settings or {})
    mode = settings.pop("editable-mode", None) or settings.get("editable_mode")
    if mode not in (None, "strict"):
        raise SystemExit(f"t2ibench: editable_mode={mode!r} cannot import the namespace subpackages "
                         f"(t2ibench.baselines, .metrics, .datasets); install with: {COMMAND}")
    settings["editable_mode"] = "strict"
    return settings


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    return _setuptools.build_editable(wheel_directory, _strict(config_settings), metadata_directory)


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _setuptools.get_requires_for_build_editable(_strict(config_settings))


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    return _setuptools.prepare_metadata_for_build_editable(metadata_directory, _strict(config_settings))
