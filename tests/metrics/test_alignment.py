"""Alignment accuracy per category against hand-computed values, with a stand-in judge."""

from __future__ import annotations

import pytest
import torch

from t2ibench.metrics.alignment import AlignmentAccuracy, AlignmentScorer, alignment_accuracy

from _helpers.clip import random_images


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


def test_per_check_rates_pool_the_images_each_check_applies_to():
    def judge(images, prompt_metas):
        return [{"correct": float(all(pm["checks"].values())), "checks": pm["checks"]} for pm in prompt_metas]

    checks = [{"objects": False, "colors": True}, {"objects": True, "colors": True},
              {"objects": False, "colors": False, "count": False}]
    metas = [{"prompt_meta": {"category": c, "labels": {}, "checks": ch}} for c, ch in zip(("color", "binding", "count"), checks, strict=True)]
    s = AlignmentScorer(_judge=judge, bootstrap=100)
    agg = s.aggregate(s.score(random_images(3), metas), metas)
    assert agg["check:objects"]["value"] == pytest.approx(1 / 3) and agg["check:objects"]["n"] == 3
    assert agg["check:colors"]["value"] == pytest.approx(2 / 3)
    assert agg["check:count"]["value"] == 0.0 and agg["check:count"]["n"] == 1
    assert agg["accuracy:all"]["value"] == pytest.approx(1 / 3)


def test_tinyworld_colors_check_ignores_shape_and_catches_leakage():
    from t2ibench.world.evaluator import check_prompt

    want = {"family": "objects", "objects": [{"shape": "circle", "color": "green"}, {"shape": "triangle", "color": "blue"}]}

    def pred(*objs):
        return {"family": "objects", "background": "day", "count": len(objs),
                "objects": [{"shape": s, "color": c, "texture": "plain", "row": 0, "col": i} for i, (s, c) in enumerate(objs)]}

    right_colours = check_prompt(want, pred(("square", "green"), ("square", "blue")))
    assert right_colours["checks"] == {"family": True, "objects": False, "colors": True} and not right_colours["correct"]
    leaked = check_prompt(want, pred(("circle", "green"), ("triangle", "green")))
    assert leaked["checks"]["colors"] is False
    assert check_prompt(want, pred(("circle", "green"), ("triangle", "blue")))["correct"]


@pytest.mark.parametrize("spec", ["json:loads", "math:pi", "builtins:dict"])
def test_a_judge_that_is_not_a_judge_factory_is_one_line(spec):
    """json:loads needs an argument, math:pi is no callable, dict() builds a non-callable: a UserError each, not a traceback."""
    from t2ibench.errors import UserError

    with pytest.raises(UserError, match="alignment judge"):
        AlignmentScorer(judge=spec).check_available()

