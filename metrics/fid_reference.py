"""FID against precomputed reference statistics, and FID per tSA (the fairness papers' tables).

- :func:`load_reference_stats`: a clean-fid or pytorch-fid ``.npz`` with ``mu`` (d,) and
  ``sigma`` (d, d) (clean-fid's ``<name>_<mode>_<split>_<res>.npz`` stats and pytorch-fid's
  ``--save-stats`` output both use these keys), as float64. The image count is not stored in
  those files: it is reported as None.
- :class:`FIDPerTSAScorer` (``fid_tsa``): the ``fid`` scorer (same network, preprocessing and
  distance) whose ``reference`` may also be such an ``.npz``, with one column per tSA of a
  fairness prompt set (``fid:<tsa>``, the images of that tSA only; ITI-GEN and FairQueue report
  FID per tSA) and the pooled ``fid`` over all images. With an ``.npz`` the statistics must
  come from the same network and preprocessing as the generated images' features (clean-fid
  FFHQ stats: Inception-v3 with ``resize: clean``); the scorer checks the dimension only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, TypeGuard

import numpy as np

from t2ibench.errors import UserError
from t2ibench.metrics.common import NotAvailable
from t2ibench.metrics.frechet import FIDScorer
from t2ibench.metrics.frechet_math import frechet_distance_from_stats, gaussian_stats

#: nominal count used to express (μ, Σ) as running sums; stats_from_sums returns μ, Σ exactly for any n ≥ 2
_NOMINAL_N = 1_000_000


def load_reference_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(μ (d,), Σ (d, d)) float64 from a clean-fid / pytorch-fid ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"FID reference statistics {path} not found; expected a .npz with mu and sigma (clean-fid or pytorch-fid)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "mu" not in data or "sigma" not in data:
                raise UserError(f"FID reference statistics {path}: keys {sorted(data.files)}; expected mu and sigma")
            mu, sigma = np.asarray(data["mu"], dtype=np.float64), np.asarray(data["sigma"], dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise UserError(f"FID reference statistics {path}: not a readable .npz ({exc}); expected mu and sigma") from exc
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(f"FID reference statistics {path}: mu {mu.shape}, sigma {sigma.shape}; expected (d,) and (d, d)")
    return mu, sigma


def is_stats_file(reference: Any) -> TypeGuard[str | Path]:
    return isinstance(reference, (str, Path)) and str(reference).endswith(".npz")


class FIDPerTSAScorer(FIDScorer):
    """``fid`` per tSA (``fid:<tsa>``) and pooled (``fid``); ``reference`` may be an ``.npz`` of (μ, Σ)."""

    name = "fid"

    def check_available(self) -> None:
        if is_stats_file(self.reference):
            load_reference_stats(self.reference)
            _ = self.network  # loading it raises NotAvailable when weights are missing
            return
        super().check_available()

    def conventions(self) -> dict[str, Any]:
        out = super().conventions()
        out["grouping"] = "per tSA (fid:<tsa>) and pooled (fid)"
        if is_stats_file(self.reference):
            out["reference"] = f"precomputed statistics {self.reference} (mu, sigma)"
        return out

    def reference_sums(self) -> tuple[np.ndarray, np.ndarray, int]:
        if not is_stats_file(self.reference):
            return super().reference_sums()
        if getattr(self, "_ref_sums", None) is None:
            mu, sigma = load_reference_stats(self.reference)
            n = _NOMINAL_N
            self._ref_sums = (mu * n, sigma * (n - 1) + n * np.outer(mu, mu), n)
        return self._ref_sums

    def _one(self, feats: np.ndarray) -> dict[str, Any]:
        n = len(feats)
        if n < 2:
            return {"value": None, "n": n, "ci": None, "lower_is_better": True, "note": "fewer than 2 images"}
        total, outer, n_ref = self.reference_sums()
        mu_r = total / n_ref
        s_r = (outer - n_ref * np.outer(mu_r, mu_r)) / (n_ref - 1)
        if mu_r.shape[0] != feats.shape[1]:
            raise NotAvailable(f"reference statistics are {mu_r.shape[0]}-d, the network gives {feats.shape[1]}-d features")
        mu_g, s_g = gaussian_stats(feats)
        return {
            "value": frechet_distance_from_stats(mu_r, s_r, mu_g, s_g, sqrtm=self.sqrtm), "n": n,
            "n_reference": None if is_stats_file(self.reference) else n_ref, "ci": None, "lower_is_better": True,
        }

    def aggregate(self, values, metas):
        by_tsa: dict[str, list[np.ndarray]] = defaultdict(list)
        for v, m in zip(values, metas, strict=True):
            pm: Mapping[str, Any] = m.get("prompt_meta") or {}
            by_tsa[str(pm.get("tsa") or m.get("prompt_id"))].append(np.asarray(v, dtype=np.float64))
        out: dict[str, dict[str, Any]] = {}
        pooled = [f for fs in by_tsa.values() for f in fs]
        out[self.name] = self._one(np.stack(pooled) if pooled else np.zeros((0, 1)))
        for tsa, feats in sorted(by_tsa.items()):
            out[f"{self.name}:{tsa}"] = self._one(np.stack(feats))
        return out
