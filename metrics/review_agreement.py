"""A person's review of a judge's verdicts: the human-checked accuracy and the judge's agreement with it.

Both raters give one binary verdict per question (right = the image shows what the question
expects). Conventions:

- :func:`pooled_accuracy`: right verdicts / reviewed questions, pooled over the images, with a
  95 % percentile bootstrap interval over images (the ``vqa:<category>`` columns' statistic);
- ``review-kappa``: Cohen's kappa (Cohen 1960, ``t2ibench.metrics.vqa_agreement.cohen_kappa``), (p_o - p_e) / (1 - p_e), p_o the share of
  questions where the two agree, p_e the agreement expected from each rater's own share of
  "right". It is **undefined (NaN)** without questions or when p_e = 1, i.e. both raters give
  every question one and the same verdict: there is no disagreement to measure beyond chance
  (``sklearn.metrics.cohen_kappa_score`` gives NaN there too).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from t2ibench.metrics.common import bootstrap_ci
from t2ibench.metrics.vqa_agreement import cohen_kappa

KAPPA_UNDEFINED = "kappa undefined: every reviewed question got one and the same verdict from both raters"


def pooled_accuracy(images: Sequence[str], right: Sequence[bool], n_boot: int = 1000) -> dict[str, Any]:
    """Σ right / Σ questions over the questions of ``images`` (one image key per question):
    ``{"value", "n" (images), "questions", "ci"}``; ``ci`` is a bootstrap over images (None under 2)."""
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for image, ok in zip(images, right, strict=True):
        per[image][0] += float(ok)
        per[image][1] += 1.0
    pairs = np.asarray(list(per.values()), dtype=np.float64).reshape(-1, 2)
    if not len(pairs):
        return {"value": None, "n": 0, "questions": 0, "ci": None}
    lo, hi = bootstrap_ci(pairs, lambda r: r[..., 0].sum(-1) / np.maximum(r[..., 1].sum(-1), 1e-12),
                          n_boot=n_boot, vectorized=True)
    return {"value": float(pairs[:, 0].sum() / pairs[:, 1].sum()), "n": len(pairs), "questions": int(pairs[:, 1].sum()),
            "ci": [lo, hi] if len(pairs) > 1 else None}


def review_columns(images: Sequence[str], categories: Sequence[str], judge: Sequence[bool], human: Sequence[bool],
                   n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """The review's columns for one group of reviewed questions (one entry per question in each
    argument): ``review-human:all`` and ``review-human:<category>`` (the human-checked accuracy),
    ``review-judge:all`` (the judge's accuracy on the same questions), ``review-agreement`` (share
    of equal verdicts) and ``review-kappa`` (value None and a ``note`` when undefined)."""
    out = {"review-human:all": pooled_accuracy(images, human, n_boot),
           "review-judge:all": pooled_accuracy(images, judge, n_boot)}
    for cat in sorted(set(categories)):
        idx = [i for i, c in enumerate(categories) if c == cat]
        out[f"review-human:{cat}"] = pooled_accuracy([images[i] for i in idx], [human[i] for i in idx], n_boot)
    n_questions = len(human)
    agree = float(np.mean(np.asarray(judge, dtype=bool) == np.asarray(human, dtype=bool))) if n_questions else None
    out["review-agreement"] = {"value": agree, "n": len(set(images)), "questions": n_questions, "ci": None}
    kappa = cohen_kappa(judge, human)
    out["review-kappa"] = {"value": None if np.isnan(kappa) else kappa, "n": len(set(images)), "questions": n_questions,
                           "ci": None}
    if np.isnan(kappa):
        out["review-kappa"]["note"] = KAPPA_UNDEFINED if n_questions else "no reviewed questions"
    for entry in out.values():
        entry["lower_is_better"] = False
    return out
