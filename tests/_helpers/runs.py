"""The small scored run that the run-directory tests copy: its suite text."""

from __future__ import annotations

#: tiny-sd, 4 prompts x 2 images, scored by CLIP score on the shipped tinyworld CLIP (cheap, no download)
SCORED_SUITE = """\
name: integ
model: tiny-sd
seed: 1
images_per_prompt: 2
batch_size: 4
sampler: {scheduler: pndm, steps: 2, guidance: 5.0, height: 32, width: 32}
prompt_sets:
  - name: mixed
    dataset: prompts
    params: {prompts: [a red circle, two green triangles, a blue square, a yellow star]}
methods:
  - name: sd
metrics:
  - {name: clip_score, params: {backend: tinyworld}}
"""
