"""Held-out sets and balanced reference sets, regenerated from seeds (never seen in training).

- ``heldout(n, family=None, face_dist="biased")``: renders from the held-out seed range
  (``data.HELDOUT_BASE``); the Fréchet-distance reference and the figures of ``world eval``.
- ``reference_set(tsa, category, n)``: faces whose ``tsa`` attribute is fixed to one category
  (others drawn from the training distribution): ITI-GEN references, classifier accuracy.
- ``balanced_faces(tsa, n)``: ``n`` faces, category ``i % K`` for image ``i`` (the FD of a
  perfectly balanced generator, measured through the same classifier).

All return ``(images uint8 (N, 64, 64, 3), captions, labels)``.
"""

from __future__ import annotations

import zlib

import numpy as np

from .data import HELDOUT_BASE, REFERENCE_BASE
from .evaluator import TSAS
from .render import render


def _stack(rs):
    return np.stack([r.image for r in rs]), [r.captions for r in rs], [r.labels for r in rs]


def heldout(n: int, family: str | None = None, face_dist: str = "biased", start: int = 0):
    fam_off = {None: 0, "objects": 100_000_000, "face": 200_000_000}[family]
    off = fam_off + (300_000_000 if face_dist == "uniform" else 0)
    return _stack([render(HELDOUT_BASE + off + start + i, family, face_dist=face_dist) for i in range(n)])


def _tsa_base(tsa: str) -> int:
    return REFERENCE_BASE + (zlib.crc32(tsa.encode()) % 1000) * 1_000_000


def reference_set(tsa: str, category: int, n: int, start: int = 0):
    spec = TSAS[tsa]
    value = spec["values"][category]
    base = _tsa_base(tsa) + category * 100_000
    return _stack([render(base + start + i, "face", face_attrs={spec["key"]: value}) for i in range(n)])


def balanced_faces(tsa: str, n: int, start: int = 0):
    spec = TSAS[tsa]
    k = len(spec["values"])
    base = _tsa_base(tsa) + 900_000
    return _stack([render(base + start + i, "face", face_attrs={spec["key"]: spec["values"][i % k]})
                   for i in range(n)])
