"""Paired deltas: each method's value minus the reference method's, on the images both share.

Methods of one suite see the same (prompt, seed) pairs (the seed is derived from the prompt set,
prompt id and image index), so a difference is far better measured on pairs than from two
separate intervals. For a column (e.g. ``fd:smiling``), the pairs are the (prompt id, image
index) keys present in both methods' samples of that column; one set of B resamples of those
pairs (with replacement, seed 0) is applied to both methods, and the column's statistic
(:class:`t2ibench.metrics.common.ColumnSample`: a mean, the bias-corrected FD/KL, a Fréchet
distance against the fixed reference) is computed on each. The 95 % interval:

- ``percentile`` (means, Fréchet distance): the percentile interval of the B differences.
- ``mover`` (columns with their own covering interval: FD and KL): near a uniform distribution
  the bootstrap of a bias-corrected FD is centred on the plug-in, not on the truth, and the
  percentile interval of "fair method − biased reference" covered 0.80-0.89 (K 4 and 9). There
  the two columns' own intervals on the shared images (which cover, see
  ``t2ibench.metrics.fairness_intervals``) are combined by MOVER, the method of variance
  estimates recovery (Zou & Donner 2008, Stat. Med. 27:1693; Newcombe 1998 for the difference of
  proportions): with θ̂ = θ̂₁ − θ̂₂ and intervals [l₁, u₁], [l₂, u₂],
  L = θ̂ − √((θ̂₁−l₁)² + (u₂−θ̂₂)² − 2ρ(θ̂₁−l₁)(u₂−θ̂₂)),
  U = θ̂ + √((u₁−θ̂₁)² + (θ̂₂−l₂)² − 2ρ(u₁−θ̂₁)(θ̂₂−l₂)),
  ρ the correlation of the two statistics over the paired resamples (clipped to [0, 1]: a
  negative estimate only widens the interval). One change for a statistic bounded below by 0:
  where a column's own interval reaches 0 (a sample as balanced as chance allows), its error
  has one sign only, and on the side it moves the two distances are added, not combined in
  quadrature (plain MOVER covered 0.87 there). Coverage by seeded simulation (at least 0.93
  wherever the method is fair, 0.91 elsewhere):
  tests/results/test_delta_coverage.py.

A delta is *significant* when its interval excludes 0; its verdict is ``better``/``worse`` by the
column's direction, ``same`` otherwise.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .schema import AggregateRow, Delta, DeltaInterval, Verdict, has_value

DEFAULT_REFERENCE = "sd"


def pair_key(meta: Mapping[str, Any]) -> tuple[str, int]:
    """The (prompt id, image index) of an image: equal across methods for the same prompt and seed."""
    return str(meta.get("prompt_id")), int(meta.get("index", 0))


def paired_delta(sample, metas: Sequence[Mapping[str, Any]], ref_sample, ref_metas: Sequence[Mapping[str, Any]],
                 *, lower_is_better: bool | None, n_boot: int = 1000, seed: int = 0, reference: str = DEFAULT_REFERENCE,
                 level: float = 0.95) -> Delta | None:
    """The paired delta (method − reference) of one column, or None without two shared pairs."""
    mine = {pair_key(metas[i]): j for j, i in enumerate(sample.items)}
    theirs = {pair_key(ref_metas[i]): j for j, i in enumerate(ref_sample.items)}
    shared = sorted(set(mine) & set(theirs))
    if len(shared) < 2:
        return None
    pm = np.array([mine[k] for k in shared], dtype=np.int64)
    pr = np.array([theirs[k] for k in shared], dtype=np.int64)
    mine_value, ref_value = float(sample.stat(pm[None])[0]), float(ref_sample.stat(pr[None])[0])
    value = mine_value - ref_value
    ci = None
    own_interval, ref_interval = sample.interval, ref_sample.interval
    ci_method: DeltaInterval = "mover" if own_interval is not None and ref_interval is not None else "percentile"
    if n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, len(shared), (n_boot, len(shared)))
        mine_boot = np.asarray(sample.stat(pm[idx]), dtype=np.float64)
        ref_boot = np.asarray(ref_sample.stat(pr[idx]), dtype=np.float64)
        if own_interval is not None and ref_interval is not None:
            low, high = mover_interval(mine_value, own_interval(pm), ref_value, ref_interval(pr),
                                       resampled_correlation(mine_boot, ref_boot), floor=0.0)
            ci = [float(low), float(high)]
        else:
            alpha = (1.0 - level) / 2.0
            lo, hi = (float(x) for x in np.quantile(mine_boot - ref_boot, [alpha, 1.0 - alpha]))
            ci = [min(lo, value), max(hi, value)]  # a percentile interval may miss a skewed estimate
    significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
    verdict: Verdict = "same"
    if significant and lower_is_better is not None:
        verdict = "better" if (value < 0) == bool(lower_is_better) else "worse"
    return Delta(reference=reference, value=value, ci=ci, ci_method=ci_method, n_pairs=len(shared), resamples=n_boot,
                 significant=significant, verdict=verdict)


def mover_interval(value_1: ArrayLike, interval_1: tuple[ArrayLike, ArrayLike], value_2: ArrayLike,
                   interval_2: tuple[ArrayLike, ArrayLike], rho: ArrayLike,
                   floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MOVER interval (low, high) of θ₁ − θ₂ from each estimate and its own interval (which must
    contain it); ``rho``: the correlation of the two estimates (0 for independent samples).
    Broadcasts over leading axes.

    ``floor``: the statistics' lower bound (0 for FD and KL), or None. An estimate whose interval
    reaches it has an error of one sign only, and adding in quadrature then under-covers
    (0.87 in simulation for a fair method against a biased reference); on the side that estimate
    moves, the two distances are added instead (the union-bound combination).
    """
    v1, v2, r = np.asarray(value_1, float), np.asarray(value_2, float), np.asarray(rho, float)
    (lo_1, hi_1), (lo_2, hi_2) = (np.asarray(x, float) for x in interval_1), (np.asarray(x, float) for x in interval_2)
    down_1, up_1, down_2, up_2 = v1 - lo_1, hi_1 - v1, v2 - lo_2, hi_2 - v2
    diff = v1 - v2
    low = diff - np.sqrt(np.maximum(down_1**2 + up_2**2 - 2.0 * r * down_1 * up_2, 0.0))
    high = diff + np.sqrt(np.maximum(up_1**2 + down_2**2 - 2.0 * r * up_1 * down_2, 0.0))
    if floor is not None:
        low = np.where(lo_1 <= floor, diff - (down_1 + up_2), low)
        high = np.where(lo_2 <= floor, diff + (up_1 + down_2), high)
    return low, high


