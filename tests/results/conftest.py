"""A small run directory written through t2ibench.store, and stand-in scorers registered for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2ibench.fileio import atomic_write_json
from t2ibench.metrics.common import NotAvailable, Scorer
from t2ibench.registry import METRICS
from t2ibench.store import RunDir

from _helpers.results import Counting, MeanPixelScorer, add_images, png

SUITE_YAML = """
name: results-test
model: tinyworld
seed: 0
images_per_prompt: 3
prompt_sets:
  - {name: align, dataset: prompts, params: {}}
  - {name: fair, dataset: prompts, params: {}}
methods:
  - {name: sd}
  - {name: other}
metrics:
  - {name: t_fid, params: {}, prompt_sets: [align]}
  - {name: t_mean, prompt_sets: [align]}
  - {name: t_fair, prompt_sets: [fair]}
  - {name: t_missing}
"""

class FeatureNet(torch.nn.Module):
    name = "mean-colour-features"
    num_features = 3
    image_size = 8

    def forward(self, x):
        Counting.forwards += x.shape[0]
        return torch.stack([x[:, c].mean((1, 2)) for c in range(3)], dim=1) * 10


class MissingScorer(Scorer):
    name = "t_missing"

    def check_available(self):
        raise NotAvailable("weights for t_missing not on this machine")


@pytest.fixture
def make_run(tmp_path):
    def make(n_prompts=2, per_prompt=3):
        from t2ibench.metrics.fairness import FairnessScorer, ModuleClassifier
        from t2ibench.metrics.frechet import FIDScorer

        ref = tmp_path / "reference"
        ref.mkdir(exist_ok=True)
        for i in range(12):
            (ref / f"{i:03d}.png").write_bytes(png(1000 + i))
        METRICS.register("t_mean", MeanPixelScorer)
        METRICS.register("t_fid", lambda **p: FIDScorer(network=FeatureNet(), reference=str(ref), cache_dir=str(tmp_path / "cache"), bootstrap=20, **p))

        def classify(images, tsa, categories):
            Counting.forwards += len(images)
            red = torch.tensor([float(np.asarray(im)[:, :, 0].mean()) for im in images])
            return torch.stack([-red, red], dim=1)

        METRICS.register("t_fair", lambda **p: FairnessScorer(_classifier=ModuleClassifier(classify, "red-classifier"), bootstrap=100, **p))
        METRICS.register("t_missing", MissingScorer)
        run = RunDir(tmp_path / "run")
        run.ensure_writable()
        (run.path / "suite.yaml").write_text(SUITE_YAML)
        atomic_write_json(run.path / "run.json", {"suite": "results-test", "suite_hash": "test", "t2ibench": "0"})
        add_images(run, "sd", n_prompts, per_prompt)
        add_images(run, "other", n_prompts, per_prompt, shift=40)
        return run

    return make
