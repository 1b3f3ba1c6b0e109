"""FID against clean-fid: its "clean" resize (transcribed, and the clean-fid package where it is
installed) and its TorchScript Inception called on float input, on a stand-in TorchScript file
with clean-fid's interface (the real ``inception-2015-12-05.pt`` cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from t2ibench.metrics.fid_networks import CleanFIDInception, resolve_network
from t2ibench.metrics.fid_preprocess import Preprocess
from t2ibench.metrics.frechet import FIDScorer


def cleanfid_clean_resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Transcription of clean-fid's ``make_resizer("PIL", False, "bicubic", (size, size))``
    (cleanfid/resize.py:41-57): each channel as a PIL float image (mode "F"), bicubic, clipped to
    [0, 255], float32 (H, W, 3) in [0, 255]."""
    chans = []
    for c in range(3):
        img = Image.fromarray(arr[:, :, c].astype(np.float32), mode="F").resize((size, size), resample=Image.BICUBIC)
        chans.append(np.asarray(img).clip(0, 255).reshape(size, size, 1))
    return np.concatenate(chans, axis=2).astype(np.float32)


def _edgy(h: int, w: int, seed: int) -> Image.Image:
    """Black/white blocks: bicubic overshoots [0, 255] on every edge."""
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.integers(0, 2, (h, w, 3)) * 255).astype(np.uint8))


def test_clean_resize_clips_as_clean_fid_does():
    img = _edgy(24, 24, 3)
    arr = np.asarray(img)
    unclipped = np.asarray(Image.fromarray(arr[:, :, 0].astype(np.float32), mode="F").resize((61, 61), Image.BICUBIC))
    assert unclipped.min() < -1 and unclipped.max() > 256  # the overshoot the clip removes
    got = (Preprocess(61, "clean")([img])[0].permute(1, 2, 0) * 255).numpy()
    want = cleanfid_clean_resize(arr, 61)
    assert np.abs(got - want).max() < 1e-3  # float32 /255 then *255
    assert got.min() >= 0 and got.max() <= 255 + 1e-3
    assert not np.allclose(got, got.round(), atol=1e-3)  # floats, not quantised
    assert "clipped to [0, 255]" in Preprocess(61, "clean").describe()
    kept = (Preprocess(61, "clean", clamp=False)([img])[0, 0] * 255).numpy()
    assert np.abs(kept - unclipped).max() < 1e-3


def test_crop_none_resizes_the_whole_image_as_clean_fid():
    img = _edgy(20, 36, 5)  # not square: clean-fid stretches it to 299 x 299
    whole = (Preprocess(32, "clean", crop=False)([img])[0].permute(1, 2, 0) * 255).numpy()
    assert np.abs(whole - cleanfid_clean_resize(np.asarray(img), 32)).max() < 1e-3
    centre = (Preprocess(32, "clean")([img])[0].permute(1, 2, 0) * 255).numpy()
    assert np.abs(centre - cleanfid_clean_resize(np.asarray(img)[:, 8:28], 32)).max() < 1e-3
    assert FIDScorer(network=nn.Identity(), crop="none").crop == "none"
    with pytest.raises(ValueError, match="crop"):
        FIDScorer(crop="square")


def test_transcription_is_the_clean_fid_package():
    resize = pytest.importorskip("cleanfid.resize")
    arr = np.asarray(_edgy(20, 36, 7))
    assert np.array_equal(resize.make_resizer("PIL", False, "bicubic", (299, 299))(arr), cleanfid_clean_resize(arr, 299))
    assert np.array_equal(resize.build_resizer("clean")(arr), cleanfid_clean_resize(arr, 299))


class _Layers(nn.Module):
    """Stand-in for the Inception body: (B, 3, 299, 299) → (B, 2048, 1, 1), as ``base.layers`` returns."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 9, stride=8)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(54, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.pool(self.conv(x))).flatten(1))[:, :, None, None]


class _Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture
def inception_file(tmp_path: Path) -> Path:
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(_Base()).save(str(path))
    return path


def _folder(path: Path, n: int, seed: int, shape=(40, 56)) -> Path:
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
        if i % 2:
            base[shape[0] // 2:] = 255  # a hard edge
        Image.fromarray(base).save(path / f"{i:03d}.png")
    return path


def test_features_equal_clean_fids_torchscript_wrapper(inception_file):
    ts = pytest.importorskip("cleanfid.inception_torchscript")
    theirs = ts.InceptionV3W(str(inception_file.parent), download=False, resize_inside=False).eval()
    ours = resolve_network(str(inception_file))
    assert isinstance(ours, CleanFIDInception) and not ours.quantizes
    img = _edgy(40, 56, 1)
    x255 = torch.from_numpy(cleanfid_clean_resize(np.asarray(img), 299)).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = theirs(x255)
    got = ours(Preprocess(299, "clean", crop=False)([img]))
    assert got.shape == (1, 2048)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fid_equals_clean_fid_compute_fid(inception_file, tmp_path, monkeypatch):
    """End to end: ``fid`` with the clean-fid network file and ``crop: none`` against clean-fid's
    own ``compute_fid(gen_dir, ref_dir, mode="clean")`` with the same TorchScript network."""
    fid = pytest.importorskip("cleanfid.fid")
    ts = pytest.importorskip("cleanfid.inception_torchscript")
    ref, gen = _folder(tmp_path / "ref", 24, 0), _folder(tmp_path / "gen", 20, 1)
    model = ts.InceptionV3W(str(inception_file.parent), download=False, resize_inside=False).eval()
    want = fid.compute_fid(str(gen), str(ref), mode="clean", custom_feat_extractor=model, num_workers=0, batch_size=8,
                           device=torch.device("cpu"), use_dataparallel=False, verbose=False)
    monkeypatch.setenv("T2IBENCH_CLEANFID_INCEPTION", str(inception_file))
    scorer = FIDScorer(network="inception-v3", reference=str(ref), crop="none", cache_dir=str(tmp_path / "cache"), bootstrap=0)
    images = [Image.open(p).convert("RGB") for p in sorted(gen.iterdir())]
    got = scorer.aggregate(scorer.score(images, [{}] * len(images)), [{}] * len(images))["fid"]["value"]
    assert got == pytest.approx(want, rel=1e-4)
    assert "equal to clean-fid" in scorer.variant() and "clean-fid TorchScript" in scorer.network_name()


def test_missing_or_bad_network_file_is_not_available(tmp_path):
    from t2ibench.metrics.common import NotAvailable

    with pytest.raises(NotAvailable, match="not found"):
        resolve_network(str(tmp_path / "inception-2015-12-05.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(NotAvailable, match="TorchScript"):
        resolve_network(str(bad))
