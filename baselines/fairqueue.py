"""``fairqueue``: FairQueue (Teo et al., NeurIPS 2024) on top of ITI-GEN tokens.

- Prompt Queuing (``queue``): the base prompt's embeddings for the first ``switch`` fraction of
  the sampler steps (default 0.2: steps ``0 … round(0.2·steps) − 1``), then the ITI-GEN
  prompt's (``t2ibench.attention.switch.PromptSwitch``, which counts sampler steps, not UNet
  calls: PNDM's repeated second timestep belongs to step 0, as in the reference PLMS sampler).
  Public FairQueue code: ``--ts 40``, the first 10 of 50 PLMS steps. In the ``"reference"``
  layout the base prompt is padded with ``!`` as OpenAI ``clip.tokenize`` pads it.
- Attention Amplification (``amplify``): while the ITI-GEN prompt is active, the cross-attention
  (conditional rows, every cross-attention layer by default) to the amplified tokens is
  multiplied by ``factor`` c (default 10). ``amplify_tokens="after"`` (default, the reference's
  ``--st [9]``): the one position right after the learned tokens; ``"learned"``: the learned
  tokens themselves. ``renormalize`` (default True, a project choice: the reference sampler
  ``plms_mixing.py`` is not public): ``p'_t = c·p_t / (c·Σ_{s∈A} p_s + Σ_{s∉A} p_s)``;
  False: ``p'_t = c·p_t`` with the other probabilities unchanged.
- Both off = ``iti-gen``. Balanced over categories as ITI-GEN (image i → category i % K).
"""

from __future__ import annotations

from typing import Any, Sequence

from t2ibench.attention import Amplify, StepWindow
from t2ibench.attention.switch import PromptSwitch
from t2ibench.baselines.fairness import base_prompt
from t2ibench.baselines.iti_gen import ItiGen, encode_base
from t2ibench.types import ImageJob, SamplerConfig

AMPLIFY_TOKENS = ("after", "learned")


def switch_step(fraction: float, steps: int) -> int:
    """Index of the first sampler step that uses the ITI-GEN prompt."""
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
        amplify_tokens: str = "after",
        renormalize: bool = True,
        layout: str | None = None,
    ) -> None:
        super().__init__(tokens_dir, layout)
        if not 0.0 <= switch <= 1.0:
            raise ValueError(f"switch must be a fraction of the steps in [0, 1], got {switch}")
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        if amplify_tokens not in AMPLIFY_TOKENS:
            raise ValueError(f"amplify_tokens must be one of {AMPLIFY_TOKENS}, got {amplify_tokens!r}")
        self.queue = queue
        self.switch = switch
        self.amplify = amplify
        self.factor = factor
        self.amplify_layers = amplify_layers
        self.amplify_tokens = amplify_tokens
        self.renormalize = bool(renormalize)

    def amplified_positions(self) -> list[list[int]]:
        """Per row of the last batch, the token positions Attention Amplification scales."""
        if self.amplify_tokens == "learned":
            return [list(p) for p in self._prompts.positions]
        return [[a] for a in self._prompts.after]

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        self._prompts = self.inclusive_prompts(pipe, jobs)
        self._positions = self.amplified_positions()
        self._switch = switch_step(self.switch, sampler.steps) if self.queue else 0
        self._queue = PromptSwitch(self._switch, self._prompts.embeds)
        self.callback_tensor_inputs = tuple(self._queue.tensor_inputs)
        if self._switch > 0:
            return encode_base(pipe, [base_prompt(job) for job in jobs], self._prompts.layout).kwargs()
        return self._prompts.embeds.kwargs()

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list:
        if not self.amplify:
            return []
        return [Amplify(self._positions, self.factor, layers=self.amplify_layers, steps=StepWindow.indices(self._switch, 1 << 30),
                        renormalize=self.renormalize)]

    def step_end(self, pipe: Any, step: int, timestep: Any, kw: dict) -> dict:
        return self._queue(pipe, step, timestep, kw)
