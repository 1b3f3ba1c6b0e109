"""Fréchet distance: against a scipy reference (pytorch-fid's formula), streaming, merging, caching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from t2ibench.metrics.fid_preprocess import Preprocess
from t2ibench.metrics.fid_stats_cache import ReferenceStats
from t2ibench.metrics.frechet import FrechetDistance
from t2ibench.metrics.frechet_math import frechet_distance, frechet_distance_from_stats


def scipy_reference_fd(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance, written out independently with scipy (float64)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():  # pragma: no cover
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _features(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ a + shift


@pytest.mark.parametrize("method", ["eigh", "scipy", "torchmetrics"])
@pytest.mark.parametrize("n1,n2,d", [(300, 250, 16), (12, 9, 32), (40, 64, 48)])  # full rank, singular, mixed
def test_equals_scipy_reference(method, n1, n2, d):
    f1, f2 = _features(n1, d, 0), _features(n2, d, 1, shift=0.3)
    ref = scipy_reference_fd(f1, f2)
    got = frechet_distance(f1, f2, sqrtm=method)
    assert got == pytest.approx(ref, rel=1e-6)


def test_identical_sets_give_zero_and_hand_computed_1d():
    f = _features(50, 8, 3)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    # 1-D: (m1-m2)^2 + (s1 - s2)^2 with s the standard deviations
    assert frechet_distance_from_stats([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


class LinearFeatures(torch.nn.Module):
    def __init__(self, d=8, size=8, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * size * size, d).to(dtype)
        self.num_features = d
        self.image_size = size
        self.name = "linear-test"
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.proj(x.flatten(1).to(self.proj.weight.dtype))


def test_streaming_metric_equals_functional_and_torchmetrics():
    net = LinearFeatures()
    torch.manual_seed(1)
    real, fake = torch.rand(40, 3, 8, 8), torch.rand(30, 3, 8, 8) * 0.8
    m = FrechetDistance(net)
    for chunk in real.split(7):
        m.update(chunk, real=True)
    for chunk in fake.split(9):
        m.update(chunk, real=False)
    with torch.no_grad():
        f_real, f_fake = net(real).double().numpy(), net(fake).double().numpy()
    ours = float(m.compute())
    assert ours == pytest.approx(scipy_reference_fd(f_real, f_fake), rel=1e-6)
    tm = FrechetInceptionDistance(feature=net, normalize=True)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    assert ours == pytest.approx(float(tm.compute()), rel=1e-5)  # torchmetrics casts to float32


def test_merged_shard_states_equal_single_process():
    # float64 features: a float32 matmul rounds differently with the batch size (BLAS picks other
    # kernels), which moves FD by ~1e-7 relative and would hide what this test checks, the merge
    net = LinearFeatures(dtype=torch.float64)
    torch.manual_seed(2)
    real, fake = torch.rand(24, 3, 8, 8), torch.rand(20, 3, 8, 8)
    single = FrechetDistance(net)
    single.update(real, True)
    single.update(fake, False)
    shards = [FrechetDistance(net) for _ in range(3)]
    for i, s in enumerate(shards):
        s.update(real[i::3], True)
        s.update(fake[i::3], False)
    merged = FrechetDistance(net)
    for s in shards:
        merged.merge_state(s)
    assert float(merged.compute()) == pytest.approx(float(single.compute()), rel=1e-9)
    assert merged.real_features_sum.dtype == torch.float64


def test_preprocess_resizes_and_crops():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    for resize in ("clean", "pytorch-fid"):
        x = Preprocess(size=16, resize=resize)([img])
        assert x.shape == (1, 3, 16, 16) and -0.1 <= float(x.min()) and float(x.max()) <= 1.1
    # pytorch-fid path = torch bilinear on the centre crop
    crop = np.asarray(img)[:, 5:25]
    expect = torch.nn.functional.interpolate(
        torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float(), size=(16, 16), mode="bilinear", align_corners=False
    ) / 255
    assert torch.allclose(Preprocess(16, "pytorch-fid")([img]), expect, atol=1e-6)
    # clean path = PIL bicubic per channel in float mode, clipped, not quantised (clean-fid's
    # make_resizer("PIL", quantize_after=False, "bicubic"))
    ch = np.asarray(Image.fromarray(crop[:, :, 1].astype(np.float32), mode="F").resize((16, 16), Image.BICUBIC))
    assert np.allclose(Preprocess(16, "clean")([img])[0, 1].numpy(), np.clip(ch, 0, 255) / 255, atol=1e-6)
    assert np.allclose(Preprocess(16, "clean", clamp=False)([img])[0, 1].numpy(), ch / 255, atol=1e-6)
    # same size: untouched
    sq = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert torch.allclose(Preprocess(16, "clean")([sq])[0], torch.from_numpy(np.array(sq)).permute(2, 0, 1).float() / 255)


def test_fid_preprocessing_labels_match_what_the_code_does():
    """The labels name the implementation each mode reproduces: "clean" keeps clean-fid's floats
    (no uint8 rounding; ``clamp=False`` keeps the bicubic overshoot clean-fid clips); "pytorch-fid" is pytorch-fid's bilinear resize,
    which is far from torchmetrics' (torch-fidelity's TF1-style resize of uint8 input)."""
    def tf1_bilinear(a: np.ndarray, out: int) -> np.ndarray:
        """TF1's legacy bilinear resize (align_corners=False, no half-pixel offset: source = dest * in/out),
        which torch-fidelity's Inception (torchmetrics' FID) applies to uint8 input."""
        size = a.shape[0]
        src = np.arange(out) * (size / out)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, size - 1)
        w = (src - i0)[:, None, None]
        rows = a[i0] * (1 - w) + a[i1] * w
        w = (src - i0)[None, :, None]
        return rows[:, i0] * (1 - w) + rows[:, i1] * w

    rng = np.random.default_rng(3)
    img = Image.fromarray((rng.integers(0, 2, (24, 24, 3)) * 255).astype(np.uint8))  # hard edges: overshoot
    clean = Preprocess(61, "clean", clamp=False)([img]) * 255
    assert not torch.allclose(clean, clean.round(), atol=1e-3)  # not quantised
    assert float(clean.min()) < 0 or float(clean.max()) > 255  # not clipped
    assert "not clipped" in Preprocess(61, "clean", clamp=False).describe()
    legacy = (Preprocess(61, "pytorch-fid")([img]) * 255)[0].permute(1, 2, 0).numpy()
    tm = tf1_bilinear(np.asarray(img).astype(np.float64), 61)
    assert float(np.abs(legacy - tm).mean()) > 5  # tens of grey levels apart on edges
    try:  # the same with torchmetrics' own function, where torch-fidelity is installed
        from torchmetrics.image.fid import interpolate_bilinear_2d_like_tensorflow1x as tm_resize
    except ImportError:
        tm_resize = None
    if tm_resize is not None:
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float()
        assert np.allclose(tm_resize(x, size=(61, 61), align_corners=False)[0].permute(1, 2, 0).numpy(), tm, atol=1e-3)
    label = Preprocess(61, "pytorch-fid").describe()
    assert "pytorch-fid" in label and "legacy_pytorch" in label and "not torchmetrics" in label


def test_reference_stats_cached_on_disk(tmp_path):
    net = LinearFeatures()
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(10)]
    cache = ReferenceStats(tmp_path)
    pre = Preprocess(8, "clean")
    s1 = cache.get_or_compute(imgs, net, pre, batch_size=4)
    calls = net.calls
    s2 = cache.get_or_compute(list(reversed(imgs)), net, pre)  # same set, other order: same key
    assert net.calls == calls
    assert np.array_equal(s1[0], s2[0]) and s1[2] == s2[2] == 10
    # another preprocessing: another key
    cache.get_or_compute(imgs, net, Preprocess(8, "pytorch-fid"))
    assert net.calls > calls
    assert len(list((tmp_path / "fid-stats").glob("*.npz"))) == 2
