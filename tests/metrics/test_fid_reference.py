"""FID against clean-fid / pytorch-fid .npz statistics, per tSA; checked against scipy's sqrtm."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from t2ibench.errors import UserError
from t2ibench.metrics.fid_reference import FIDPerTSAScorer, load_reference_stats


def scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_per_tsa_fid_against_npz_statistics(tmp_path):
    rng = np.random.default_rng(0)
    d = 6
    ref = rng.normal(size=(400, d))
    mu, sigma = ref.mean(0), np.cov(ref, rowvar=False)
    path = tmp_path / "ffhq_clean_trainval70k_1024.npz"
    np.savez(path, mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))  # clean-fid stores float32
    m32, s32 = load_reference_stats(path)
    assert m32.dtype == np.float64 and s32.shape == (d, d)
    smile = rng.normal(0.3, 1.0, size=(50, d))
    glasses = rng.normal(-0.2, 1.3, size=(40, d))
    values = list(smile) + list(glasses)
    metas = [{"prompt_meta": {"tsa": "Smiling"}}] * 50 + [{"prompt_meta": {"tsa": "Eyeglasses"}}] * 40
    out = FIDPerTSAScorer(network="x", reference=str(path)).aggregate(values, metas)
    assert set(out) == {"fid", "fid:Smiling", "fid:Eyeglasses"}
    for key, feats in (("fid:Smiling", smile), ("fid:Eyeglasses", glasses), ("fid", np.concatenate([smile, glasses]))):
        expected = scipy_fid(m32, s32, feats.mean(0), np.cov(feats, rowvar=False))
        assert out[key]["value"] == pytest.approx(expected, rel=1e-6)
        assert out[key]["n"] == len(feats) and out[key]["n_reference"] is None


def test_bad_statistics_file_is_a_user_error(tmp_path):
    bad = tmp_path / "stats.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(UserError, match="expected mu and sigma"):
        load_reference_stats(bad)
    with pytest.raises(UserError, match="not found"):
        load_reference_stats(tmp_path / "missing.npz")
