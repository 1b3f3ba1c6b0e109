"""Alignment accuracy per category against hand-computed values, with a stand-in judge."""

from __future__ import annotations

import pytest
import torch

from t2ibench.metrics.alignment import AlignmentAccuracy, AlignmentScorer, alignment_accuracy

from .conftest import random_images


def test_functional_and_metric_hand_computed():
    correct = [1, 0, 1, 1, 0, 1]
    cats = ["color", "color", "count", "count", "count", "texture"]
    acc = alignment_accuracy(correct, cats)
    assert acc == {"color": 0.5, "count": pytest.approx(2 / 3), "texture": 1.0, "all": pytest.approx(4 / 6)}
    names = ["color", "count", "texture"]
    m = AlignmentAccuracy(names)
    m.update(torch.tensor(correct[:3]), torch.tensor([names.index(c) for c in cats[:3]]))
    other = AlignmentAccuracy(names)
    other.update(torch.tensor(correct[3:]), torch.tensor([names.index(c) for c in cats[3:]]))
    m.merge_state(other)
    assert torch.allclose(m.compute(), torch.tensor([0.5, 2 / 3, 1.0], dtype=torch.float64))


def test_scorer_with_stand_in_judge():
    calls = []

    def judge(images, prompt_metas):
        calls.append(len(images))
        return [1.0 if pm["labels"]["ok"] else 0.0 for pm in prompt_metas]

    metas = [{"prompt_meta": {"category": c, "labels": {"ok": ok}}} for c, ok in
             [("color", True), ("color", False), ("count", True), ("binding", False)]]
    s = AlignmentScorer(_judge=judge, bootstrap=100)
    values = s.score(random_images(4), metas)
    agg = s.aggregate(values, metas)
    assert agg["accuracy:color"]["value"] == 0.5 and agg["accuracy:color"]["n"] == 2
    assert agg["accuracy:all"]["value"] == 0.5 and agg["accuracy:binding"]["value"] == 0.0
    assert s.applies(metas[0])
    assert not s.applies({"prompt_meta": {"tsa": "x", "categories": ["a", "b"], "labels": {}}})
