"""The torchmetrics-style Metric API the scorers are built on: precomputed-value updates behave like
``update`` (a later ``compute()`` sees them), shards merge, and each scorer's column value is its
Metric's ``compute()``, checked against values computed independently here (numpy, by hand)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from t2ibench.metrics.alignment import AlignmentAccuracy, AlignmentScorer
from t2ibench.metrics.clip_score import CLIPScore, CLIPScoreScorer
from t2ibench.metrics.fairness import FairnessDiscrepancy, FairnessScorer
from t2ibench.metrics.frechet import FIDScorer, FrechetDistance
from t2ibench.metrics.image_reward import ImageReward, ImageRewardScorer


class _Features(torch.nn.Module):
    num_features = 4
    image_size = 8
    name = "stand-in"

    def forward(self, x):  # pragma: no cover - the tests feed features
        raise AssertionError("features are precomputed here")


def _gauss(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + shift


def _hand_fd(f1, f2):
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), with tr √(Σ₁Σ₂) = Σ √eig(Σ₁Σ₂) (numpy, no scipy.linalg.sqrtm)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    tr = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr)


@pytest.mark.parametrize("name", ["update_features", "update_sums"])
def test_frechet_precomputed_updates_after_compute_are_seen(name):
    real, fake = _gauss(30, 4, 0), _gauss(20, 4, 1, shift=0.5)
    m = FrechetDistance(_Features())
    m.update_features(torch.from_numpy(real), real=True)
    m.update_features(torch.from_numpy(fake[:10]), real=False)
    first = float(m.compute())
    rest = torch.from_numpy(fake[10:])
    if name == "update_features":
        m.update_features(rest, real=False)
    else:
        m.update_sums(rest.sum(0), rest.T @ rest, len(rest), real=False)
    assert float(m.compute()) != first
    assert float(m.compute()) == pytest.approx(_hand_fd(real, fake), rel=1e-9)


def test_fid_scorer_value_equals_the_metric_on_cached_features():
    real, fake = _gauss(40, 4, 2), _gauss(25, 4, 3, shift=0.3)
    s = FIDScorer(network=_Features(), reference="stand-in", bootstrap=20)
    s._network = s.network_spec
    s._ref_sums = (real.sum(0), real.T @ real, len(real))
    entry = s.aggregate(list(fake), [{}] * len(fake))["fid"]
    m = FrechetDistance(_Features())
    m.update_sums(*s._ref_sums, real=True)
    m.update_features(torch.from_numpy(fake), real=False)
    assert entry["value"] == pytest.approx(float(m.compute()), rel=1e-9)
    assert entry["value"] == pytest.approx(_hand_fd(real, fake), rel=1e-9)
    assert entry["n"] == 25 and entry["n_reference"] == 40 and entry["ci"][0] <= entry["value"] <= entry["ci"][1]


def test_clip_score_metric_from_scores_merges_and_matches_the_scorer():
    scores = np.array([31.5, -4.0, 12.25, 7.0, -30.0])
    a, b = CLIPScore(clamp="per-image"), CLIPScore(clamp="per-image")
    a.update_scores(scores[:2], [True, False])
    b.update_cosines(scores[2:] / 100.0)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(np.clip(scores, 0, None).mean(), rel=1e-12)
    assert int(a.n_truncated) == 1
    values = [{"score": float(x), "truncated": False} for x in scores]
    for clamp, expect in (("mean", max(scores.mean(), 0.0)), ("per-image", np.clip(scores, 0, None).mean())):
        entry = CLIPScoreScorer(clamp=clamp, _backend=object()).aggregate(values, [{}] * 5)["clip_score"]
        assert entry["value"] == pytest.approx(expect, rel=1e-12) and entry["n"] == 5
    all_negative = [{"score": -5.0, "truncated": False}] * 3
    assert CLIPScoreScorer(_backend=object()).aggregate(all_negative, [{}] * 3)["clip_score"]["value"] == 0.0


def test_image_reward_metric_from_scores_merges_and_matches_the_scorer():
    rewards = [0.5, -1.25, 2.0, 0.125]
    a, b = ImageReward(), ImageReward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compute after update_scores is a counted update
        a.update_scores(rewards[:1])
        b.update_scores(torch.tensor(rewards[1:]))
        a.merge_state(b)
        assert float(a.compute()) == pytest.approx(np.mean(rewards), rel=1e-12)
    assert float(a.total_sq) == pytest.approx(sum(r * r for r in rewards))
    entry = ImageRewardScorer().aggregate(rewards, [{}] * 4)["image_reward"]
    assert entry["value"] == pytest.approx(np.mean(rewards), rel=1e-12) and entry["n"] == 4
    with pytest.raises(ValueError, match="update_scores"):
        ImageReward().update([], [])


def test_alignment_pooled_accuracy_and_scorer_columns_hand_computed():
    m = AlignmentAccuracy(["a", "b"])
    m.update(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0, 1, 1]))
    assert float(m.compute_all()) == pytest.approx(1.5 / 3)
    metas = [{"prompt_meta": {"category": c}} for c in ("b", "a", "b", "b")]
    values = [{"correct": 1.0, "checks": {"count": True}}, {"correct": 0.5, "checks": {"count": False, "color": True}},
              {"correct": 0.0}, {"correct": 1.0, "checks": {"color": False}}]
    out = AlignmentScorer(_judge=object(), bootstrap=50).aggregate(values, metas)
    assert out["accuracy:a"]["value"] == 0.5 and out["accuracy:b"]["value"] == pytest.approx(2 / 3)
    assert out["accuracy:all"]["value"] == pytest.approx(2.5 / 4) and out["accuracy:all"]["n"] == 4
    assert out["check:count"]["value"] == 0.5 and out["check:color"]["value"] == 0.5 and out["check:color"]["n"] == 2


def test_fairness_metric_corrected_estimator_hand_computed():
    preds = [0, 0, 0, 1, 1, 2]  # n = 6, K = 3, p = (1/2, 1/3, 1/6)
    p = np.array([3, 2, 1]) / 6
    fd2 = ((p - 1 / 3) ** 2).sum() - (1 - (p**2).sum()) / 5
    kl = float((p * np.log(3 * p)).sum())
    m = FairnessDiscrepancy(3, estimator="corrected")
    m.update(torch.tensor(preds[:2]))
    other = FairnessDiscrepancy(3, estimator="corrected")
    other.update(torch.tensor(preds[2:]))
    m.merge_state(other)
    assert float(m.compute()) == pytest.approx(math.sqrt(max(fd2, 0.0)), rel=1e-12)
    assert float(m.kl()) == pytest.approx(max(kl - 2 / 12, 0.0), rel=1e-12)
    plugin = FairnessDiscrepancy(3)
    plugin.update(torch.tensor(preds))
    assert float(plugin.compute()) == pytest.approx(np.linalg.norm(p - 1 / 3), rel=1e-12)
    assert float(plugin.kl()) == pytest.approx(kl, rel=1e-12)
    one = FairnessDiscrepancy(3, estimator="corrected")  # one image: nothing to correct, the plug-in
    one.update(torch.tensor([2]))
    assert float(one.kl()) == pytest.approx(math.log(3))


@pytest.mark.parametrize("estimator", ["corrected", "plugin"])
def test_fairness_scorer_value_is_the_metric_inside_its_interval(estimator):
    rng = np.random.default_rng(4)
    preds = rng.choice(3, size=40, p=[0.6, 0.3, 0.1])
    pm = {"tsa": "age", "categories": ["x", "y", "z"]}
    metas = [{"prompt_meta": pm}] * len(preds)
    out = FairnessScorer(_classifier=object(), estimator=estimator).aggregate([{"pred": int(x)} for x in preds], metas)
    m = FairnessDiscrepancy(3, estimator=estimator)
    m.update(torch.tensor(preds))
    for col, value in (("fd:age", float(m.compute())), ("kl:age", float(m.kl()))):
        assert out[col]["value"] == value
        assert out[col]["ci"][0] <= value <= out[col]["ci"][1]
