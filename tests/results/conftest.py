"""A small run directory written through t2ibench.store, and stand-in scorers registered for it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from t2ibench.metrics.common import NotAvailable, Scorer, mean_ci
from t2ibench.registry import METRICS
from t2ibench.store import RunDir, atomic_write_json

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

FAIR_META = {"tsa": "Smiling", "categories": ["not smiling", "smiling"], "class_prompts": ["a", "b"],
             "base_prompt": "a headshot of a person"}


def png(seed: int, shift: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.integers(0, 200, (8, 8, 3)) + shift, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def add_images(run: RunDir, method: str, n_prompts: int, per_prompt: int, shift: int = 0, start: int = 0) -> None:
    for pset in ("align", "fair"):
        for p in range(start, start + n_prompts):
            for i in range(per_prompt):
                key = f"{method}/{pset}/p{p}-{i:04d}"
                seed = hash((pset, p, i)) % 10_000
                meta = {"method": method, "method_name": method, "prompt_set": pset, "prompt_id": f"p{p}",
                        "prompt": f"prompt {p}", "index": i, "seed": seed,
                        "prompt_meta": dict(FAIR_META) if pset == "fair" else {"category": "color", "labels": {}}}
                run.write_image(key, png(p * 10 + i, shift), meta)


class Counting:
    forwards = 0


class MeanPixelScorer(Scorer):
    """Per image: the mean red value (a 'model forward' counted); aggregate: mean with interval."""

    name = "t_mean"

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def config(self):
        return {"scale": self.scale}

    def item_inputs(self, meta):
        return {"prompt": meta.get("prompt")}

    def score(self, images, metas):
        Counting.forwards += len(images)
        return [float(np.asarray(im)[:, :, 0].mean()) * self.scale for im in images]

    def aggregate(self, values, metas):
        return {self.name: {**mean_ci(values, n_boot=50), "lower_is_better": False}}


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
