"""FD and KL (bias-corrected or plug-in) with 95 % intervals that cover, also at and near a uniform distribution.

Counts c (K categories, n images), p̂ = c/n, u = 1/K. Two statistics, each ≈ noncentral χ²
with K-1 degrees of freedom under a true distribution p (Pearson; Wilks):

- Pearson  X² = nK·FD̂²,           noncentrality λ = nK·FD²       (FD = ‖p − u‖₂)
- LR       G² = 2n·KL(p̂ ‖ u),      noncentrality λ = 2n·KL(p ‖ u)  (nats)

Estimates (``estimator``: ``"corrected"``, the default here, or ``"plugin"``):

- plug-in: FD̂ = ‖p̂ − u‖₂ and KL̂ = KL(p̂ ‖ u) (``scipy.stats.entropy(p̂, u)``): what ITI-GEN
  (``evaluation.py:106-113``) and FairQueue print; biased upward (E FD̂² = FD² + (1 − Σpᵢ²)/n).
- corrected FD: √max(0, FD̂² − (1 − Σp̂ᵢ²)/(n − 1)), the square root of the unbiased (U-statistic)
  estimate of FD² (E FD̂² = FD² + (1 − Σpᵢ²)/n); 0 for a sample that is as balanced as chance allows.
- corrected KL: max(0, KL̂ − (K − 1)/(2n)) (Miller & Madow's first-order bias of the plug-in, which is
  E G² − λ = K − 1 in the noncentral χ² approximation).

Interval for λ (then FD = √(λ/(nK)), KL = λ/(2n)): the union of three 95 % intervals, each of
which covers where the others are weak (checked by a seeded simulation over FD in {0, 0.02,
0.05, 0.1, 0.3}, K in {2, 4, 9}, n in {48, 200, 1000} and four shapes of p:
tests/metrics/test_fairness_intervals.py; coverage ≥ 0.93 everywhere):

1. Test inversion of the noncentral χ² (Steiger & Lind's RMSEA interval; scipy.stats.ncx2):
   λ_lo solves F(s₋; K−1, λ) = 0.975, λ_hi solves F(s₊; K−1, λ) = 0.025, where s± carry a
   half-count continuity correction (√s± = √s ± √(K/2n), half the smallest step of √X² when one
   image changes category); λ_lo is 0 when even λ = 0 does not reach its level, and s₊ is at
   least the null's 5 % quantile, so a perfectly balanced sample keeps a positive upper bound.
   Exact near uniform, where it gives the lower bound 0 of a fair generator.
2. Wald on the root scale, √λ̂ ± 1.96·sd (only when λ̂ > 0), with the delta-method variance of the statistic under
   p̂ (linear term Var(∇s·p̂)/n plus the quadratic term's 2K²·tr(Σ²), Σ = diag p̂ − p̂p̂ᵀ, for X²;
   2(K−1) for G²): the noncentral χ² variance 2(K−1) + 4λ assumes p near u and is too small
   when one category dominates.
3. Score-type upper bound along p̂'s direction: the largest d such that p_d = u + d(p̂−u)/‖p̂−u‖
   still explains the statistic within 1.96 of its own standard deviation (mean and variance
   evaluated at p_d, not at p̂): the Wald upper bound is too low when p̂ is less extreme than p.

The interval is computed around the corrected estimate for either estimator (its coverage is
what the simulation checks); the upper bound is capped at the largest possible value
(FD ≤ √(1 − 1/K), KL ≤ log K), and the interval is widened to contain the reported estimate
(with the plug-in, usually the upper end moves: coverage can only grow; simulated for both). Sources: Pearson (1900); Steiger & Lind (1980) and
Browne & Cudeck (1993) for the inverted noncentral χ² interval; Miller (1955) for the bias.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.stats

Kind = Literal["fd", "kl"]
Estimator = Literal["corrected", "plugin"]
_ITER = 48  # bisection steps on λ: relative precision 2^-48 of the bracket


def _stat(p: np.ndarray, n: np.ndarray | float, kind: Kind) -> np.ndarray:
    """X² (kind "fd") or G² (kind "kl") of shares p (..., K) with n images."""
    k = p.shape[-1]
    if kind == "fd":
        return n * k * ((p - 1.0 / k) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * n * np.where(p > 0, p * np.log(np.where(p > 0, p * k, 1.0)), 0.0).sum(-1)


def _moments(p: np.ndarray, n: np.ndarray | float, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """Mean and delta-method variance of the statistic when the true shares are p (..., K)."""
    k = p.shape[-1]
    n_ = np.asarray(n, dtype=np.float64)[..., None]
    s2, s3 = (p**2).sum(-1), (p**3).sum(-1)
    if kind == "fd":
        grad = 2.0 * n_ * k * (p - 1.0 / k)
        mean = _stat(p, n, kind) + k * (1.0 - s2)
        quad = 2.0 * k * k * (s2 - 2.0 * s3 + s2 * s2)
    else:
        with np.errstate(divide="ignore"):
            grad = 2.0 * n_ * np.where(p > 0, np.log(np.where(p > 0, p * k, 1.0)) + 1.0, 0.0)
        mean = _stat(p, n, kind) + (k - 1)
        quad = np.full(mean.shape, 2.0 * (k - 1))
    m = (p * grad).sum(-1)
    return mean, ((p * grad * grad).sum(-1) - m * m) / n_[..., 0] + quad


def _ncx2_bound(stat: np.ndarray, df: int, level: float) -> np.ndarray:
    """λ ≥ 0 with ncx2.cdf(stat, df, λ) = level (the CDF falls as λ grows); 0 if none."""
    lo = np.zeros_like(stat)
    hi = 2.0 * np.maximum(stat, 1.0) + 50.0
    for _ in range(_ITER):
        mid = 0.5 * (lo + hi)
        above = scipy.stats.ncx2.cdf(stat, df, np.maximum(mid, 1e-12)) > level
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(scipy.stats.chi2.cdf(stat, df) <= level, 0.0, 0.5 * (lo + hi))


def _score_upper(p: np.ndarray, n: np.ndarray, stat: np.ndarray, kind: Kind, z: float) -> np.ndarray:
    """Largest λ along p̂'s direction whose mean − z·sd still reaches the observed statistic."""
    k = p.shape[-1]
    diff = p - 1.0 / k
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    direction = np.where(norm > 0, diff / np.maximum(norm, 1e-300), 0.0)
    # the ray leaves the simplex where the smallest negative component reaches -1/K
    neg = np.where(direction < 0, -direction, 0.0).max(-1)
    d_max = np.where(neg > 0, (1.0 / k) / np.maximum(neg, 1e-300), 0.0)
    lo, hi = np.zeros(len(p)), d_max
    for _ in range(_ITER):  # mean - z sd grows with d along the ray: bisection for the last d below stat
        mid = 0.5 * (lo + hi)
        pd = np.clip(1.0 / k + mid[:, None] * direction, 0.0, None)
        mean, var = _moments(pd, n, kind)
        ok = mean - z * np.sqrt(np.maximum(var, 0.0)) <= stat
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    pd = np.clip(1.0 / k + lo[:, None] * direction, 0.0, None)
    return _stat(pd, n, kind)


