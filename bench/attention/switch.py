"""Prompt switching mid-denoising (FairQueue's Prompt Queuing; I2H / H2I analysis).

``PromptSwitch(at_step, embeds)`` is a diffusers ``callback_on_step_end``: after step
``at_step − 1`` it writes ``embeds`` into the conditional rows of ``prompt_embeds`` (and, SDXL,
the pooled ``add_text_embeds``), so UNet call ``at_step`` is the first to see them. Pass
``callback_on_step_end_tensor_inputs=switch.tensor_inputs``. ::

    start = encode_prompts(pipe, [hard_prompt]); after = encode_prompts(pipe, [iti_prompt])  # or injected tokens
    switch = PromptSwitch(15, after)
    pipe(**start.kwargs(), num_inference_steps=50, callback_on_step_end=switch,
         callback_on_step_end_tensor_inputs=switch.tensor_inputs)
"""

from __future__ import annotations

from typing import Any

import torch

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

    def __call__(self, pipe: Any, step: int, timestep: Any, kw: dict) -> dict:
        if self.at_step > 0 and step == self.at_step - 1:
            kw["prompt_embeds"] = replace_cond_rows(kw["prompt_embeds"], self.embeds.prompt_embeds)
            if self.embeds.pooled is not None and "add_text_embeds" in kw:
                kw["add_text_embeds"] = replace_cond_rows(kw["add_text_embeds"], self.embeds.pooled)
        return kw
