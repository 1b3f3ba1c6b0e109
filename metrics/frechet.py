"""Fréchet distance (FID) between Gaussian fits of image features, float64 and streaming.

Conventions (all recorded with every number):

- Statistics: float64 running sums (sum of features, sum of outer products, count), so memory
  is O(d²) whatever the number of images; covariance with the unbiased 1/(n-1). The states are
  torchmetrics' ``FrechetInceptionDistance`` states (this class subclasses it), so they merge
  across ranks with ``dist_reduce_fx="sum"``.
- Distance: ‖μ₁-μ₂‖² + tr Σ₁ + tr Σ₂ - 2 tr √(Σ₁Σ₂). ``sqrtm="eigh"`` (default) computes
  tr √(Σ₁Σ₂) as Σ √λᵢ of the symmetric PSD matrix √Σ₁ Σ₂ √Σ₁ (same eigenvalues as Σ₁Σ₂),
  clamping round-off negatives to 0: exact also when Σ is singular (fewer images than feature
  dims). ``"scipy"``: pytorch-fid's scipy.linalg.sqrtm with an eps·I offset when the result is
  not finite. ``"torchmetrics"``: torchmetrics' eigvals of Σ₁Σ₂.
- Preprocessing (:class:`Preprocess`): centre-crop to a square, then resize to ``size`` with
  ``"clean"`` (clean-fid's ``clean`` mode: PIL bicubic per channel in float mode, kept as floats:
  neither clamped nor quantised) or ``"pytorch-fid"`` (torch bilinear, align_corners=False, no
  antialias: pytorch-fid's resize and clean-fid's ``legacy_pytorch``; *not* torchmetrics, whose
  torch-fidelity Inception resizes uint8 input TF1-style). The torch-fidelity Inception only takes
  uint8, so with it the resized floats are quantised (the one remaining difference from clean-fid,
  stated in the conventions); the other networks get the floats.
- Network: Inception-v3 pool3 (2048-d, torch-fidelity weights) only when its weights are on
  local disk; otherwise any ``nn.Module`` (e.g. tinyworld's tiny CLIP image features). The
  network's name is part of every report and of the reference-statistics cache key.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid

from t2ibench.metrics.common import CLIP_MEAN, CLIP_STD, ColumnSample, NotAvailable, Scorer, config_hash, unwrap_features

# --------------------------------------------------------------------------------------------
# The distance


def _as_np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eigh", eps: float = 1e-6) -> float:
    """tr √(Σ₁Σ₂) for PSD Σ₁, Σ₂ (float64), by ``method`` in {"eigh", "scipy", "torchmetrics"}."""
    sigma1, sigma2 = _as_np(sigma1), _as_np(sigma2)
    if method == "eigh":
        s1 = _sqrt_psd(sigma1)
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
    mu1, mu2, sigma1, sigma2 = map(_as_np, (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2, sqrtm))


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of features (n, d)."""
    f = _as_np(features)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(features1, features2, *, sqrtm: str = "eigh") -> float:
    """Functional form: Fréchet distance between two feature sets (n₁, d) and (n₂, d)."""
    return frechet_distance_from_stats(*gaussian_stats(features1), *gaussian_stats(features2), sqrtm=sqrtm)


