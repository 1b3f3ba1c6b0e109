"""Human-checked accuracy and Cohen's kappa of a review, against a textbook example and
scikit-learn's ``cohen_kappa_score``, including the cases where kappa is undefined."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from t2ibench.metrics.review_agreement import KAPPA_UNDEFINED, pooled_accuracy, review_columns
from t2ibench.metrics.vqa_agreement import cohen_kappa


def _sklearn(a, b) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns where kappa is undefined; the value is what is compared
        return float(cohen_kappa_score(np.asarray(a, int), np.asarray(b, int), labels=[0, 1]))


def test_textbook_example():
    """50 items: both yes 20, first yes / second no 5, first no / second yes 10, both no 15:
    p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4."""
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(20))
def test_matches_sklearn_on_random_ratings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    a = rng.random(n) < rng.random()
    b = np.where(rng.random(n) < 0.7, a, rng.random(n) < 0.5)
    mine, ref = cohen_kappa(a, b), _sklearn(a, b)
    assert (math.isnan(mine) and math.isnan(ref)) or mine == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("a, b, expected", [
    ([True] * 5, [True] * 5, "nan"),  # both rate every question right: undefined
    ([False] * 4, [False] * 4, "nan"),  # both rate every question wrong: undefined
    ([True] * 3, [False] * 3, 0.0),  # constant and opposite: p_o = 0 = p_e
    ([True] * 4, [True, True, False, True], 0.0),  # one rater constant: p_o = p_e
    ([True, False], [False, True], -1.0),
    ([True, False, True], [True, False, True], 1.0),
])
def test_degenerate_cases_agree_with_sklearn(a, b, expected):
    mine, ref = cohen_kappa(a, b), _sklearn(a, b)
    if expected == "nan":
        assert math.isnan(mine) and math.isnan(ref)
    else:
        assert mine == pytest.approx(expected) and ref == pytest.approx(expected)


def test_no_ratings_is_undefined_and_mismatched_lengths_are_refused():
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="2 ratings against 3"):
        cohen_kappa([True, False], [True, True, False])


def test_pooled_accuracy_counts_questions_over_images():
    got = pooled_accuracy(["a", "a", "a", "b"], [True, True, False, False], n_boot=200)
    assert got["value"] == pytest.approx(2 / 4) and got["n"] == 2 and got["questions"] == 4
    assert got["ci"] is not None and got["ci"][0] <= got["value"] <= got["ci"][1]
    assert pooled_accuracy(["a"], [True])["ci"] is None
    assert pooled_accuracy([], [])["value"] is None


def test_columns_say_when_kappa_is_undefined():
    cols = review_columns(["a", "b"], ["color", "content"], [True, True], [True, True], n_boot=50)
    assert cols["review-kappa"]["value"] is None and cols["review-kappa"]["note"] == KAPPA_UNDEFINED
    assert cols["review-human:all"]["value"] == 1.0 and cols["review-agreement"]["value"] == 1.0
    cols = review_columns(["a", "a", "b", "b"], ["color", "color", "content", "time"], [True, True, False, False],
                          [True, False, False, False], n_boot=50)
    # p_o = 3/4, p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2: kappa = 1/2
    assert cols["review-kappa"]["value"] == pytest.approx(0.5) and "note" not in cols["review-kappa"]
    assert cols["review-human:all"]["value"] == pytest.approx(0.25) and cols["review-judge:all"]["value"] == 0.5
    assert cols["review-human:color"]["value"] == 0.5 and cols["review-human:time"]["value"] == 0.0
    assert all(e["lower_is_better"] is False for e in cols.values())
