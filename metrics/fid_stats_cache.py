"""FID reference sets and their statistics on disk: loading reference images, caching feature sums.

Reference images come from an image directory (sorted) or ``module:callable``. Their statistics
are float64 running sums (Σx (d,), Σxxᵀ (d, d), count n) so memory is O(d²) whatever the number
of images, cached under ``<cache>/fid-stats/`` ($T2IBENCH_CACHE, default ~/.cache/t2ibench)
keyed by (image content hashes, network name, preprocessing).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np
from torch import nn

from t2ibench.fileio import atomic_write_bytes
from t2ibench.metrics.common import NotAvailable, config_hash
from t2ibench.metrics.fid_networks import network_features
from t2ibench.metrics.fid_preprocess import Preprocess
from t2ibench.metrics.frechet_math import as_float64


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
        buf = io.BytesIO()
        np.savez(buf, sum=as_float64(total), outer=as_float64(outer), n=np.int64(n))
        atomic_write_bytes(self.path(key), buf.getvalue())
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
        # feature networks carry num_features (see FrechetDistance); nn.Module does not declare it
        d = int(cast(Any, network).num_features)
        total, outer, n = np.zeros(d), np.zeros((d, d)), 0
        for i in range(0, len(images), batch_size):
            f = network_features(network, preprocess(images[i : i + batch_size]))
            total += f.sum(0)
            outer += f.T @ f
            n += len(f)
        self.save(key, total, outer, n)
        return total, outer, n


def load_reference_images(spec: str | Path, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Reference images: a directory of image files (sorted) or ``module:callable(**params)`` → PIL list."""
    from PIL import Image

    s = str(spec)
    if ":" in s and not Path(s).exists():
        from t2ibench.registry import REFERENCE_SETS

        fn = REFERENCE_SETS.get(s)
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
