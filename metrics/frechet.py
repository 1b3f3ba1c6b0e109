"""Fréchet distance (FID) as a torchmetrics Metric and as the ``fid`` scorer for run directories.

:class:`FrechetDistance` subclasses torchmetrics' ``FrechetInceptionDistance`` (same float64
states Σx, Σxxᵀ, n, merged across ranks with ``dist_reduce_fx="sum"``) with any feature network,
explicit preprocessing and a float64 result. :class:`FIDScorer` scores generated images against a
cached reference set, with a bootstrap interval for the expected FID at the run's number of
images. The maths is in
:mod:`~t2ibench.metrics.frechet_math`, preprocessing (which FID resize) in
:mod:`~t2ibench.metrics.fid_preprocess`, networks in :mod:`~t2ibench.metrics.fid_networks`, the
reference statistics cache in :mod:`~t2ibench.metrics.fid_stats_cache`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid

from t2ibench.metrics.common import ColumnSample, NotAvailable, Scorer, wrap_updates
from t2ibench.metrics.fid_networks import network_features, resolve_network
from t2ibench.metrics.fid_preprocess import Preprocess
from t2ibench.metrics.fid_stats_cache import ReferenceStats, load_reference_images
from t2ibench.metrics.frechet_math import frechet_distance_from_stats, gaussian_stats, sqrt_psd, stats_from_sums

# --------------------------------------------------------------------------------------------
# The torchmetrics Metric


class FrechetDistance(FrechetInceptionDistance):
    """FID with any feature network, explicit preprocessing, float64 result, and cached-feature input.

    ``update(images, real)``: images as a float tensor (B, 3, H, W) in [0, 1] (already at the
    network's size) or a list of PIL images (then ``preprocess`` is applied).
    ``update_features(features, real)``: precomputed features (B, d).
    ``update_sums(total, outer, n, real)``: precomputed sums Σx (d,), Σxxᵀ (d, d) over n images
    (a cached reference set).
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
        wrap_updates(self, "update_features", "update_sums")

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
        self.update_sums(features.sum(dim=0), features.t().mm(features), features.shape[0], real)

    def update_sums(self, total: Any, outer: Any, n: int, real: bool) -> None:
        prefix = "real" if real else "fake"
        total, outer = (torch.as_tensor(a, dtype=torch.float64) for a in (total, outer))
        setattr(self, f"{prefix}_features_sum", getattr(self, f"{prefix}_features_sum") + total)
        setattr(self, f"{prefix}_features_cov_sum", getattr(self, f"{prefix}_features_cov_sum") + outer)
        setattr(self, f"{prefix}_features_num_samples", getattr(self, f"{prefix}_features_num_samples") + int(n))

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
# The scorer for run directories


def fid_interval(value: float, resampled: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """95 % interval for the expected FID at this number of images n (what reruns with other seeds
    would average), from FIDs of B resamples of the generated set: the spread of the resamples
    about their median, reflected about ``value``: [value − (q_hi − median), value + (median − q_lo)],
    floored at 0. It always contains ``value``.

    Resampling with replacement duplicates images and raises every resampled FID (by about as
    much as FID at n exceeds FID at infinitely many images), so the centre of the resamples is
    not used, only their spread. The basic bootstrap (2·value − q) reflects about ``value``
    instead: it targets FID at infinitely many images, and where that bias exceeds the spread
    it excluded the reported value (e.g. ``17.7 [0, 17.2]``). Coverage of the expected FID by
    seeded simulation on Gaussian features: tests/metrics/test_fid_interval.py.
    """
    alpha = (1.0 - level) / 2.0
    lo, mid, hi = (float(x) for x in np.quantile(resampled, [alpha, 0.5, 1.0 - alpha]))
    return max(value - (hi - mid), 0.0), value + (mid - lo)


class FIDScorer(Scorer):
    """Fréchet distance of each (method, prompt set) against a reference set.

    params: ``network`` ("inception-v3" | "tinyworld-clip" | "module:callable"), ``reference``
    (image directory or "module:callable"), ``reference_params``, ``resize`` ("clean" |
    "pytorch-fid"), ``crop`` ("center": centre-crop to a square first; "none": resize the whole
    image, as clean-fid does), ``size`` (default: the network's ``image_size`` or 299), ``sqrtm``,
    ``bootstrap`` (resamples of the generated set for the 95 % interval, see ``fid_interval``; default 100
    for d ≤ 1024, else 0 = no interval), ``cache_dir``.
    """

    network_attributes = ("_network",)
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
        crop: str = "center",
        size: int | None = None,
        sqrtm: str = "eigh",
        bootstrap: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self.network_spec = network
        self.reference = reference
        self.reference_params = dict(reference_params or {})
        if crop not in ("center", "none"):
            raise ValueError(f"crop {crop!r}; expected 'center' or 'none'")
        self.resize = resize
        self.crop = crop
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
            self._network = self.place(resolve_network(self.network_spec))
        return self._network

    @property
    def preprocess(self) -> Preprocess:
        size = self.size or int(getattr(self.network, "image_size", 299))
        return Preprocess(size=size, resize=self.resize, crop=self.crop == "center")

    def check_available(self) -> None:
        if self.reference is None:
            raise NotAvailable("no reference set given (params.reference)")
        _ = self.network  # loading it raises NotAvailable when weights are missing

    def network_name(self) -> str:
        return str(getattr(self.network, "name", type(self.network).__name__))

    def config(self) -> dict[str, Any]:
        return {"network": self.network_name(), "preprocess": asdict(self.preprocess)}

    def conventions(self) -> dict[str, Any]:
        resamples = "100 resamples; none above 1024-d features" if self.bootstrap is None else f"{self.bootstrap} resamples"
        return {
            "network": self.network_name(),
            "preprocess": self.preprocess.describe()
                          + ("; quantised to uint8 for the network (clean-fid keeps floats)" if getattr(self.network, "quantizes", False) else ""),
            "variant": self.variant(),
            "statistics": "float64 sums, unbiased covariance",
            "sqrtm": self.sqrtm,
            "reference": str(self.reference) + (f" {self.reference_params}" if self.reference_params else ""),
            "interval": "95% interval for the expected FID at this number of images: spread of a bootstrap over the "
                        f"generated images about its median ({resamples})",
        }

    def variant(self) -> str:
        """Which published FID implementation this number corresponds to (network aside)."""
        if self.resize == "pytorch-fid":
            return "pytorch-fid / clean-fid legacy_pytorch preprocessing"
        pre = self.preprocess
        if getattr(self.network, "clean_fid", False) and pre.clamp and pre.size == 299:
            if pre.crop:
                return ("clean-fid 'clean' (its TorchScript Inception on float input) after a centre crop: equal to "
                        "clean-fid for square images; clean-fid resizes non-square images whole (crop: none)")
            return "clean-fid 'clean' (its TorchScript Inception on float input): equal to clean-fid"
        if getattr(self.network, "quantizes", False):
            return "clean-fid 'clean' resize, then quantised to uint8 for the network (close to, not equal to, clean-fid)"
        return "clean-fid 'clean' preprocessing (float, clipped, unquantised) with another network (close to clean-fid)"

    def score(self, images, metas):
        return list(network_features(self.network, self.preprocess(images)))

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

    def _features(self, values) -> np.ndarray:
        """The per-image features as one (n, d) float64 array."""
        return np.stack([np.asarray(v, dtype=np.float64) for v in values]) if values else np.zeros((0, 1))

    def _resamples(self, dim: int) -> int:
        """Bootstrap resamples for d-dimensional features: ``bootstrap``, else 100 up to 1024-d and
        none above (an eigendecomposition per resample)."""
        return self.bootstrap if self.bootstrap is not None else (100 if dim <= 1024 else 0)

    def _resampled_fid(self, feats: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """positions (B, m) into ``feats`` → (B,) FID of each resampled set against the reference."""
        total, outer, n_ref = self.reference_sums()
        mu_r, s_r = stats_from_sums(total, outer, n_ref)
        s1, tr_r = sqrt_psd(s_r), float(np.trace(s_r))

        def stat(pos: np.ndarray) -> np.ndarray:
            out = np.empty(len(pos))
            for b, row in enumerate(np.atleast_2d(pos)):
                mu, s = gaussian_stats(feats[row])
                m = s1 @ s @ s1
                tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
                out[b] = (mu_r - mu) @ (mu_r - mu) + tr_r + np.trace(s) - 2 * tr
            return out

        return stat

    def aggregate(self, values, metas):
        """``fid`` from the generated features' centred covariance (``np.cov``), not from
        :class:`FrechetDistance`'s running sums: Σxxᵀ − nμμᵀ cancels on features far from zero mean
        (about 1e-8 relative on tinyworld's CLIP features), the centred form does not."""
        feats = self._features(values)
        n = len(feats)
        if n < 2:
            return {self.name: {"value": None, "n": n, "ci": None, "lower_is_better": True, "note": "fewer than 2 images"}}
        total, outer, n_ref = self.reference_sums()
        mu_r, s_r = stats_from_sums(total, outer, n_ref)
        mu_g, s_g = gaussian_stats(feats)
        value = frechet_distance_from_stats(mu_r, s_r, mu_g, s_g, sqrtm=self.sqrtm)
        n_boot = self._resamples(feats.shape[1])
        ci = None
        if n_boot > 0:
            resamples = np.random.default_rng(0).integers(0, n, (n_boot, n))
            ci = list(fid_interval(value, self._resampled_fid(feats)(resamples)))
        return {
            self.name: {
                "value": value,
                "n": n,
                "n_reference": n_ref,
                "ci": ci,
                "ci_method": f"bootstrap about the median, expected FID at n ({n_boot})" if ci else None,
                "lower_is_better": True,
            }
        }

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        """FID of resampled generated sets against the fixed reference (paired deltas); none above
        1024-d features unless ``bootstrap`` asks (an eigendecomposition per resample)."""
        feats = self._features(values)
        if len(feats) < 2 or self._resamples(feats.shape[1]) == 0:
            return {}
        return {self.name: ColumnSample(np.arange(len(feats)), self._resampled_fid(feats))}
