"""A suite of COCO-style captions drawn into Attention Modulation's categories (``am-categories``)
on the tinyworld pipeline, for the tests of ``vqa_alignment`` in a run."""

from __future__ import annotations

import json
from pathlib import Path

AM_SUITE = """
name: {name}
model: tinyworld
seed: 0
images_per_prompt: {images_per_prompt}
batch_size: 16
sampler: {{scheduler: pndm, steps: 4, guidance: 5.0, height: 64, width: 64}}
prompt_sets:
  - {{name: am, dataset: am-categories, limit: 1, params: {{path: {captions}}}}}
methods:
{methods}
metrics:
{metrics}
"""


def write_am_suite(root: Path, captions: list[str], *, name: str, images_per_prompt: int, methods: list[str],
                   metrics: list[str]) -> Path:
    """``root/captions.json`` (COCO annotations of ``captions``) and ``root/suite.yaml`` drawing one
    caption per category from it; ``methods``, ``metrics``: YAML flow mappings, one per entry."""
    captions_file = root / "captions.json"
    captions_file.write_text(json.dumps({"annotations": [{"image_id": i, "id": i, "caption": c}
                                                         for i, c in enumerate(captions)]}))
    suite = root / "suite.yaml"
    suite.write_text(AM_SUITE.format(name=name, images_per_prompt=images_per_prompt, captions=captions_file,
                                     methods="\n".join(f"  - {m}" for m in methods),
                                     metrics="\n".join(f"  - {m}" for m in metrics)))
    return suite
