"""``fairqueue``: FairQueue (Teo et al., NeurIPS 2024) on top of ITI-GEN tokens.

- Prompt Queuing (``queue``): the base prompt's embeddings for the first ``switch`` fraction of
  the steps (default 0.2: steps ``0 … round(0.2·steps) − 1``), then the ITI-GEN prompt's. The
  swap happens in ``callback_on_step_end`` after step ``s − 1`` by replacing the conditional
  rows of ``prompt_embeds`` (and, SDXL, of the pooled ``add_text_embeds``); UNet call ``s`` is
  the first with the ITI-GEN prompt. (Public FairQueue code: the first 10 of 50 PLMS steps.)
- Attention Amplification (``amplify``): while the ITI-GEN prompt is active, the ITI-GEN
  tokens' cross-attention (conditional rows, every cross-attention layer by default) is
  multiplied by ``factor`` c (default 10) and the row renormalised:
  ``p'_t = c·p_t / (c·Σ_{s∈ITI} p_s + Σ_{s∉ITI} p_s)`` for ITI-GEN tokens t.
- Both off = ``iti-gen``. Balanced over categories as ITI-GEN (image i → category i % K).
"""

from __future__ import annotations

from typing import Any, Sequence

from t2ibench.attention import Amplify, StepWindow
from t2ibench.attention.switch import PromptSwitch
from t2ibench.attention.text import encode_prompts
from t2ibench.types import ImageJob, SamplerConfig

from t2ibench.baselines.fairness import base_prompt
from t2ibench.baselines.iti_gen import ItiGen


def switch_step(fraction: float, steps: int) -> int:
    """Index of the first step that uses the ITI-GEN prompt."""
    return int(round(fraction * steps))


class FairQueue(ItiGen):
    name = "fairqueue"
    summary = "FairQueue: prompt queuing (base prompt early) + ITI-GEN token attention amplification"

    def __init__(
        self,
        tokens_dir: str | None = None,
        queue: bool = True,
        switch: float = 0.2,
        amplify: bool = True,
        factor: float = 10.0,
        amplify_layers: Any = "cross",
    ) -> None:
        super().__init__(tokens_dir)
        if not 0.0 <= switch <= 1.0:
            raise ValueError(f"switch must be a fraction of the steps in [0, 1], got {switch}")
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        self.queue = queue
        self.switch = switch
        self.amplify = amplify
        self.factor = factor
        self.amplify_layers = amplify_layers

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        inclusive, self._positions = self.inclusive_embeds(pipe, jobs)
        self._switch = switch_step(self.switch, sampler.steps) if self.queue else 0
        self._queue = PromptSwitch(self._switch, inclusive)
        self.callback_tensor_inputs = tuple(self._queue.tensor_inputs)
        if self._switch > 0:
            return encode_prompts(pipe, [base_prompt(job) for job in jobs]).kwargs()
        return inclusive.kwargs()

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list:
        if not self.amplify:
            return []
        return [Amplify(self._positions, self.factor, layers=self.amplify_layers, steps=StepWindow.indices(self._switch, 1 << 30))]

    def step_end(self, pipe: Any, step: int, timestep: Any, kw: dict) -> dict:
        return self._queue(pipe, step, timestep, kw)
