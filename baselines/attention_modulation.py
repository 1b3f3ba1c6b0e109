"""``attention-modulation``: Wu et al. 2024, "Towards Better Text-to-Image Generation Alignment
via Attention Modulation" — training-free; three components, each switchable (ablation flags).

The paper publishes no constants; this project's choices (all parameters):

1. Self-attention temperature (``temperature``): ``softmax(q kᵀ · scale / tau)`` in every
   self-attention layer (``temperature_layers``) during the first ``temperature_steps``
   = [0, 0.2) of the steps; ``tau`` = 0.8 (< 1 sharpens: each patch attends to fewer patches).
   Applied to both CFG branches (it changes the UNet, not the prompt).
2. Object-focused masking (``masking``): entity groups = spaCy noun chunks without leading
   determiners ("a red cat and a blue dog" → {red cat}, {blue dog}); each patch is assigned to
   the group its cross-attention (head mean) gives most mass; its attention to the other groups'
   tokens is set to zero and renormalised. Global tokens (start/end of text, padding, verbs,
   prepositions, words outside noun chunks) stay visible. Cross-attention layers
   ``mask_layers``, steps ``mask_steps`` = [0, 0.5); conditional branch; prompts with < 2 groups
   are unmasked.
3. Phase-wise reweighting (``reweighting``): attention to global word tokens (words outside the
   entity groups) × ``global_weight`` going from 1.5 to 1.0, to instance tokens (entity
   groups) × ``instance_weight`` going from 1.0 to 1.5 over the steps (``curve``: linear or
   cosine), then renormalised; start/end-of-text and padding keep weight 1. All steps, all
   cross-attention layers (``reweight_layers``), conditional branch.

All three off = the plain pipeline, byte for byte.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2ibench.attention import (
    AttentionControl,
    ControlledMethod,
    ObjectFocusMask,
    Temperature,
    TokenReweight,
    cosine_curve,
    linear_curve,
)
from t2ibench.attention.text import char_span_tokens, entity_groups
from t2ibench.types import ImageJob, SamplerConfig


def prompt_groups(tokenizer: Any, text: str) -> tuple[list[list[int]], list[int]]:
    """(entity groups as token positions, global word positions) of ``text``."""
    groups = [p for a, b in entity_groups(text) if (p := char_span_tokens(tokenizer, text, a, b))]
    n_words = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    in_group = {t for g in groups for t in g}
    last = tokenizer.model_max_length - 2
    global_words = [t for t in range(1, min(n_words, last) + 1) if t not in in_group]
    return groups, global_words


class AttentionModulation(ControlledMethod):
    name = "attention-modulation"
    summary = "self-attn temperature + object-focused cross-attn masking + phase-wise token reweighting"

    def __init__(
        self,
        temperature: bool = True,
        tau: float = 0.8,
        temperature_steps: Sequence[float] = (0.0, 0.2),
        temperature_layers: Any = "self",
        masking: bool = True,
        mask_steps: Sequence[float] = (0.0, 0.5),
        mask_layers: Any = "cross",
        reweighting: bool = True,
        global_weight: Sequence[float] = (1.5, 1.0),
        instance_weight: Sequence[float] = (1.0, 1.5),
        curve: str = "linear",
        reweight_layers: Any = "cross",
    ) -> None:
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if curve not in ("linear", "cosine"):
            raise ValueError(f"curve must be 'linear' or 'cosine', got {curve!r}")
        self.temperature, self.tau = temperature, float(tau)
        self.temperature_steps, self.temperature_layers = list(temperature_steps), temperature_layers
        self.masking, self.mask_steps, self.mask_layers = masking, list(mask_steps), mask_layers
        self.reweighting, self.curve = reweighting, curve
        self.global_weight, self.instance_weight = list(global_weight), list(instance_weight)
        self.reweight_layers = reweight_layers
        self.last_groups: list[list[list[int]]] = []

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list[AttentionControl]:
        out: list[AttentionControl] = []
        if self.temperature:
            out.append(Temperature(self.tau, layers=self.temperature_layers, steps=self.temperature_steps))
        if not (self.masking or self.reweighting):
            return out
        parsed = [prompt_groups(pipe.tokenizer, self.prompt_text(job)) for job in jobs]
        self.last_groups = [g for g, _ in parsed]
        if self.masking:
            out.append(ObjectFocusMask(self.last_groups, layers=self.mask_layers, steps=self.mask_steps))
        if self.reweighting:
            make = linear_curve if self.curve == "linear" else cosine_curve
            g_curve, i_curve = make(*self.global_weight), make(*self.instance_weight)
            is_global = torch.zeros(len(jobs), 77, dtype=torch.bool)
            is_instance = torch.zeros(len(jobs), 77, dtype=torch.bool)
            for r, (groups, words) in enumerate(parsed):
                is_global[r, words] = True
                for g in groups:
                    is_instance[r, g] = True

            on_device: dict = {}

            def weights(call):
                # masks moved to the layer's device once; the weights are made there each step
                device = getattr(call, "device", None) or is_global.device
                if device not in on_device:
                    on_device[device] = (is_global.to(device), is_instance.to(device))
                glob, inst = on_device[device]
                w = torch.where(glob, g_curve(call.step, call.num_steps), 1.0)
                return torch.where(inst, i_curve(call.step, call.num_steps), w)

            out.append(TokenReweight(weights, layers=self.reweight_layers))
        return out

    def image_meta(self, job: ImageJob) -> dict:
        return {}
