import math

import numpy as np
import pytest

from t2ibench.analysis.stats import box_area_share, box_mass_share, map_statistics, token_statistics


def test_uniform_map_moments():
    h, w = 8, 16
    s = map_statistics(np.ones((h, w)))
    assert s["cx"] == pytest.approx(0.5) and s["cy"] == pytest.approx(0.5)
    # discrete uniform on pixel centres: variance (1 - 1/n^2) / 12
    assert s["var_x"] == pytest.approx((1 - 1 / w**2) / 12)
    assert s["var_y"] == pytest.approx((1 - 1 / h**2) / 12)
    assert s["cov_xy"] == pytest.approx(0, abs=1e-12)
    assert s["skew_x"] == pytest.approx(0, abs=1e-9)
    # kurtosis of a discrete uniform with n points: 3/5 (3n^2 - 7)/(n^2 - 1) (Pearson)
    assert s["kurt_x"] == pytest.approx(0.6 * (3 * w**2 - 7) / (w**2 - 1))
    assert s["entropy"] == pytest.approx(1.0)
    assert s["mean"] == 1 and s["max"] == 1 and s["total"] == h * w


def test_delta_map():
    a = np.zeros((10, 10))
    a[2, 7] = 5.0
    s = map_statistics(a)
    assert (s["cx"], s["cy"]) == pytest.approx((0.75, 0.25))
    assert s["var_x"] == 0 and s["spread"] == 0 and s["entropy"] == 0
    assert math.isnan(s["skew_x"]) and math.isnan(s["kurt_y"])
    assert s["max"] == 5 and s["mean"] == pytest.approx(0.05)


def test_two_point_map_skew_and_kurtosis():
    # mass 1 at x0, 3 at x1 (same row): Bernoulli(p=3/4) on {x0, x1}
    a = np.zeros((1, 4))
    a[0, 0], a[0, 3] = 1.0, 3.0
    s = map_statistics(a)
    p = 0.75
    d = 0.75  # distance between pixel centres 0.125 and 0.875
    assert s["cx"] == pytest.approx(0.125 + p * d)
    assert s["var_x"] == pytest.approx(p * (1 - p) * d**2)
    assert s["skew_x"] == pytest.approx((1 - 2 * p) / math.sqrt(p * (1 - p)))
    assert s["kurt_x"] == pytest.approx((1 - 3 * p * (1 - p)) / (p * (1 - p)))


def test_gaussian_blob_moments():
    n = 128
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x)
    sx, sy = 0.05, 0.08
    a = np.exp(-((X - 0.3) ** 2) / (2 * sx**2) - ((Y - 0.6) ** 2) / (2 * sy**2))
    s = map_statistics(a)
    assert (s["cx"], s["cy"]) == pytest.approx((0.3, 0.6), abs=1e-6)
    assert s["var_x"] == pytest.approx(sx**2, rel=1e-3) and s["var_y"] == pytest.approx(sy**2, rel=1e-3)
    assert s["spread"] == pytest.approx(math.hypot(sx, sy), rel=1e-3)
    assert s["skew_x"] == pytest.approx(0, abs=1e-3)
    assert s["kurt_x"] == pytest.approx(3.0, rel=1e-3) and s["kurt_y"] == pytest.approx(3.0, rel=1e-2)


def test_scale_invariance_and_share():
    rng = np.random.default_rng(0)
    a = rng.random((6, 6))
    s1, s2 = map_statistics(a), map_statistics(7 * a)
    for k in ("cx", "cy", "var_x", "skew_y", "kurt_x", "entropy"):
        assert s1[k] == pytest.approx(s2[k])
    rows = token_statistics({"a": a, "b": 3 * a})
    assert [r["share"] for r in rows] == pytest.approx([0.25, 0.75])


def test_negative_and_bad_shape_rejected():
    with pytest.raises(ValueError):
        map_statistics(-np.ones((2, 2)))
    with pytest.raises(ValueError):
        map_statistics(np.ones(4))


def test_zero_map_gives_nan_moments():
    s = map_statistics(np.zeros((3, 3)))
    assert s["total"] == 0 and math.isnan(s["cx"])


def test_box_mass_share():
    a = np.zeros((8, 8))
    a[:4, :4] = 1.0
    assert box_mass_share(a, (0, 0, 32, 32), image_size=(64, 64)) == pytest.approx(1.0)
    assert box_mass_share(a, (0, 0, 0.25, 0.5)) == pytest.approx(0.5)
    assert box_area_share((0, 0, 32, 32), (8, 8), image_size=(64, 64)) == pytest.approx(0.25)
