"""Naming and choosing the UNet's attention layers.

A layer is named by its processor key in ``unet.attn_processors``
(``"up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor"``). ``attn1`` is
self-attention, ``attn2`` cross-attention. ``level`` is the resolution level: 0 = the full
latent resolution, 1 = half of it, ... (down block ``i`` works at level ``i``, the mid block at
the lowest level, up block ``j`` at ``len(up_blocks) - 1 - j``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # "self" | "cross"
    block: str  # "down" | "mid" | "up"
    block_index: int
    level: int


def attention_layers(unet: Any) -> list[LayerInfo]:
    """Every attention layer of a ``UNet2DConditionModel`` with its kind, block and level."""
    n_down = len(unet.config.down_block_types)
    n_up = len(unet.config.up_block_types)
    out = []
    for name in unet.attn_processors:
        parts = name.split(".")
        kind = {"attn1": "self", "attn2": "cross"}.get(parts[-2], "other")
        if parts[0] == "down_blocks":
            block, index, level = "down", int(parts[1]), int(parts[1])
        elif parts[0] == "up_blocks":
            block, index = "up", int(parts[1])
            level = n_up - 1 - index
        elif parts[0] == "mid_block":
            block, index, level = "mid", 0, n_down - 1
        else:
            block, index, level = parts[0], 0, 0
        out.append(LayerInfo(name, kind, block, index, level))
    return out


@dataclass(frozen=True)
class LayerSelector:
    """Which layers a control acts on: kind, blocks, resolution levels (None = all levels).

    From a suite/method parameter: ``"cross"``, ``"self"``, or a mapping
    ``{kind: cross, blocks: [down, mid, up], levels: [0, 1]}``.
    """

    kind: str = "cross"
    blocks: tuple[str, ...] = ("down", "mid", "up")
    levels: tuple[int, ...] | None = None

    @classmethod
    def of(cls, spec: Any, default_kind: str = "cross") -> "LayerSelector":
        if spec is None:
            return cls(kind=default_kind)
        if isinstance(spec, LayerSelector):
            return spec
        if isinstance(spec, str):
            if spec in ("self", "cross"):
                return cls(kind=spec)
            raise ValueError(f"layer selector {spec!r}: expected 'self', 'cross' or a mapping")
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"kind", "blocks", "levels"}
            if unknown:
                raise ValueError(f"layer selector: unknown keys {sorted(unknown)}; expected kind, blocks, levels")
            levels = spec.get("levels")
            return cls(
                kind=str(spec.get("kind", default_kind)),
                blocks=tuple(spec.get("blocks", ("down", "mid", "up"))),
                levels=None if levels is None else tuple(int(v) for v in levels),
            )
        raise ValueError(f"layer selector {spec!r}: expected 'self', 'cross' or a mapping")

    def select(self, unet: Any) -> list[LayerInfo]:
        return [
            info
            for info in attention_layers(unet)
            if info.kind == self.kind
            and info.block in self.blocks
            and (self.levels is None or info.level in self.levels)
        ]


def spatial_shape(n_query: int, level: int, latent_hw: tuple[int, int] | None) -> tuple[int, int]:
    """(h, w) of a layer's ``n_query`` patches: the latent size halved (ceil) ``level`` times."""
    if latent_hw is not None:
        h, w = latent_hw
        for _ in range(level):
            h, w = (h + 1) // 2, (w + 1) // 2
        if h * w == n_query:
            return h, w
        # the level guess failed (unusual UNet): search for the power-of-two factor
        H, W = latent_hw
        for f in (1, 2, 4, 8, 16, 32, 64):
            h, w = math.ceil(H / f), math.ceil(W / f)
            if h * w == n_query:
                return h, w
    side = int(round(math.sqrt(n_query)))
    if side * side != n_query:
        raise ValueError(f"cannot reshape {n_query} patches into a map; give the latent size")
    return side, side


def names(layers: Iterable[LayerInfo]) -> list[str]:
    return [info.name for info in layers]
