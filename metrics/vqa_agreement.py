"""Agreement between two per-image judgements of the same images (question pipeline vs the shipped
``alignment`` scorer on tinyworld; a judge vs a person's review).

- :func:`cohen_kappa`: Cohen's kappa of two binary ratings, (p_o - p_e) / (1 - p_e) with p_e from
  the two raters' marginals (Cohen 1960); 1.0 when both raters are constant and equal.
- :func:`agreement_table`: per group (e.g. a tinyworld prompt category), the share of images each
  judge calls right, their difference with a 95 % paired bootstrap interval over images, the
  share of images where they agree, and kappa.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from t2ibench.metrics.common import bootstrap_ci


def cohen_kappa(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> float:
    """Cohen's kappa of two binary ratings of the same items; NaN when undefined: without items, or
    when p_e = 1 (both raters give every item one and the same rating: no disagreement to measure
    beyond chance; ``sklearn.metrics.cohen_kappa_score`` gives NaN there too)."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} ratings against {y.size}; expected two ratings of the same items")
    if x.size == 0:
        return float("nan")
    po = float(np.mean(x == y))
    pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return float("nan") if pe == 1.0 else (po - pe) / (1 - pe)


def agreement_table(groups: Sequence[str], first: Sequence[bool], second: Sequence[bool], n_boot: int = 1000
                    ) -> list[dict[str, Any]]:
    """One row per group (sorted) and ``"all"``: n, first, second (shares right), difference
    (second - first) with ``ci``, agreement (share of equal calls) and kappa."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by[str(g)].append(i)
    by_all = {**{g: by[g] for g in sorted(by)}, "all": list(range(len(groups)))}
    x, y = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    rows = []
    for g, idx in by_all.items():
        pairs = np.stack([x[idx], y[idx]], axis=1)
        lo, hi = bootstrap_ci(pairs, lambda r: r[..., 1].mean(-1) - r[..., 0].mean(-1), n_boot=n_boot, vectorized=True)
        rows.append({"group": g, "n": len(idx), "first": float(x[idx].mean()), "second": float(y[idx].mean()),
                     "difference": float(y[idx].mean() - x[idx].mean()), "ci": [lo, hi],
                     "agreement": float(np.mean(x[idx] == y[idx])),
                     "kappa": cohen_kappa(x[idx].astype(bool), y[idx].astype(bool))})
    return rows
