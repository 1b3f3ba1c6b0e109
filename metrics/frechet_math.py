"""Fréchet distance between Gaussians: pure float64 numpy/scipy maths, no networks or images.

Inputs are arrays or tensors (converted to float64 numpy): features (n, d), means (d,),
covariances (d, d); covariance is the unbiased 1/(n-1). Distance: ‖μ₁-μ₂‖² + tr Σ₁ + tr Σ₂ -
2 tr √(Σ₁Σ₂). ``sqrtm="eigh"`` (default) computes tr √(Σ₁Σ₂) as Σ √λᵢ of the symmetric PSD
matrix √Σ₁ Σ₂ √Σ₁ (same eigenvalues as Σ₁Σ₂), clamping round-off negatives to 0: exact also when
Σ is singular (fewer images than feature dims). ``"scipy"``: pytorch-fid's scipy.linalg.sqrtm
with an eps·I offset when the result is not finite. ``"torchmetrics"``: torchmetrics' eigvals of
Σ₁Σ₂.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch


def as_float64(x: Any) -> np.ndarray:
    """A tensor or array-like as a float64 numpy array (tensors detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance (D, D): eigendecomposition, negative eigenvalues clipped to 0."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eigh", eps: float = 1e-6) -> float:
    """tr √(Σ₁Σ₂) for PSD Σ₁, Σ₂ (float64), by ``method`` in {"eigh", "scipy", "torchmetrics"}."""
    sigma1, sigma2 = as_float64(sigma1), as_float64(sigma2)
    if method == "eigh":
        s1 = sqrt_psd(sigma1)
        m = s1 @ sigma2 @ s1
        w = np.linalg.eigvalsh((m + m.T) / 2.0)
        return float(np.sqrt(np.clip(w, 0.0, None)).sum())
    if method == "scipy":
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        return float(np.real(np.trace(covmean)))
    if method == "torchmetrics":
        t1, t2 = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
        return float(torch.linalg.eigvals(t1 @ t2).sqrt().real.sum())
    raise ValueError(f"sqrtm method {method!r}; expected eigh, scipy or torchmetrics")


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, *, sqrtm: str = "eigh") -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), float64."""
    mu1, mu2, sigma1, sigma2 = map(as_float64, (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2, sqrtm))


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of features (n, d)."""
    f = as_float64(features)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(features1, features2, *, sqrtm: str = "eigh") -> float:
    """Functional form: Fréchet distance between two feature sets (n₁, d) and (n₂, d)."""
    return frechet_distance_from_stats(*gaussian_stats(features1), *gaussian_stats(features2), sqrtm=sqrtm)


def stats_from_sums(total: Any, outer: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) from float64 running sums Σx, Σxxᵀ and the count n (unbiased covariance)."""
    total, outer = as_float64(total), as_float64(outer)
    mu = total / n
    return mu, (outer - n * np.outer(mu, mu)) / (n - 1)