def check_estimator(estimator: str) -> Estimator:
    """``estimator`` as an :data:`Estimator`; ValueError for anything else."""
    if estimator == "plugin":
        return "plugin"
    if estimator == "corrected":
        return "corrected"
    raise ValueError(f"estimator {estimator!r}; expected 'plugin' or 'corrected'")


def noncentrality_intervals(counts: np.ndarray, kind: Kind, level: float = 0.95,
                            estimator: Estimator = "corrected") -> dict[str, np.ndarray]:
    """Per row of counts (R, K): the statistic, λ̂ (bias-corrected, or the plug-in statistic
    itself) and the interval [lo, hi] for λ, which contains λ̂."""
    check_estimator(estimator)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[1] < 2:
        raise ValueError(f"counts must be (rows, K >= 2), got shape {counts.shape}")
    uniq, inverse = np.unique(counts, axis=0, return_inverse=True)  # many rows repeat for small n
    inverse = inverse.reshape(-1)
    k = uniq.shape[1]
    n = uniq.sum(1).astype(np.float64)
    if (n < 2).any():
        raise ValueError("every row needs at least 2 images")
    p = uniq / n[:, None]
    stat = _stat(p, n, kind)
    alpha = (1.0 - level) / 2.0
    z = float(scipy.stats.norm.ppf(1.0 - alpha))
    if kind == "fd":  # unbiased FD² (U-statistic), in λ units
        est = np.maximum(stat - n * k * (1.0 - (p**2).sum(1)) / (n - 1.0), 0.0)
    else:
        est = np.maximum(stat - (k - 1), 0.0)
    root, cc = np.sqrt(stat), np.sqrt(k / (2.0 * n))
    lo = _ncx2_bound(np.maximum(root - cc, 0.0) ** 2, k - 1, 1.0 - alpha)
    # a sample more balanced than 95 % of exactly fair ones is read at the null's 5 % quantile: else
    # the lower-tail test rejects even λ = 0 and a perfectly balanced sample would get [0, 0]
    hi = _ncx2_bound(np.maximum((root + cc) ** 2, scipy.stats.chi2.ppf(2.0 * alpha, k - 1)), k - 1, alpha)
    _, var = _moments(p, n, kind)
    # the root-scale delta method degenerates as the statistic goes to 0 (Var √s ≈ Var s / 4s):
    # used only above the null mean K - 1, where the noncentral χ² bounds are the weak ones
    sd_root = np.sqrt(np.maximum(var, 0.0) / (4.0 * np.maximum(stat, k - 1.0)))
    wald = est > 0
    lo = np.where(wald, np.minimum(lo, np.maximum(np.sqrt(est) - z * sd_root, 0.0) ** 2), lo)
    hi = np.where(wald, np.maximum(hi, (np.sqrt(est) + z * sd_root) ** 2), hi)
    hi = np.maximum(hi, _score_upper(p, n, stat, kind, z))
    # λ cannot exceed its value at a one-category distribution: FD ≤ √(1 − 1/K), KL ≤ log K
    lam_max = n * (k - 1.0) if kind == "fd" else 2.0 * n * np.log(k)
    hi = np.minimum(hi, lam_max)
    if estimator == "plugin":
        est = stat
    lo, hi = np.minimum(lo, est), np.maximum(hi, est)
    return {"stat": stat[inverse], "estimate": est[inverse], "lo": lo[inverse], "hi": hi[inverse],
            "n": n[inverse]}