def stats_from_sums(total: Any, outer: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) from float64 running sums Σx, Σxxᵀ and the count n (unbiased covariance)."""
    total, outer = _as_np(total), _as_np(outer)
    mu = total / n
    return mu, (outer - n * np.outer(mu, mu)) / (n - 1)


# --------------------------------------------------------------------------------------------
# Preprocessing


@dataclass(frozen=True)
class Preprocess:
    """Centre-crop to a square, resize to ``size``×``size``; output float32 (B, 3, S, S) in [0, 1].

    resize: ``"clean"`` = clean-fid's ``clean`` mode: PIL bicubic on each channel in float mode
    ("F"), not quantised and not clamped (bicubic may overshoot [0, 1] slightly, as in clean-fid);
    ``"pytorch-fid"`` = torch bilinear, align_corners=False, no antialias, applied to the 0-255
    image (pytorch-fid's resize; clean-fid's ``legacy_pytorch``). ``clamp``: clamp the clean
    resize to [0, 255] (the behaviour before t2ibench 0.x; off to match clean-fid).
    """

    size: int = 299
    resize: str = "clean"
    crop: bool = True
    clamp: bool = False

    def __post_init__(self) -> None:
        if self.resize not in ("clean", "pytorch-fid"):
            raise ValueError(f"resize {self.resize!r}; expected 'clean' or 'pytorch-fid'")

    def describe(self) -> str:
        crop = "centre-crop, " if self.crop else ""
        if self.resize == "clean":
            kind = "PIL bicubic in float, " + ("clamped to [0, 255]" if self.clamp else "not clamped or quantised") + " (clean-fid 'clean')"
        else:
            kind = "torch bilinear, no antialias (pytorch-fid; clean-fid 'legacy_pytorch'; not torchmetrics)"
        return f"{crop}resize to {self.size}x{self.size} {kind}"

    def _crop(self, image):
        image = image.convert("RGB")
        if not self.crop:
            return image
        w, h = image.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return image.crop((left, top, left + s, top + s))

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        from PIL import Image

        out = []
        for image in images:
            image = self._crop(image)
            arr = np.asarray(image, dtype=np.uint8)
            if self.resize == "clean":
                if image.size != (self.size, self.size):
                    chans = [
                        np.asarray(
                            Image.fromarray(arr[:, :, c].astype(np.float32), mode="F").resize(
                                (self.size, self.size), resample=Image.Resampling.BICUBIC
                            ),
                            dtype=np.float32,
                        )
                        for c in range(3)
                    ]
                    arr_f = np.stack(chans, axis=2)
                else:
                    arr_f = arr.astype(np.float32)
                t = torch.from_numpy(np.clip(arr_f, 0, 255) if self.clamp else arr_f).permute(2, 0, 1)
            else:
                t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()
                if image.size != (self.size, self.size):
                    t = torch.nn.functional.interpolate(
                        t[None], size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=False
                    )[0]
            out.append(t / 255.0)
        return torch.stack(out)


# --------------------------------------------------------------------------------------------
# Feature networks


class ClipImageFeatures(nn.Module):
    """CLIP image embeddings (projected, not normalised) of images in [0, 1] at the model's size.

    Works with transformers ``CLIPModel`` (4.x and 5.x) and open_clip models (``encode_image``).
    """

    model: Any  # transformers CLIPModel or an open_clip model (duck-typed: get_image_features / encode_image)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, name: str, mean=CLIP_MEAN, std=CLIP_STD) -> None:
        super().__init__()
        self.model = model.eval()
        self.name = name
        clip: Any = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if hasattr(model, "get_image_features"):
            self.num_features = int(clip.config.projection_dim)
        else:
            self.num_features = int(clip.visual.output_dim)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        if hasattr(self.model, "get_image_features"):
            return unwrap_features(self.model.get_image_features(pixel_values=x)).float()
        return self.model.encode_image(x).float()


def inception_weights_path() -> Path | None:
    """Local torch-fidelity Inception-v3 FID weights, if any ($T2IBENCH_INCEPTION_WEIGHTS or torch hub cache)."""
    env = os.environ.get("T2IBENCH_INCEPTION_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"):
        if (hub / name).is_file():
            return hub / name
    return None


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d) via torchmetrics/torch-fidelity, from local weights only.

    Input: float (B, 3, 299, 299) in [0, 1] (already preprocessed); it is rounded to uint8 because
    torch-fidelity's network accepts only uint8 (clean-fid feeds its Inception floats: ``quantizes``).
    Raises :class:`NotAvailable` when torch-fidelity or weights are missing.
    """

    num_features = 2048
    quantizes = True
    name = "inception-v3 (torch-fidelity FID weights, pool3 2048-d)"

    def __init__(self) -> None:
        super().__init__()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as exc:  # pragma: no cover
            raise NotAvailable(f"torchmetrics Inception: {exc}") from None
        path = inception_weights_path()
        if path is None:
            raise NotAvailable(
                "Inception-v3 FID weights not found locally (set T2IBENCH_INCEPTION_WEIGHTS or put "
                "weights-inception-2015-12-05-6726825d.pth in the torch hub checkpoints folder; no download here)"
            )
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path), antialias=False
            )
        except ModuleNotFoundError as exc:
            raise NotAvailable(f"Inception-v3 needs torch-fidelity: {exc}") from None

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * 255).round().clamp(0, 255).to(torch.uint8)).reshape(x.shape[0], -1)


