"""Stand-ins for the results tests: run images written through t2ibench.store, a counting scorer."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from t2ibench.metrics.common import Scorer, mean_ci
from t2ibench.store import RunDir

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


def write_aggregates(run_dir, agg: dict) -> None:
    """Write ``agg`` as ``RUN/results/aggregates.json`` sealed as `t2ibench score` seals it: a stand-in
    for a run that scored these values (a regressed controller, a second machine), not an edit."""
    import json
    from pathlib import Path

    from t2ibench.results.scoring import seal_aggregates

    records = list(RunDir(run_dir).records(warn=False))
    path = Path(run_dir) / "results" / "aggregates.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seal_aggregates(dict(agg), records)))
