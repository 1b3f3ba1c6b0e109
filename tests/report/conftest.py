import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from t2ibench.results.schema import make_row

from _helpers.results import write_aggregates

METHODS = ["sd", "fairqueue"]


def _write_image(root, method, pset, pid, index, seed, prompt, extra=None):
    d = root / "images" / method / pset
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 7 * METHODS.index(method))
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:] = rng.integers(0, 255, 3)
    arr[16:48, 16:48] = rng.integers(0, 255, 3)
    png = d / f"{pid}-{index:04d}.png"
    Image.fromarray(arr).save(png)
    meta = {"key": f"{method}/{pset}/{pid}-{index:04d}", "method": method, "prompt_set": pset, "prompt_id": pid,
            "prompt": prompt, "index": index, "seed": seed, "height": 64, "width": 64,
            "image_sha256": hashlib.sha256(png.read_bytes()).hexdigest(), **(extra or {})}
    (d / f"{pid}-{index:04d}.json").write_text(json.dumps(meta))


def make_run(root, with_aggregates=True):
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps({"suite": "test-suite", "suite_hash": "abc123def4567890", "t2ibench": "0.1.0"}))
    (root / "suite.yaml").write_text(
        "name: test-suite\ndescription: a synthetic run for the report tests\nmodel: tinyworld\n"
        "sampler: {scheduler: default, steps: 25, guidance: 5.0, height: 64, width: 64}\n"
        "methods:\n  - {name: sd}\n  - {name: fairqueue}\n"
        "prompt_sets:\n  - {name: align, dataset: prompts, params: {prompts: [a red circle, two blue stars]}}\n"
    )
    for m in METHODS:
        for i, (pid, prompt) in enumerate([("red-circle", "a red circle"), ("two-stars", "two blue stars")]):
            for idx in range(2):
                _write_image(root, m, "align", pid, idx, 100 * i + idx, prompt)
        for idx in range(2):
            _write_image(root, m, "fair", "Smiling", idx, 500 + idx, "a headshot of a person",
                         {"category": ["not smiling", "smiling"][idx]} if m == "fairqueue" else None)
    if with_aggregates:
        rows = []
        for m, (fd_s, fd_e, fid, cs) in zip(METHODS, [(0.42, 0.55, 31.0, 24.5), (0.05, 0.12, 33.5, 24.1)], strict=True):
            rows += [
                make_row(method=m, prompt_set="fair", metric="fairness", metric_name="fairness", column="fd:Smiling",
                         value=fd_s, n=200, ci=[fd_s - 0.03, fd_s + 0.03], lower_is_better=True),
                make_row(method=m, prompt_set="fair", metric="fairness", metric_name="fairness", column="fd:Eyeglasses",
                         value=fd_e, n=200, ci=[fd_e - 0.04, fd_e + 0.04], lower_is_better=True),
                make_row(method=m, prompt_set="align", metric="fid", metric_name="fid", column="fid", value=fid, n=100,
                         lower_is_better=True),
                make_row(method=m, prompt_set="align", metric="clip_score", metric_name="clip_score", column="clip_score",
                         value=cs, n=100, ci=[cs - 0.2, cs + 0.2], lower_is_better=False),
                make_row(method=m, prompt_set="align", metric="image_reward", metric_name="image_reward",
                         column="image_reward", available=False, reason="ImageReward weights not found"),
            ]
        agg = {"format": "t2ibench-aggregates/1", "run": str(root), "suite": "test-suite", "suite_hash": "abc123def4567890",
               "model": "tinyworld", "t2ibench": "0.1.0", "n_images": 12, "reference": None,
               "metrics": {"fairness": {"name": "fairness", "available": True, "conventions": {"fd": "L2 to uniform"}},
                           "fid": {"name": "fid", "available": True}, "clip_score": {"name": "clip_score", "available": True},
                           "image_reward": {"name": "image_reward", "available": False, "reason": "ImageReward weights not found"}},
               "rows": rows}
        write_aggregates(root, agg)
    (root / "analysis" / "maps").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 80, 3), 200, np.uint8)).save(root / "analysis" / "maps" / "maps-seed0.png")
    return root


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def run_factory():
    return make_run
