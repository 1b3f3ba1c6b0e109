"""The package layout: our folders never shadow Hugging Face `datasets` (or others)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_subpackage_folders_are_namespace_folders():
    for folder in ("datasets", "metrics", "baselines"):
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py would shadow other packages"
    assert not (ROOT / "conftest.py").exists()


def test_every_source_folder_is_a_listed_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    mapping = {"bench": "t2ibench", "metrics": "t2ibench.metrics", "datasets": "t2ibench.datasets", "baselines": "t2ibench.baselines"}
    for top, pkg in mapping.items():
        for py in (ROOT / top).rglob("*.py"):
            rel = py.parent.relative_to(ROOT / top)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            assert name in listed, f"{py} is in {name}, which pyproject.toml does not list"


def test_import_datasets_at_repo_root_is_not_ours(tmp_path):
    """With the repo root as working directory (sys.path[0] = ''), `import datasets` must
    resolve to the installed library, not to our datasets/ folder. A stand-in distribution
    named `datasets` plays Hugging Face's library (which may not be installed)."""
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("IS_HF_STANDIN = True\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = "import datasets, t2ibench.datasets as ours; print(getattr(datasets, 'IS_HF_STANDIN', False), ours.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "t2ibench.datasets"], out.stdout + out.stderr


def test_import_real_hf_datasets_at_repo_root_when_installed():
    import importlib.util

    spec = importlib.util.find_spec("datasets")
    if spec is None or not spec.origin or "site-packages" not in spec.origin:
        import pytest

        pytest.skip("Hugging Face datasets is not installed")
    code = "import datasets; print(datasets.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "site-packages" in out.stdout and str(ROOT / "datasets") not in out.stdout