def kind_intervals(counts: np.ndarray, kind: Kind, level: float = 0.95,
                   estimator: Estimator = "corrected") -> dict[str, np.ndarray]:
    """FD (``kind`` "fd") or KL in nats ("kl"), bias-corrected or plug-in (``estimator``), with
    ``level`` intervals per row of counts (R, K): ``<kind>``, ``<kind>_lo``, ``<kind>_hi`` (each (R,))."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    r = noncentrality_intervals(counts, kind, level, estimator)
    if kind == "fd":
        scale = r["n"] * counts.shape[1]
        return {key: np.sqrt(r[src] / scale) for key, src in (("fd", "estimate"), ("fd_lo", "lo"), ("fd_hi", "hi"))}
    return {key: r[src] / (2.0 * r["n"]) for key, src in (("kl", "estimate"), ("kl_lo", "lo"), ("kl_hi", "hi"))}


def fd_kl_intervals(counts: np.ndarray, level: float = 0.95, estimator: Estimator = "corrected") -> dict[str, np.ndarray]:
    """FD and KL (nats), bias-corrected or plug-in, with ``level`` intervals per row of counts (R, K).

    Returns ``fd``, ``fd_lo``, ``fd_hi``, ``kl``, ``kl_lo``, ``kl_hi`` (each (R,)).
    """
    return {**kind_intervals(counts, "fd", level, estimator), **kind_intervals(counts, "kl", level, estimator)}


def corrected_fd(counts: np.ndarray) -> np.ndarray:
    """Bias-corrected FD of every row of counts (..., K): √max(0, FD̂² − (1 − Σp̂²)/(n − 1))."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(-1)
    p = counts / n[..., None]
    fd2 = ((p - 1.0 / counts.shape[-1]) ** 2).sum(-1) - (1.0 - (p**2).sum(-1)) / np.maximum(n - 1.0, 1.0)
    return np.sqrt(np.maximum(fd2, 0.0))


def corrected_kl(counts: np.ndarray) -> np.ndarray:
    """Bias-corrected KL(p ‖ u) in nats of every row of counts (..., K): max(0, KL̂ − (K − 1)/(2n))."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(-1)
    k = counts.shape[-1]
    return np.maximum(_stat(counts / n[..., None], n, "kl") / (2.0 * n) - (k - 1) / (2.0 * n), 0.0)


def plugin_fd(counts: np.ndarray) -> np.ndarray:
    """Plug-in FD = ‖p̂ − u‖₂ of every row of counts (..., K)."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.linalg.norm(counts / counts.sum(-1, keepdims=True) - 1.0 / counts.shape[-1], axis=-1)


def plugin_kl(counts: np.ndarray) -> np.ndarray:
    """Plug-in KL(p̂ ‖ u) in nats of every row of counts (..., K), 0·log 0 = 0 (as scipy.stats.entropy)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(-1)
    return _stat(counts / n[..., None], n, "kl") / (2.0 * n)


def fd_kl_estimates(counts: np.ndarray, estimator: Estimator = "corrected") -> tuple[np.ndarray, np.ndarray]:
    """(FD, KL) of every row of counts (..., K) with the chosen estimator."""
    if check_estimator(estimator) == "plugin":
        return plugin_fd(counts), plugin_kl(counts)
    return corrected_fd(counts), corrected_kl(counts)
