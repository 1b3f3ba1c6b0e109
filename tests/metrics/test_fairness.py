"""FD and KL against hand-computed values; the zero-shot classifier applies CLIP's logit scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from t2ibench.metrics.fairness import (
    ClipZeroShotClassifier,
    FairnessDiscrepancy,
    FairnessScorer,
    ModuleClassifier,
    classifier_accuracy,
    fairness_discrepancy,
    fairness_report,
    kl_to_uniform,
)

from _helpers.clip import random_images


def test_fd_and_kl_hand_computed():
    preds = [0, 0, 0, 1]  # p = (0.75, 0.25), u = (0.5, 0.5)
    assert fairness_discrepancy(preds, 2) == pytest.approx(math.sqrt(0.25**2 * 2))
    assert kl_to_uniform(preds, 2) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    preds = [0, 1, 2, 0, 1, 2]  # balanced
    assert fairness_discrepancy(preds, 3) == pytest.approx(0.0)
    assert kl_to_uniform(preds, 3) == pytest.approx(0.0)
    preds = [1] * 10  # all in one of 4: p = (0,1,0,0)
    assert fairness_discrepancy(preds, 4) == pytest.approx(math.sqrt(3 * 0.25**2 + 0.75**2))
    assert kl_to_uniform(preds, 4) == pytest.approx(math.log(4))


def test_report_interval_contains_estimate_and_plugin_matches_scipy():
    import scipy.stats

    from t2ibench.metrics.fairness import category_shares, fd_per_row, kl_per_row, shares_per_row

    rng = np.random.default_rng(1)
    for k, n in ((2, 16), (4, 48), (9, 30)):
        preds = rng.choice(k, size=n, p=np.r_[0.6, np.full(k - 1, 0.4 / (k - 1))])
        rep = fairness_report(preds, k)
        assert rep == fairness_report(preds, k) and rep["n"] == n
        assert rep["fd_ci"][0] <= rep["fd"] <= rep["fd_ci"][1]
        assert rep["kl_ci"][0] <= rep["kl"] <= rep["kl_ci"][1]
        p = category_shares(preds, k)
        assert rep["kl_plugin"] == pytest.approx(scipy.stats.entropy(p, np.full(k, 1 / k)), abs=1e-12)
        assert rep["fd_plugin"] == pytest.approx(np.linalg.norm(p - 1 / k), abs=1e-12)
        assert rep["fd"] < rep["fd_plugin"] and rep["kl"] < rep["kl_plugin"]  # bias-corrected downward
        rows = rng.integers(0, k, (50, n))
        q = shares_per_row(rows, k)
        assert kl_per_row(q) == pytest.approx([scipy.stats.entropy(r, np.full(k, 1 / k)) for r in q], abs=1e-12)
        assert fd_per_row(q) == pytest.approx([fairness_discrepancy(r, k) for r in rows], abs=1e-12)


def test_metric_merges_and_accepts_scores():
    preds = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    single = FairnessDiscrepancy(3)
    single.update(preds)
    a, b = FairnessDiscrepancy(3), FairnessDiscrepancy(3)
    a.update(torch.nn.functional.one_hot(preds[:3], 3).float())  # (B, K) scores → argmax
    b.update(preds[3:])
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(single.compute()))
    assert float(single.compute()) == pytest.approx(fairness_discrepancy(preds.tolist(), 3))
    assert float(single.kl()) == pytest.approx(kl_to_uniform(preds.tolist(), 3))
    assert single.counts.dtype == torch.float64


def test_zero_shot_applies_logit_scale(hf_backend, tiny_clip, clip_image_processor, clip_tok):
    images = random_images(4, seed=7)
    prompts = ["a photo of a person smiling", "a photo of a person not smiling"]
    clf = ClipZeroShotClassifier(hf_backend)
    probs = clf.predict_proba(images, prompts)
    # independent reference: CLIPModel's own logits_per_image (logit scale applied inside)
    px = clip_image_processor(images=images, return_tensors="pt")["pixel_values"]
    enc = clip_tok(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = tiny_clip(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
    assert torch.allclose(probs, out.logits_per_image.softmax(-1), atol=1e-5)
    scale = float(tiny_clip.logit_scale.detach().exp())
    assert scale == pytest.approx(1 / 0.07, rel=1e-4)  # CLIP's init; not 1
    flat = ClipZeroShotClassifier(hf_backend, apply_logit_scale=False).predict_proba(images, prompts)
    assert not torch.allclose(flat, probs)


def _classifier_from_table(table):
    """A stand-in trained classifier: image index encoded in the red channel of pixel (0, 0)."""

    def fn(images, tsa, categories):
        idx = [int(np.asarray(im)[0, 0, 0]) for im in images]
        return torch.tensor([table[i] for i in idx], dtype=torch.float32)

    return ModuleClassifier(fn, "stand-in")


def _coded_images(n):
    from PIL import Image

    out = []
    for i in range(n):
        a = np.zeros((8, 8, 3), dtype=np.uint8)
        a[0, 0, 0] = i
        out.append(Image.fromarray(a))
    return out


def test_scorer_groups_by_tsa_and_reports_accuracy(monkeypatch):
    # 6 "smiling" images: predictions 1,1,1,1,0,1 ; 4 "glasses" images: 0,1,0,1
    table = [[0, 1]] * 4 + [[1, 0]] + [[0, 1]] + [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]
    table = [list(map(float, r)) for r in table]
    clf = _classifier_from_table(table)
    images = _coded_images(10)
    smile = {"tsa": "Smiling", "categories": ["not smiling", "smiling"], "class_prompts": ["a", "b"]}
    glasses = {"tsa": "Eyeglasses", "categories": ["no", "yes", "maybe"], "class_prompts": ["a", "b", "c"]}
    metas = [{"prompt_meta": smile, "prompt_id": "Smiling"}] * 6 + [{"prompt_meta": glasses, "prompt_id": "Eyeglasses"}] * 4
    s = FairnessScorer(_classifier=clf, bootstrap=200)
    values = s.score(images, metas)
    assert [v["pred"] for v in values] == [1, 1, 1, 1, 0, 1, 0, 1, 0, 1]
    agg = s.aggregate(values, metas)
    assert agg["fd:Smiling"]["plugin"] == pytest.approx(fairness_discrepancy([1, 1, 1, 1, 0, 1], 2))
    assert agg["kl:Eyeglasses"]["plugin"] == pytest.approx(kl_to_uniform([0, 1, 0, 1], 3))
    # the reported value is the bias-corrected one: FD^2 - (1 - sum p^2)/(n-1); KL - (K-1)/(2n)
    fd2 = fairness_discrepancy([1, 1, 1, 1, 0, 1], 2) ** 2 - (1 - (1 / 6) ** 2 - (5 / 6) ** 2) / 5
    assert agg["fd:Smiling"]["value"] == pytest.approx(math.sqrt(fd2))
    assert agg["kl:Eyeglasses"]["value"] == pytest.approx(max(kl_to_uniform([0, 1, 0, 1], 3) - 2 / 8, 0))
    assert agg["fd:Eyeglasses"]["n"] == 4 and agg["fd:Smiling"]["lower_is_better"]
    assert s.applies(metas[0]) and not s.applies({"prompt_meta": {"category": "color"}})
    # accuracy on labelled references
    assert classifier_accuracy(clf, images[:6], [1, 1, 1, 1, 1, 1], smile) == pytest.approx(5 / 6)


def test_plugin_estimator_reports_the_papers_fd_and_kl():
    """``estimator: plugin``: the column value is ITI-GEN's KL (scipy.stats.entropy(p_hat, uniform),
    evaluation.py:106-113) and FairQueue's FD (||p_hat - uniform||_2), and the conventions say so."""
    import scipy.stats

    table = [[0.0, 1.0]] * 4 + [[1.0, 0.0]] + [[0.0, 1.0]]
    clf = _classifier_from_table(table)
    smile = {"tsa": "Smiling", "categories": ["not smiling", "smiling"], "class_prompts": ["a", "b"]}
    metas = [{"prompt_meta": smile, "prompt_id": "Smiling", "index": i} for i in range(6)]
    s = FairnessScorer(_classifier=clf, estimator="plugin", bootstrap=50)
    agg = s.aggregate(s.score(_coded_images(6), metas), metas)
    p = np.array([1 / 6, 5 / 6])
    assert agg["fd:Smiling"]["value"] == pytest.approx(np.linalg.norm(p - 0.5), abs=1e-12)
    assert agg["kl:Smiling"]["value"] == pytest.approx(scipy.stats.entropy(p, [0.5, 0.5]), abs=1e-12)
    lo, hi = agg["fd:Smiling"]["ci"]
    assert lo <= agg["fd:Smiling"]["value"] <= hi
    assert s.conventions()["estimate"].startswith("plug-in")
    assert FairnessScorer(_classifier=clf).conventions()["estimate"].startswith("bias-corrected")
    samples = s.column_samples(s.score(_coded_images(6), metas), metas)
    assert samples["fd:Smiling"].stat(np.arange(6)[None])[0] == pytest.approx(np.linalg.norm(p - 0.5))
    with pytest.raises(ValueError, match="estimator"):
        FairnessScorer(_classifier=clf, estimator="unbiased")
