"""Coverage of the FD/KL intervals by seeded simulation, and their estimates against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from t2ibench.metrics.fairness_intervals import corrected_fd, corrected_kl, fd_kl_estimates, fd_kl_intervals

FDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.3)
KS = (2, 4, 9)
NS = (48, 200, 1000)
REPS = 1000


def _shapes(k: int, fd: float) -> list[tuple[str, np.ndarray]]:
    """True distributions at distance ``fd`` from uniform: one heavy category, one light one, a
    linear ramp, half up and half down (those that stay inside the simplex)."""
    u = np.full(k, 1.0 / k)
    if fd == 0:
        return [("uniform", u)]
    out = []
    for name, v in (("heavy", np.eye(k)[0]), ("light", -np.eye(k)[0]), ("ramp", np.linspace(-1, 1, k)),
                    ("half", np.r_[np.ones(k // 2), -np.ones(k - k // 2)])):
        v = v - v.mean()
        p = u + fd * v / np.linalg.norm(v)
        if (p >= 0).all():
            out.append((name, p))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["corrected", "plugin"])
def test_coverage_at_least_093_everywhere(estimator):
    """172 cells x 1000 seeded samples per estimator, near uniform (FD 0, 0.01, 0.02) included;
    ~20 s of CPU each. The interval targets the true FD/KL whichever estimate it is printed with."""
    rng = np.random.default_rng(20261130)
    worst = []
    for fd in FDS:
        for k in KS:
            for n in NS:
                for shape, p in _shapes(k, fd):
                    counts = rng.multinomial(n, p, size=REPS)
                    r = fd_kl_intervals(counts, estimator=estimator)
                    kl = scipy.stats.entropy(p, np.full(k, 1.0 / k))
                    tol = 1e-9
                    cov_fd = np.mean((r["fd_lo"] <= fd + tol) & (fd <= r["fd_hi"] + tol))
                    cov_kl = np.mean((r["kl_lo"] <= kl + tol) & (kl <= r["kl_hi"] + tol))
                    worst.append((min(cov_fd, cov_kl), fd, k, n, shape, cov_fd, cov_kl))
                    # the interval always contains the reported estimate
                    assert (r["fd_lo"] <= r["fd"]).all() and (r["fd"] <= r["fd_hi"]).all()
                    assert (r["kl_lo"] <= r["kl"]).all() and (r["kl"] <= r["kl_hi"]).all()
                    # never wider than the parameter space (an exactly balanced sample once got 2e5)
                    assert (r["fd_hi"] <= np.sqrt(1 - 1 / k) + 1e-12).all() and (r["kl_hi"] <= np.log(k) + 1e-12).all()
    bad = [w for w in worst if w[0] < 0.93]
    assert not bad, f"under-covering cells (coverage, FD, K, n, shape, cov FD, cov KL): {bad}"


def test_plugin_estimates_are_scipy_and_numpy_of_the_shares():
    """The plug-in FD and KL are ITI-GEN's ``scipy.stats.entropy(p_hat, uniform)`` (evaluation.py:106-113)
    and ``numpy.linalg.norm(p_hat - uniform)``; at 504 images and K = 2 a plug-in FD of 0.028 is
    reported as such, where the bias-corrected estimate reads 0."""
    counts = [np.array(c) for c in ([262, 242], [30, 10, 8], [5, 5, 5], [40, 2, 6], [0, 12, 0, 4])]
    for c in counts[1:]:
        n, k = c.sum(), len(c)
        p = c / n
        r = fd_kl_intervals(c[None], estimator="plugin")
        fd, kl = fd_kl_estimates(c, "plugin")
        assert r["fd"][0] == pytest.approx(np.linalg.norm(p - 1 / k), abs=1e-12) == fd
        assert r["kl"][0] == pytest.approx(scipy.stats.entropy(p, np.full(k, 1 / k)), abs=1e-12) == kl
        assert r["fd_lo"][0] <= r["fd"][0] <= r["fd_hi"][0] and r["kl_lo"][0] <= r["kl"][0] <= r["kl_hi"][0]
    p = counts[0] / 504
    plug = fd_kl_intervals(counts[0][None], estimator="plugin")["fd"][0]
    assert plug == pytest.approx(np.linalg.norm(p - 0.5), abs=1e-12) and round(plug, 3) == 0.028
    assert fd_kl_intervals(counts[0][None])["fd"][0] == 0.0
    with pytest.raises(ValueError, match="estimator"):
        fd_kl_intervals(counts[0][None], estimator="unbiased")  # type: ignore[arg-type]


def test_exactly_uniform_sample_reads_zero_with_zero_lower_bound():
    for counts in ([8, 8], [24, 24], [12, 12, 12, 12], [100] * 4, [30] * 9):
        r = fd_kl_intervals(np.array([counts]))
        assert r["fd"][0] == 0 and r["fd_lo"][0] == 0 and 0 < r["fd_hi"][0] < 0.6
        assert r["kl"][0] == 0 and r["kl_lo"][0] == 0 and 0 < r["kl_hi"][0] < 0.6


def test_estimates_against_scipy_and_bias():
    """The corrections are the plug-in (scipy.stats.entropy, numpy norm) minus their first-order bias,
    and the corrected FD² is unbiased: its mean over many samples matches the true FD²."""
    counts = np.array([[30, 10, 8], [5, 5, 5], [40, 2, 6]])
    for c in counts:
        n, k = c.sum(), len(c)
        p = c / n
        plug_fd2 = np.linalg.norm(p - 1 / k) ** 2
        assert corrected_fd(c) == pytest.approx(np.sqrt(max(plug_fd2 - (1 - (p**2).sum()) / (n - 1), 0)), abs=1e-12)
        kl = scipy.stats.entropy(p, np.full(k, 1 / k))
        assert corrected_kl(c) == pytest.approx(max(kl - (k - 1) / (2 * n), 0), abs=1e-12)
    p = np.array([0.5, 0.3, 0.2])
    draws = np.random.default_rng(0).multinomial(48, p, size=200_000) / 48
    plug = ((draws - 1 / 3) ** 2).sum(1)
    unbiased = plug - (1 - (draws**2).sum(1)) / 47
    true = ((p - 1 / 3) ** 2).sum()
    assert unbiased.mean() == pytest.approx(true, rel=5e-3)
    assert plug.mean() > true * 1.1  # the plug-in's upward bias that the correction removes
