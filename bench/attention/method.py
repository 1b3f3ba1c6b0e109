"""``ControlledMethod``: a ``Method`` whose attention controls and step callback share one controller.

Subclasses override ``controls(pipe, jobs, sampler)`` (the controls for this batch; called after
``pipeline_kwargs``, so per-batch state computed there can be used) and optionally
``step_end(pipe, step, timestep, callback_kwargs)``. The shared step counter is reset before
each call and advanced by the pipeline's ``callback_on_step_end``. With no controls the
pipeline runs with its own processors (byte-identical to ``sd``).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..method import Method
from ..types import ImageJob, SamplerConfig
from .processor import AttentionControl, AttentionController
from .steps import scheduler_timesteps


class ControlledMethod(Method):
    _controller: AttentionController | None = None

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list[AttentionControl]:
        return []

    def step_end(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        return callback_kwargs

    def attention_processors(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> dict[str, Any]:
        ctl = AttentionController(pipe, self.controls(pipe, jobs, sampler))
        ctl.begin(sampler.steps, sampler.height, sampler.width)
        self._controller = ctl
        return ctl.processors() if ctl.controls else {}

    def on_step_end(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        callback_kwargs = self.step_end(pipe, step, timestep, callback_kwargs)
        if self._controller is not None:
            self._controller.state.advance(step, scheduler_timesteps(pipe, step, timestep))
        return callback_kwargs