def resolve_network(spec: str | nn.Module) -> nn.Module:
    """A feature network from ``"inception-v3"``, ``"tinyworld-clip"`` or ``"module:callable"``.

    The module needs ``num_features`` (int) and ``name`` (str, reported with the number); an
    optional ``image_size`` sets the default preprocessing size.
    """
    if isinstance(spec, nn.Module):
        return spec
    if spec in ("inception", "inception-v3"):
        return InceptionFeatures()
    if spec in ("tinyworld-clip", "tiny-clip"):
        from t2ibench.metrics.tinyworld import tiny_clip_image_features

        return tiny_clip_image_features()
    if ":" in spec:
        from t2ibench.registry import Registry

        fn = Registry("feature network", "t2ibench.feature_networks", {}).get(spec)
        return fn() if not isinstance(fn, nn.Module) else fn
    raise ValueError(f"feature network {spec!r}; expected inception-v3, tinyworld-clip or module:callable")


# --------------------------------------------------------------------------------------------
# The torchmetrics Metric


class FrechetDistance(FrechetInceptionDistance):
    """FID with any feature network, explicit preprocessing, float64 result, and cached-feature input.

    ``update(images, real)``: images as a float tensor (B, 3, H, W) in [0, 1] (already at the
    network's size) or a list of PIL images (then ``preprocess`` is applied).
    ``update_features(features, real)``: precomputed features (B, d).
    ``compute()``: float64 tensor. States are torchmetrics' (float64 sums; merge by "sum").
    """

    higher_is_better = False

    def __init__(
        self,
        feature: nn.Module,
        *,
        preprocess: Preprocess | None = None,
        sqrtm: str = "eigh",
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        if not hasattr(feature, "num_features"):
            raise ValueError("feature network needs a num_features attribute")
        super().__init__(feature=feature, reset_real_features=reset_real_features, normalize=True, **kwargs)
        self.preprocess = preprocess or Preprocess(size=int(getattr(feature, "image_size", 299)))
        self.sqrtm = sqrtm
        self.network_name = str(getattr(feature, "name", type(feature).__name__))

    def update(self, imgs, real: bool) -> None:
        if not isinstance(imgs, torch.Tensor):
            imgs = self.preprocess(list(imgs))
        with torch.inference_mode():
            features = self.inception(imgs)
        self.update_features(features, real)

    def update_features(self, features: torch.Tensor, real: bool) -> None:
        features = torch.as_tensor(features).double()
        if features.dim() == 1:
            features = features.unsqueeze(0)
        prefix = "real" if real else "fake"
        setattr(self, f"{prefix}_features_sum", getattr(self, f"{prefix}_features_sum") + features.sum(dim=0))
        setattr(self, f"{prefix}_features_cov_sum", getattr(self, f"{prefix}_features_cov_sum") + features.t().mm(features))
        setattr(self, f"{prefix}_features_num_samples", getattr(self, f"{prefix}_features_num_samples") + features.shape[0])

    def stats(self, real: bool) -> tuple[np.ndarray, np.ndarray]:
        prefix = "real" if real else "fake"
        n = int(getattr(self, f"{prefix}_features_num_samples"))
        if n < 2:
            raise RuntimeError(f"Fréchet distance needs at least 2 {prefix} samples, got {n}")
        return stats_from_sums(getattr(self, f"{prefix}_features_sum"), getattr(self, f"{prefix}_features_cov_sum"), n)

    def compute(self) -> torch.Tensor:
        mu1, s1 = self.stats(real=True)
        mu2, s2 = self.stats(real=False)
        if self.sqrtm == "torchmetrics":
            value = _compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2)))
            return value.double()
        return torch.tensor(frechet_distance_from_stats(mu1, s1, mu2, s2, sqrtm=self.sqrtm), dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Reference statistics on disk


def default_cache_dir() -> Path:
    return Path(os.environ.get("T2IBENCH_CACHE", Path.home() / ".cache" / "t2ibench"))


def image_sha256(image) -> str:
    """Content hash of an image: sha256 of its RGB pixels and size (format-independent)."""
    image = image.convert("RGB")
    h = hashlib.sha256(f"{image.size[0]}x{image.size[1]}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class ReferenceStats:
    """Float64 sums of reference features cached on disk, keyed by (reference set, network, preprocessing).

    File: ``<cache>/fid-stats/<key>.npz`` with ``sum`` (d,), ``outer`` (d, d), ``n``; written
    atomically (temp file + rename), so concurrent processes at worst compute it twice.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.dir = Path(cache_dir or default_cache_dir()) / "fid-stats"

    @staticmethod
    def key(reference_hash: str, network: str, preprocess: Preprocess) -> str:
        return config_hash({"reference": reference_hash, "network": network, "preprocess": asdict(preprocess)})

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        with np.load(p) as z:
            return z["sum"], z["outer"], int(z["n"])

    def save(self, key: str, total, outer, n: int) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, sum=_as_np(total), outer=_as_np(outer), n=np.int64(n))
        tmp = self.dir / f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, self.path(key))
        return self.path(key)

    def get_or_compute(
        self, images: Sequence[Any], network: nn.Module, preprocess: Preprocess, *, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Sums for ``images`` (PIL), from the cache or computed (batched, float64) and stored."""
        ref_hash = hashlib.sha256("".join(sorted(image_sha256(im) for im in images)).encode()).hexdigest()
        key = self.key(ref_hash, str(getattr(network, "name", type(network).__name__)), preprocess)
        hit = self.load(key)
        if hit is not None:
            return hit
        d = int(getattr(network, "num_features"))  # feature networks carry it (see FrechetDistance)
        total, outer, n = np.zeros(d), np.zeros((d, d)), 0
        for i in range(0, len(images), batch_size):
            with torch.inference_mode():
                f = network(preprocess(images[i : i + batch_size])).double().numpy()
            total += f.sum(0)
            outer += f.T @ f
            n += len(f)
        self.save(key, total, outer, n)
        return total, outer, n


# --------------------------------------------------------------------------------------------
# The scorer for run directories


def load_reference_images(spec: str | Path, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Reference images: a directory of image files (sorted) or ``module:callable(**params)`` → PIL list."""
    from PIL import Image

    s = str(spec)
    if ":" in s and not Path(s).exists():
        from t2ibench.registry import Registry

        fn = Registry("reference set", "t2ibench.references", {}).get(s)
        return list(fn(**dict(params or {})))
    p = Path(s).expanduser()
    if not p.is_dir():
        raise NotAvailable(f"reference set {s!r} not found (expected an image directory or module:callable)")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
    if not files:
        raise NotAvailable(f"reference directory {s!r} has no images")
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(im.convert("RGB"))
    return out


class FIDScorer(Scorer):
    """Fréchet distance of each (method, prompt set) against a reference set.

    params: ``network`` ("inception-v3" | "tinyworld-clip" | "module:callable"), ``reference``
    (image directory or "module:callable"), ``reference_params``, ``resize`` ("clean" |
    "pytorch-fid"), ``size`` (default: the network's ``image_size`` or 299), ``sqrtm``,
    ``bootstrap`` (resamples of the generated set for a 95 % basic-bootstrap interval; default 100 for d ≤ 1024,
    else 0 = no interval), ``cache_dir``.
    """

    name = "fid"
    value_kind = "array"
    lower_is_better = True
    paired_resamples = 100  # one eigendecomposition per resample

    def __init__(
        self,
        network: str | nn.Module = "inception-v3",
        reference: str | None = None,
        reference_params: Mapping[str, Any] | None = None,
        resize: str = "clean",
        size: int | None = None,
        sqrtm: str = "eigh",
        bootstrap: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self.network_spec = network
        self.reference = reference
        self.reference_params = dict(reference_params or {})
        self.resize = resize
        self.size = size
        self.sqrtm = sqrtm
        self.bootstrap = bootstrap
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self._network: nn.Module | None = None
        self._reason: str | None = None

    @property
    def network(self) -> nn.Module:
        if self._network is None:
            self._network = resolve_network(self.network_spec)
        return self._network

    @property
    def preprocess(self) -> Preprocess:
        size = self.size or int(getattr(self.network, "image_size", 299))
        return Preprocess(size=size, resize=self.resize)

    def check_available(self) -> None:
        if self.reference is None:
            raise NotAvailable("no reference set given (params.reference)")
        self.network  # raises NotAvailable when weights are missing

    def network_name(self) -> str:
        return str(getattr(self.network, "name", type(self.network).__name__))

    def config(self) -> dict[str, Any]:
        return {"network": self.network_name(), "preprocess": asdict(self.preprocess)}

    def conventions(self) -> dict[str, Any]:
        return {
            "network": self.network_name(),
            "preprocess": self.preprocess.describe()
                          + ("; quantised to uint8 for the network (clean-fid keeps floats)" if getattr(self.network, "quantizes", False) else ""),
            "variant": self.variant(),
            "statistics": "float64 sums, unbiased covariance",
            "sqrtm": self.sqrtm,
            "reference": str(self.reference) + (f" {self.reference_params}" if self.reference_params else ""),
            "interval": "95% basic bootstrap over generated images (100 resamples; none above 1024-d features)"
                        if self.bootstrap is None else f"95% basic bootstrap over generated images ({self.bootstrap} resamples)",
        }

    def variant(self) -> str:
        """Which published FID implementation this number corresponds to (network aside)."""
        if self.resize == "pytorch-fid":
            return "pytorch-fid / clean-fid legacy_pytorch preprocessing"
        if getattr(self.network, "quantizes", False) or self.preprocess.clamp:
            return "clean-fid 'clean' resize, then quantised/clamped (close to, not equal to, clean-fid)"
        return "clean-fid 'clean' preprocessing (float, unquantised)"

    def score(self, images, metas):
        with torch.inference_mode():
            feats = self.network(self.preprocess(images)).double().cpu().numpy()
        return [f for f in feats]

    def reference_sums(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Reference sums: loaded/computed once per scorer (then from the on-disk cache across processes)."""
        if getattr(self, "_ref_sums", None) is None:
            if self.reference is None:
                raise NotAvailable("no reference set given (params.reference)")
            images = load_reference_images(self.reference, self.reference_params)
            self._ref_sums = ReferenceStats(self.cache_dir).get_or_compute(
                images, self.network, self.preprocess, batch_size=self.batch_size
            )
        return self._ref_sums

    def aggregate(self, values, metas):
        feats = np.stack([np.asarray(v, dtype=np.float64) for v in values]) if values else np.zeros((0, 1))
        n = len(feats)
        if n < 2:
            return {self.name: {"value": None, "n": n, "ci": None, "lower_is_better": True, "note": "fewer than 2 images"}}
        total, outer, n_ref = self.reference_sums()
        mu_r, s_r = stats_from_sums(total, outer, n_ref)
        mu_g, s_g = gaussian_stats(feats)
        value = frechet_distance_from_stats(mu_r, s_r, mu_g, s_g, sqrtm=self.sqrtm)
        n_boot = self.bootstrap if self.bootstrap is not None else (100 if feats.shape[1] <= 1024 else 0)
        ci = None
        if n_boot > 0:
            rng = np.random.default_rng(0)
            s1 = _sqrt_psd(s_r)
            boots = []
            for _ in range(n_boot):
                sample = feats[rng.integers(0, n, n)]
                mu, s = gaussian_stats(sample)
                m = s1 @ s @ s1
                tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
                boots.append(float((mu_r - mu) @ (mu_r - mu) + np.trace(s_r) + np.trace(s) - 2 * tr))
            # basic (reverse-percentile) interval: resampling with replacement duplicates images,
            # which biases every resampled FID upward; reflecting the quantiles about the estimate
            # cancels that shift (a percentile interval would often exclude the estimate itself)
            lo, hi = np.quantile(boots, 0.025), np.quantile(boots, 0.975)
            ci = [float(max(2 * value - hi, 0.0)), float(max(2 * value - lo, 0.0))]
        return {
            self.name: {
                "value": value,
                "n": n,
                "n_reference": n_ref,
                "ci": ci,
                "ci_method": f"basic bootstrap over generated images ({n_boot})" if ci else None,
                "lower_is_better": True,
            }
        }

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        """FID of resampled generated sets against the fixed reference (paired deltas); none above
        1024-d features unless ``bootstrap`` asks (an eigendecomposition per resample)."""
        feats = np.stack([np.asarray(v, dtype=np.float64) for v in values]) if values else np.zeros((0, 1))
        if len(feats) < 2 or (self.bootstrap is None and feats.shape[1] > 1024) or self.bootstrap == 0:
            return {}
        total, outer, n_ref = self.reference_sums()
        mu_r, s_r = stats_from_sums(total, outer, n_ref)
        s1, tr_r = _sqrt_psd(s_r), float(np.trace(s_r))

        def stat(pos: np.ndarray) -> np.ndarray:
            out = np.empty(len(pos))
            for b, row in enumerate(np.atleast_2d(pos)):
                mu, s = gaussian_stats(feats[row])
                m = s1 @ s @ s1
                tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
                out[b] = (mu_r - mu) @ (mu_r - mu) + tr_r + np.trace(s) - 2 * tr
            return out

        return {self.name: ColumnSample(np.arange(len(feats)), stat)}
