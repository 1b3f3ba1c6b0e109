"""Fixtures for the core tests: small suite files on the random tiny pipelines."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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
