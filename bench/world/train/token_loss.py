"""A token-level objective for the text tower: each object's words carry that object, not the others.

On varied object captions (``captions.varied_caption``) with known word positions, read the
last hidden states (after the final layer norm: what the UNet cross-attends to):

- **own**: linear heads predict each object's colour from its colour word and from its noun, and
  its shape from its noun (cross-entropy);
- **leak**: for every later object of a caption, the share of its colour word's and noun's state
  variance explained by an earlier object's colour (and, for the noun, shape) is penalised. The
  share is the in-batch R² of a one-hot fit, i.e. between-group over total variance; it is the
  quantity ``world.text_probe`` measures on held-out captions.

A causal text tower cannot leak later objects into earlier words, so only earlier-into-later
leakage exists; it is what makes "a red square and a blue circle" read as a purple circle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..render import COLORS, SHAPES, sample_objects
from .captions import SpannedCaption, token_positions, varied_caption


class TokenHeads(nn.Module):
    """Linear read-outs of a token state: colour logits (len(COLORS)) and shape logits (len(SHAPES))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.color = nn.Linear(width, len(COLORS))
        self.shape = nn.Linear(width, len(SHAPES))


def between_share(states: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Between-group variance over total variance of ``states`` (M, D) grouped by ``groups`` (M,)
    (the in-sample R² of a one-hot fit); 0 when there are fewer than two rows."""
    if states.shape[0] < 2:
        return states.sum() * 0.0
    centred = states - states.mean(0)
    total = centred.pow(2).sum().clamp_min(1e-8)
    onehot = F.one_hot(groups, int(groups.max()) + 1).to(states.dtype)
    counts = onehot.sum(0).clamp_min(1.0)
    means = (onehot.t() @ centred) / counts[:, None]
    return (counts[:, None] * means.pow(2)).sum() / total


def object_caption_batch(n: int, rng: np.random.Generator) -> list[SpannedCaption]:
    """``n`` varied captions of scenes with 2 (60 %), 3 (25 %) or 1 (15 %) objects (labels only)."""
    out = []
    for _ in range(n):
        k = int(rng.choice([1, 2, 3], p=[0.15, 0.6, 0.25]))
        out.append(varied_caption(sample_objects(rng, n_objects=k, background=("day", "night")[int(rng.random() < 0.4)]), rng))
    return out


def token_loss(text_model: Any, heads: TokenHeads, tokenizer: Any, captions: list[SpannedCaption],
               leak_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, scalars to log) of one batch of captions; see the module docstring."""
    device = heads.color.weight.device
    ids = tokenizer([c.text for c in captions], padding=True, return_tensors="pt").input_ids.to(device)
    hidden = text_model(input_ids=ids).last_hidden_state  # (B, L, D)
    own_c_rows, own_c_lab, own_s_rows, own_s_lab = [], [], [], []
    leak: dict[str, tuple[list[tuple[int, int]], list[int]]] = {
        "adj_color": ([], []), "noun_color": ([], []), "noun_shape": ([], [])}
    for b, cap in enumerate(captions):
        pos = token_positions(tokenizer, cap.words)
        for j, obj in enumerate(cap.objects):
            noun = pos[obj.noun]
            own_s_rows.append((b, noun))
            own_s_lab.append(obj.shape)
            if obj.color is not None and obj.adj is not None:
                own_c_rows += [(b, pos[obj.adj]), (b, noun)]
                own_c_lab += [obj.color, obj.color]
            for earlier in cap.objects[:j]:
                if earlier.color is not None:
                    if obj.adj is not None:
                        leak["adj_color"][0].append((b, pos[obj.adj]))
                        leak["adj_color"][1].append(earlier.color)
                    leak["noun_color"][0].append((b, noun))
                    leak["noun_color"][1].append(earlier.color)
                leak["noun_shape"][0].append((b, noun))
                leak["noun_shape"][1].append(earlier.shape)

    def gather(rows: list[tuple[int, int]]) -> torch.Tensor:
        idx = torch.tensor(rows, device=device).reshape(-1, 2)
        return hidden[idx[:, 0], idx[:, 1]]

    def labels(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, device=device, dtype=torch.long)

    own = F.cross_entropy(heads.color(gather(own_c_rows)), labels(own_c_lab)) if own_c_rows else hidden.sum() * 0
    own = own + F.cross_entropy(heads.shape(gather(own_s_rows)), labels(own_s_lab))
    shares = {k: between_share(gather(rows), labels(lab)) for k, (rows, lab) in leak.items() if len(rows) >= 2}
    leak_total = sum(shares.values(), hidden.sum() * 0)
    stats = {"tok_own": float(own.detach()), **{f"leak_{k}": float(v.detach()) for k, v in shares.items()}}
    return own + leak_weight * leak_total, stats
