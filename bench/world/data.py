"""Batches of tinyworld renders as tensors, and the seed ranges that keep splits apart.

Seed ranges (disjoint, so "held-out" means never rendered for training):
- ``TRAIN_BASE`` + i: training renders (each stage offsets by its own ``STAGE_OFFSET``);
- ``HELDOUT_BASE`` + i: held-out renders (evaluation, Fréchet-distance references);
- ``REFERENCE_BASE`` + i: balanced reference sets per tSA category (ITI-GEN, classifier accuracy).

Images as tensors are float32 (N, 3, 64, 64) in [0, 1] unless said otherwise.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .render import render

TRAIN_BASE = 0
HELDOUT_BASE = 1_000_000_000
REFERENCE_BASE = 2_000_000_000
STAGE_OFFSET = {"clip": 0, "vae": 100_000_000, "evaluator": 200_000_000, "unet": 300_000_000}

#: OpenAI CLIP's pixel normalisation (also written into the tiny CLIP's preprocessor config)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def clip_normalize(images01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CLIP_MEAN, device=images01.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images01.device).view(1, 3, 1, 1)
    return (images01 - mean) / std


def render_tensors(seeds: Sequence[int], family: str | None = None, **kw: Any):
    """(images float (N,3,64,64) in [0,1], captions per image, labels per image)."""
    rs = [render(int(s), family, **kw) for s in seeds]
    return to_tensor(np.stack([r.image for r in rs])), [r.captions for r in rs], [r.labels for r in rs]


def mixed_batch(base: int, n: int, face_dist: str = "biased", face_share: float = 0.5):
    """``n`` renders, the first ``round(n * face_share)`` faces, the rest object scenes."""
    nf = int(round(n * face_share))
    fi, fc, fl = render_tensors(range(base, base + nf), "face", face_dist=face_dist) if nf else (None, [], [])
    oi, oc, ol = render_tensors(range(base + nf, base + n), "objects") if n - nf else (None, [], [])
    imgs = torch.cat([t for t in (fi, oi) if t is not None])
    return imgs, fc + oc, fl + ol
