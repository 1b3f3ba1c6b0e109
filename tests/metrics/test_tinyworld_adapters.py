"""The tinyworld adapters on random stand-in weights saved in the shipped formats (T2IBENCH_WORLD_WEIGHTS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from t2ibench.metrics.common import NotAvailable


@pytest.fixture
def world_weights(tmp_path, monkeypatch):
    from transformers import CLIPModel

    from t2ibench.tokenizer import write_clip_tokenizer_files
    from t2ibench.world.evaluator import EvaluatorNet, save_evaluator
    from t2ibench.world.models import clip_config

    torch.manual_seed(0)
    CLIPModel(clip_config("tiny")).save_pretrained(str(tmp_path / "clip"))
    write_clip_tokenizer_files(tmp_path / "clip")
    save_evaluator(EvaluatorNet(width=8).eval(), tmp_path / "evaluator")
    monkeypatch.setenv("T2IBENCH_WORLD_WEIGHTS", str(tmp_path))
    return tmp_path


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def test_missing_weights_not_available(tmp_path, monkeypatch):
    from t2ibench.metrics.tinyworld import tiny_alignment_judge, tiny_clip_backend, tiny_evaluator_classifier

    monkeypatch.setenv("T2IBENCH_WORLD_WEIGHTS", str(tmp_path / "none"))
    for fn in (tiny_clip_backend, tiny_evaluator_classifier, tiny_alignment_judge):
        with pytest.raises(NotAvailable, match="tinyworld"):
            fn()


def test_tiny_clip_backend_and_features(world_weights):
    from transformers import CLIPModel

    from t2ibench.metrics.clip_score import CLIPScoreScorer
    from t2ibench.metrics.tinyworld import tiny_clip_image_features
    from t2ibench.world.data import clip_normalize

    images = _faces(3)
    s = CLIPScoreScorer(backend="tinyworld")
    s.check_available()
    vals = s.score(images, [{"prompt": "a headshot of a person"}] * 3)
    model = CLIPModel.from_pretrained(str(world_weights / "clip")).eval()
    from t2ibench.tokenizer import clip_tokenizer

    enc = clip_tokenizer()(["a headshot of a person"] * 3, padding=True, return_tensors="pt")
    px = clip_normalize(torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
    cos = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)
    assert np.allclose([v["score"] for v in vals], (100 * cos).numpy(), atol=1e-4)
    net = tiny_clip_image_features()
    assert net.image_size == 64 and net.num_features == model.config.projection_dim
    x01 = torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).float() / 255
    feats = net(x01)  # projected, not normalised (CLIPModel's image_embeds are normalised)
    assert torch.allclose(feats / feats.norm(dim=-1, keepdim=True), out.image_embeds, atol=1e-5)


def test_evaluator_classifier_and_judge(world_weights):
    from t2ibench.metrics.alignment import AlignmentScorer
    from t2ibench.metrics.fairness import FairnessScorer
    from t2ibench.world.evaluator import check_prompt, load_evaluator
    from t2ibench.world.prompts import fairness_meta

    images = _faces(4, seed=1)
    meta = fairness_meta("smiling")
    s = FairnessScorer(classifier="tinyworld-evaluator", references="t2ibench.metrics.tinyworld:tsa_references",
                       reference_params={"n": 3}, bootstrap=50)
    metas = [{"prompt_meta": meta, "prompt_id": "smiling"}] * 4
    vals = s.score(images, metas)
    ev = load_evaluator()
    direct = ev.predict(images)["probs"]["smiling"]
    assert [v["pred"] for v in vals] == direct.argmax(-1).tolist()
    agg = s.aggregate(vals, metas)
    assert 0.0 <= agg["fd:smiling"]["classifier_accuracy"] <= 1.0
    judge_scorer = AlignmentScorer(judge="tinyworld", bootstrap=50)
    labels = {"family": "objects", "objects": [{"shape": "circle", "color": "red"}]}
    got = judge_scorer.score(images, [{"prompt_meta": {"category": "color", "labels": labels}}] * 4)
    preds = ev.unbatch(ev.predict(images))
    assert [g["correct"] for g in got] == [float(check_prompt(labels, p)["correct"]) for p in preds]
