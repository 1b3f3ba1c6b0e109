"""Scorers run their networks on the device the scoring driver gives them (``Scorer.to``), without a GPU:
every shipped scorer on the tinyworld models, moved to ``meta``, must run its networks' forward passes
with every input on ``meta`` (``MixedDevices`` records any op that mixes devices) and fail only where
it copies its values back to the host, which a meta tensor cannot do. On the code before
``Scorer.to`` the inputs stayed on the CPU (a mixed-device op on CUDA, here a recorded one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._pytree import tree_leaves

from t2ibench.metrics.alignment import AlignmentScorer
from t2ibench.metrics.clip_score import CLIPScoreScorer
from t2ibench.metrics.fairness import FairnessScorer
from t2ibench.metrics.frechet import FIDScorer
from t2ibench.metrics.text_alignment import TextAlignmentScorer
from t2ibench.metrics.vqa_alignment import VQAAlignmentScorer
from t2ibench.world.prompts import fairness_meta

from _helpers.cli import run_cli
from _helpers.devices import MixedDevices

FAIR = [{"prompt_meta": fairness_meta("smiling"), "prompt_id": "smiling", "prompt": "a headshot of a person"}] * 3
LABELS = {"family": "objects", "objects": [{"shape": "circle", "color": "red"}]}
CASES = {
    "clip_score": (lambda: CLIPScoreScorer(backend="tinyworld"), [{"prompt": "a red circle"}] * 3),
    "ta": (lambda: TextAlignmentScorer(backend="tinyworld"), FAIR),
    "fairness-clip": (lambda: FairnessScorer(classifier="clip", backend="tinyworld"), FAIR),
    "fairness-evaluator": (lambda: FairnessScorer(classifier="tinyworld-evaluator"), FAIR),
    "fid": (lambda: FIDScorer(network="tinyworld-clip", reference="t2ibench.metrics.tinyworld:heldout_references"), [{}] * 3),
    "alignment": (lambda: AlignmentScorer(judge="tinyworld"), [{"prompt_meta": {"category": "color", "labels": LABELS}}] * 3),
    "vqa_alignment": (lambda: VQAAlignmentScorer(vqa="tinyworld"), [{"prompt": "a red circle"}] * 3),
}


def _images(n: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def _modules(obj: Any, depth: int = 0) -> list[torch.nn.Module]:
    """The torch modules a network holder (backend, classifier, judge) keeps, a few attributes deep."""
    if isinstance(obj, torch.nn.Module):
        return [obj]
    if depth >= 3 or not hasattr(obj, "__dict__"):
        return []
    return [m for v in vars(obj).values() for m in _modules(v, depth + 1)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_scorer_networks_run_on_its_device(case):
    make, metas = CASES[case]
    scorer = make()
    scorer.check_available()  # loads its networks (on the CPU)
    modules = [m for net in scorer.placed_networks() for m in _modules(net)]
    assert modules, "the scorer holds no torch module to place"
    assert scorer.to("meta") is scorer and scorer.device == torch.device("meta")
    assert all(p.device.type == "meta" for m in modules for p in m.parameters())
    input_devices: list[set[str]] = []

    def record(module, args, kwargs):
        input_devices.append({t.device.type for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)})

    hooks = [sub.register_forward_pre_hook(record, with_kwargs=True) for m in modules for sub in m.modules()]
    try:
        with MixedDevices() as mode, pytest.raises(NotImplementedError, match="meta"):
            scorer.score(_images(len(metas)), metas)  # the copy of the values to the host is all that fails
    finally:
        for h in hooks:
            h.remove()
    assert not mode.mixed, mode.mixed[:5]
    assert input_devices and all(d <= {"meta"} for d in input_devices), input_devices


def test_scorer_on_the_cpu_gives_the_values_of_the_default_placement():
    images = _images(3)
    default, placed = CLIPScoreScorer(backend="tinyworld"), CLIPScoreScorer(backend="tinyworld")
    placed.check_available()
    placed.to("cpu")
    metas = [{"prompt": "a red circle"}] * 3
    assert placed.score(images, metas) == default.score(images, metas)


@pytest.mark.parametrize("device, words", [("bogus", "not a torch device"), ("cuda", "CUDA is not available"),
                                           ("meta", "without data")])
def test_unusable_score_device_is_one_line(tmp_path, capsys, device, words):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: dev\nmodel: tiny-sd\nimages_per_prompt: 1\nsampler: {steps: 1, height: 32, width: 32}\n"
                     "prompt_sets:\n  - {name: p, dataset: prompts, params: {prompts: [a red circle]}}\n"
                     "methods:\n  - name: sd\nmetrics:\n  - {name: clip_score, params: {backend: tinyworld}}\n")
    assert run_cli("generate", suite, "--out", tmp_path / "new", "--quiet", "--device", device) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "new").exists()
    assert run_cli("generate", suite, "--out", tmp_path / "run", "--quiet", "--device", "cpu") == 0
    capsys.readouterr()
    assert run_cli("score", tmp_path / "run", "--quiet", "--device", device) == 2
    err = capsys.readouterr().err
    assert words in err and "--device" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "scores").exists()
