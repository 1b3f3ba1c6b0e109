"""Fixtures for the core tests: small suite files on the random tiny pipelines, and a scored run."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from _helpers.cli import run_cli
from _helpers.runs import SCORED_SUITE

TINY_SUITE = """\
name: tiny
description: test suite
model: {model}
seed: 7
images_per_prompt: {n}
batch_size: {batch}
sampler: {{scheduler: {scheduler}, steps: {steps}, guidance: 5.0, height: 32, width: 32}}
prompt_sets:
  - name: mixed
    dataset: prompts
    params:
      prompts: [a red circle left of a blue square, two green triangles at night, a headshot of a person]
methods:
  - name: {method}
"""


@pytest.fixture
def write_suite(tmp_path: Path):
    """write_suite(**overrides) -> path of a tiny suite YAML."""

    def _write(name: str = "suite.yaml", model: str = "tiny-sd", n: int = 2, batch: int = 2, steps: int = 3,
               scheduler: str = "pndm", method: str = "sd", text: str | None = None) -> Path:
        path = tmp_path / name
        body = text if text is not None else TINY_SUITE.format(
            model=model, n=n, batch=batch, steps=steps, scheduler=scheduler, method=method
        )
        path.write_text(textwrap.dedent(body))
        return path

    return _write


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory) -> Path:
    """A generated and scored run of ``SCORED_SUITE`` (8 images), never modified: tests work on copies."""
    root = tmp_path_factory.mktemp("base")
    (root / "suite.yaml").write_text(SCORED_SUITE)
    assert run_cli("generate", root / "suite.yaml", "--out", root / "run", "--quiet") == 0
    assert run_cli("score", root / "run", "--quiet") == 0
    return root / "run"


@pytest.fixture
def run(scored_run, tmp_path) -> Path:
    """A copy of the scored run inside ``tmp_path/sandbox`` (a parent to scan for escapes)."""
    dst = tmp_path / "sandbox" / "a" / "b" / "run"
    shutil.copytree(scored_run, dst)
    return dst
