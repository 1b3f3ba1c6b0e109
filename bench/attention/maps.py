"""Cross-attention map capture, per token, layer and step, aggregated DAAM style.

Only the captured layers compute probabilities, and only for the conditional rows at the
captured steps (``softmax(q kᵀ · scale)``, then ``probs @ v``); the unconditional rows and
every other layer keep SDPA. (The captured rows' outputs equal SDPA's up to float rounding.)

Aggregation (``aggregation``):

- ``"daam"`` (default; castorini/daam ``trace.py`` and FairQueue's ``Analysis_Code/daam``):
  layers whose latent downscale factor is in ``skip_factors`` (8: the 8x8 layers of SD at
  512 px) are skipped; each head's map is upsampled bicubically to the latent resolution (or
  ``resolution``) and clamped at 0; ``aggregate`` returns the mean over heads, layers and the
  chosen steps (a map value is a mean attention probability).
- ``"sum"`` (t2ibench's earlier figures): every captured layer, maps summed over heads,
  bilinear upsampling, summed over layers and steps.

Shapes: ``(B, T, H, W)`` with B the prompts of the call (conditional rows), T the kept token
positions (all 77 by default, position 0 = start-of-text). ``per_step[s]`` holds the step's sum
(``"daam"``: over heads and layers, with ``map_counts[s]`` maps in it).

Usage::

    from t2ibench.attention import CrossAttentionMaps
    maps = CrossAttentionMaps(pipe, layers="cross", steps=None)      # all cross-attn layers, all steps
    out = maps.run(prompt=["a red cube and a blue ball"], num_inference_steps=25, generator=g)
    heat = maps.aggregate()                    # (B, 77, H, W), summed over steps, layers, heads
    early = maps.aggregate(steps=range(0, 5))  # a step range
    per_step = maps.per_step                   # {step: (B, 77, H, W)}
    words = token_labels(pipe.tokenizer, "a red cube and a blue ball")  # [(position, token)]
    img_maps = maps.heatmaps(size=(512, 512), normalize=True)  # upsampled to the image, per token in [0, 1]

Or by hand (e.g. beside a prompt switch): ``maps.begin(num_steps, height, width)``;
``with maps.installed(): pipe(..., callback_on_step_end=maps.callback)``. It can also be added
as one control to another ``AttentionController`` (``ctl.add(maps)``; then ``maps.state`` is
that controller's). ``keep_layers=True`` keeps every (step, layer) map at its own resolution in
``per_layer``; ``tokens=[...]`` keeps only those positions (less memory); ``maps.reset()``
clears what was captured.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F

from .processor import AttentionControl, AttentionController, LayerCall


class CrossAttentionMaps(AttentionControl):
    needs_probs = True

    def __init__(
        self,
        pipe: Any = None,
        layers: Any = "cross",
        steps: Any = None,
        tokens: Sequence[int] | None = None,
        keep_layers: bool = False,
        resolution: tuple[int, int] | None = None,
        aggregation: str = "daam",
        skip_factors: Sequence[int] = (8,),
    ) -> None:
        if aggregation not in ("daam", "sum"):
            raise ValueError(f"aggregation must be 'daam' or 'sum', got {aggregation!r}")
        super().__init__(layers, steps)
        self.aggregation = aggregation
        self.skip_factors = {int(f) for f in skip_factors}
        self.map_counts: dict[int, int] = {}
        self.tokens = None if tokens is None else list(tokens)
        self.keep_layers = keep_layers
        self.resolution = resolution
        self.per_step: dict[int, torch.Tensor] = {}
        self.layer_counts: dict[int, int] = {}
        self.per_layer: dict[tuple[int, str], torch.Tensor] = {}
        self._controller = AttentionController(pipe, [self]) if pipe is not None else None

    # capture -----------------------------------------------------------------------------
    def observe(self, call: LayerCall, probs: torch.Tensor) -> None:
        if self.aggregation == "daam":
            self._observe_daam(call, probs)
            return
        h, w = call.hw
        maps = probs.detach().float().sum(1)  # (B, N, T), summed over heads
        if self.tokens is not None:
            maps = maps[..., self.tokens]
        maps = maps.transpose(1, 2).reshape(maps.shape[0], maps.shape[2], h, w)
        if self.keep_layers:
            self.per_layer[(call.step, call.layer.name)] = maps.cpu().clone()
        target = self.resolution or call.latent_hw or (h, w)
        if (h, w) != tuple(target):
            maps = F.interpolate(maps, size=tuple(target), mode="bilinear", align_corners=False)
        maps = maps.cpu()
        if call.step in self.per_step:
            self.per_step[call.step] += maps
        else:
            self.per_step[call.step] = maps.clone()
        self.layer_counts[call.step] = self.layer_counts.get(call.step, 0) + 1
        self.map_counts[call.step] = self.map_counts.get(call.step, 0) + 1

    def _observe_daam(self, call: LayerCall, probs: torch.Tensor) -> None:
        h, w = call.hw
        target = tuple(self.resolution or call.latent_hw or (h, w))
        latent = call.latent_hw or (h, w)
        factor = int(round(math.sqrt(latent[0] * latent[1] / (h * w))))
        if factor in self.skip_factors:
            return
        p = probs.detach().float()  # (B, heads, N, T)
        if self.tokens is not None:
            p = p[..., self.tokens]
        b, heads, _, t = p.shape
        maps = p.transpose(2, 3).reshape(b * heads, t, h, w)
        if self.keep_layers:
            self.per_layer[(call.step, call.layer.name)] = maps.reshape(b, heads, t, h, w).sum(1).cpu().clone()
        if (h, w) != target:
            maps = F.interpolate(maps, size=target, mode="bicubic", align_corners=False)
        maps = maps.clamp_(min=0).reshape(b, heads, t, *target).sum(1).cpu()
        if call.step in self.per_step:
            self.per_step[call.step] += maps
        else:
            self.per_step[call.step] = maps.clone()
        self.layer_counts[call.step] = self.layer_counts.get(call.step, 0) + 1
        self.map_counts[call.step] = self.map_counts.get(call.step, 0) + heads

    def reset(self) -> None:
        self.map_counts.clear()
        self.per_step.clear()
        self.layer_counts.clear()
        self.per_layer.clear()

    # results ------------------------------------------------------------------------------
    def aggregate(self, steps: Iterable[int] | None = None, layers: Iterable[str] | None = None) -> torch.Tensor:
        """(B, T, H, W) over the given steps (default all): ``"daam"``: the mean over heads, layers and
        steps; ``"sum"``: the sum. With ``layers`` (needs ``keep_layers``): the sum of those layers' raw maps."""
        if layers is not None:
            if not self.keep_layers:
                raise ValueError("per-layer aggregation needs keep_layers=True")
            wanted = set(layers)
            chosen = None if steps is None else set(steps)
            total = None
            for (step, name), m in self.per_layer.items():
                if name in wanted and (chosen is None or step in chosen):
                    target = self.resolution or self.state_latent_hw() or m.shape[-2:]
                    if tuple(m.shape[-2:]) != tuple(target):
                        m = F.interpolate(m, size=tuple(target), mode="bilinear", align_corners=False)
                    total = m.clone() if total is None else total + m
            if total is None:
                raise ValueError("no captured maps for those layers/steps")
            return total
        keys = sorted(self.per_step) if steps is None else [s for s in steps if s in self.per_step]
        if not keys:
            raise ValueError("no captured maps for those steps")
        total = self.per_step[keys[0]].clone()
        for s in keys[1:]:
            total += self.per_step[s]
        if self.aggregation == "daam":
            total /= max(1, sum(self.map_counts.get(s, 0) for s in keys))
        return total

    def heatmaps(self, size: tuple[int, int] | None = None, steps: Iterable[int] | None = None, normalize: bool = True) -> torch.Tensor:
        """(B, T, h, w) aggregated maps upsampled (bilinear) to ``size``; each map min-max scaled to [0, 1]."""
        m = self.aggregate(steps)
        if size is not None:
            m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
        if normalize:
            lo = m.amin(dim=(-2, -1), keepdim=True)
            hi = m.amax(dim=(-2, -1), keepdim=True)
            m = (m - lo) / (hi - lo).clamp_min(1e-12)
        return m

    def state_latent_hw(self):
        return self._controller.state.latent_hw if self._controller is not None else None

    # running ------------------------------------------------------------------------------
    def _need_controller(self) -> AttentionController:
        if self._controller is None:
            raise ValueError("CrossAttentionMaps(pipe=None): give the pipeline to run it on its own")
        return self._controller

    def run(self, **pipe_kwargs: Any) -> Any:
        """Call the pipeline with capture installed (earlier captures cleared); returns its output."""
        self.reset()
        return self._need_controller()(**pipe_kwargs)

    def begin(self, num_steps: int, height: int | None = None, width: int | None = None, cfg: bool | None = None) -> None:
        """Clear earlier captures and reset the step counter before a hand-made pipeline call."""
        self.reset()
        self._need_controller().begin(num_steps, height, width, cfg)

    def installed(self):
        return self._need_controller().installed()

    def callback(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        return self._need_controller().callback(pipe, step, timestep, callback_kwargs)


def token_labels(tokenizer: Any, text: str) -> list[tuple[int, str]]:
    """``[(position, token string)]`` of ``text`` as the pipeline tokenizes it (with start/end tokens)."""
    ids = tokenizer(text, truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
    return [(i, tokenizer.convert_ids_to_tokens(t).replace("</w>", "")) for i, t in enumerate(ids)]
