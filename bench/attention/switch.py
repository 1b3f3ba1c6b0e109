"""Prompt switching mid-denoising (FairQueue's Prompt Queuing; I2H / H2I analysis).

``PromptSwitch(at_step, embeds)`` is a diffusers ``callback_on_step_end``: before sampler step
``at_step`` it writes ``embeds`` into the conditional rows of ``prompt_embeds`` (and, SDXL,
the pooled ``add_text_embeds``), so the first UNet call of step ``at_step`` is the first to see
them. Steps count timesteps, not calls (``steps.sampler_steps``): with PNDM/PLMS, whose second
timestep is evaluated twice, step ``k ≥ 1`` begins at call ``k + 1``, as the reference PLMS
sampler's step k. Pass ``callback_on_step_end_tensor_inputs=switch.tensor_inputs``. ::

    start = encode_prompts(pipe, [hard_prompt]); after = encode_prompts(pipe, [iti_prompt])  # or injected tokens
    switch = PromptSwitch(15, after)
    pipe(**start.kwargs(), num_inference_steps=50, callback_on_step_end=switch,
         callback_on_step_end_tensor_inputs=switch.tensor_inputs)
"""

from __future__ import annotations

from typing import Any

import torch

from .steps import sampler_steps, scheduler_timesteps
from .text import PromptEmbeds


def replace_cond_rows(current: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``current`` ([uncond; cond] with CFG, or cond only) with its last ``len(cond)`` rows = ``cond``."""
    n = cond.shape[0]
    out = current.clone()
    out[current.shape[0] - n :] = cond.to(device=current.device, dtype=current.dtype)
    return out


class PromptSwitch:
    def __init__(self, at_step: int, embeds: PromptEmbeds) -> None:
        self.at_step = int(at_step)
        self.embeds = embeds

    @property
    def tensor_inputs(self) -> list[str]:
        return ["prompt_embeds", "add_text_embeds"] if self.embeds.pooled is not None else ["prompt_embeds"]

    def switches_after(self, call: int, timesteps: list[float] | None) -> bool:
        """Whether the embeddings change after UNet call ``call`` (the next call begins step ``at_step``)."""
        if self.at_step <= 0:
            return False
        if timesteps is None:
            return call == self.at_step - 1
        steps = sampler_steps(timesteps)
        return call + 1 < len(steps) and steps[call] < self.at_step <= steps[call + 1]

    def __call__(self, pipe: Any, step: int, timestep: Any, kw: dict) -> dict:
        if self.switches_after(step, scheduler_timesteps(pipe, step, timestep)):
            kw["prompt_embeds"] = replace_cond_rows(kw["prompt_embeds"], self.embeds.prompt_embeds)
            if self.embeds.pooled is not None and "add_text_embeds" in kw:
                kw["add_text_embeds"] = replace_cond_rows(kw["add_text_embeds"], self.embeds.pooled)
        return kw