def resampled_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of two statistics over the same resamples (last axis), clipped to
    [0, 1]; 0 where either is constant (e.g. a bias-corrected FD that is 0 on every resample)."""
    a = np.asarray(a, float) - np.mean(a, axis=-1, keepdims=True)
    b = np.asarray(b, float) - np.mean(b, axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return np.clip(np.divide((a * b).sum(-1), den, out=np.zeros_like(den), where=den > 0), 0.0, 1.0)


def add_deltas(rows: list[AggregateRow], groups: Mapping[tuple[str, str], tuple[dict, list]], reference: str,
               *, n_boot: int = 1000) -> None:
    """Attach ``delta`` to every available row of ``rows`` whose method is not ``reference`` and
    whose (prompt set, column) the reference also has; ``groups``: ``{(method, prompt set):
    ({column: ColumnSample}, metas)}`` (in the order the scorer aggregated them)."""
    for row in rows:
        method, pset, column = row["method"], row["prompt_set"], row["column"]
        if method == reference or not has_value(row):
            continue
        mine, ref = groups.get((method, pset)), groups.get((reference, pset))
        if mine is None or ref is None:
            continue
        col = _local_column(column, mine[0])
        if col is None or col not in ref[0]:
            continue
        d = paired_delta(mine[0][col], mine[1], ref[0][col], ref[1], lower_is_better=row["lower_is_better"],
                         n_boot=n_boot, reference=reference)
        if d is not None:
            row["delta"] = d


def _local_column(column: str, samples: Mapping[str, Any]) -> str | None:
    """The scorer's own column name of a table column (``fd-clip.fd:smiling`` → ``fd:smiling``)."""
    if column in samples:
        return column
    tail = column.split(".", 1)[1] if "." in column else None
    if tail in samples:
        return tail
    return next(iter(samples)) if len(samples) == 1 else None
