"""Statistics of 2-D attention maps: amplitude and spatial central moments.

FairQueue characterises per-token cross-attention maps with amplitude statistics (how much
attention a token receives) and spatial central moments (where and how spread out). This module
computes both for one map or a stack of maps, with no model involved.

Conventions (the CSV columns of ``t2ibench analyze switch`` use these names):

- A map ``A`` is a non-negative ``(H, W)`` array (negative values are an error). Row index is
  ``y`` (top to bottom), column index ``x`` (left to right).
- Coordinates are normalised to the unit square: pixel ``(i, j)`` sits at
  ``x = (j + 0.5) / W``, ``y = (i + 0.5) / H``. Moments are therefore in image-width units and
  comparable across resolutions.
- The spatial distribution is ``p = A / A.sum()``. With an all-zero map the moments are NaN.
- ``mean``, ``max``, ``total`` are in the map's own units (attention probability mass, summed
  over whatever the caller aggregated). ``share`` is ``total / reference_total``; the caller gives
  the reference (e.g. the summed attention of all tokens on the same pixels), NaN without one.
- ``cx, cy``: centroid. ``var_x, var_y, cov_xy``: second central moments. ``spread`` =
  ``sqrt(var_x + var_y)`` (radius of gyration). ``skew_x, skew_y``: third standardised moments
  ``mu3 / sigma^3``. ``kurt_x, kurt_y``: fourth standardised moments ``mu4 / sigma^4``
  (Pearson's, 3 for a Gaussian, 1.8 for a continuous uniform; NOT excess kurtosis).
  A direction with zero variance has NaN skewness and kurtosis.
- ``entropy``: Shannon entropy of ``p`` in nats, divided by ``log(H*W)`` (1 = uniform, 0 = one
  pixel).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

#: The keys :func:`map_statistics` sets to NaN for a map with no mass (no centre, no spread).
MOMENT_STATS = ("cx", "cy", "var_x", "var_y", "cov_xy", "spread", "skew_x", "skew_y", "kurt_x", "kurt_y", "entropy")


def _as_map(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attention map must be 2-D (H, W); got shape {a.shape}")
    if np.any(a < 0):
        raise ValueError("attention map has negative values; expected non-negative mass")
    return a


def grid_coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates ``(x, y)``, each ``(H, W)``, in ``(0, 1)``."""
    ys = (np.arange(height, dtype=np.float64) + 0.5) / height
    xs = (np.arange(width, dtype=np.float64) + 0.5) / width
    return np.meshgrid(xs, ys)


def map_statistics(a: Any, reference_total: float | None = None) -> dict[str, float]:
    """Amplitude statistics and spatial moments of one non-negative 2-D map (see module doc)."""
    a = _as_map(a)
    h, w = a.shape
    total = float(a.sum())
    out: dict[str, float] = {
        "mean": float(a.mean()),
        "max": float(a.max()),
        "total": total,
        "share": (total / reference_total) if reference_total else float("nan"),
    }
    if total <= 0:
        out.update({k: float("nan") for k in MOMENT_STATS})
        return out
    p = a / total
    x, y = grid_coordinates(h, w)
    cx, cy = float((p * x).sum()), float((p * y).sum())
    dx, dy = x - cx, y - cy
    var_x, var_y = float((p * dx**2).sum()), float((p * dy**2).sum())
    cov_xy = float((p * dx * dy).sum())

    def standardised(d: np.ndarray, var: float, k: int) -> float:
        # relative threshold: variance that is rounding noise counts as zero
        if var <= 1e-12:
            return float("nan")
        return float((p * d**k).sum() / var ** (k / 2))

    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    n = h * w
    out.update(
        cx=cx, cy=cy, var_x=var_x, var_y=var_y, cov_xy=cov_xy,
        spread=math.sqrt(max(var_x + var_y, 0.0)),
        skew_x=standardised(dx, var_x, 3), skew_y=standardised(dy, var_y, 3),
        kurt_x=standardised(dx, var_x, 4), kurt_y=standardised(dy, var_y, 4),
        entropy=entropy / math.log(n) if n > 1 else 0.0,
    )
    return out


def token_statistics(maps: Mapping[str, Any] | Sequence[Any], share_of: str = "listed") -> list[dict[str, Any]]:
    """Statistics for several tokens' maps over the same pixels.

    ``maps``: ``{token label: (H, W) map}`` (or a sequence, labelled by index). ``share`` is each
    map's total over the summed total of all listed maps (``share_of="listed"``).
    Returns one dict per token: ``{"token": label, **map_statistics}``.
    """
    items = list(maps.items()) if isinstance(maps, Mapping) else [(str(i), m) for i, m in enumerate(maps)]
    arrays = [(k, _as_map(m)) for k, m in items]
    if share_of != "listed":
        raise ValueError(f"share_of: {share_of!r}; expected 'listed'")
    ref = float(sum(a.sum() for _, a in arrays))
    return [{"token": k, **map_statistics(a, reference_total=ref)} for k, a in arrays]


def box_mass_share(a: Any, box: Sequence[float], image_size: tuple[int, int] | None = None) -> float:
    """Share of a map's mass inside a box.

    ``box`` = ``(x0, y0, x1, y1)``; in pixels of an image of ``image_size = (H, W)`` when given,
    otherwise in normalised ``[0, 1]`` units. A pixel counts as inside when its centre is inside
    (``x0 <= x < x1``). Chance level for a uniform map is the box's area share.
    """
    a = _as_map(a)
    h, w = a.shape
    x0, y0, x1, y1 = map(float, box)
    if image_size is not None:
        ih, iw = image_size
        x0, x1, y0, y1 = x0 / iw, x1 / iw, y0 / ih, y1 / ih
    x, y = grid_coordinates(h, w)
    inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    total = a.sum()
    return float(a[inside].sum() / total) if total > 0 else float("nan")


def box_area_share(box: Sequence[float], map_shape: tuple[int, int], image_size: tuple[int, int] | None = None) -> float:
    """The share of a uniform map's mass inside ``box`` (chance level for :func:`box_mass_share`)."""
    return box_mass_share(np.ones(map_shape), box, image_size)
