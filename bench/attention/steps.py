"""The shared step counter and step windows.

A pipeline call runs ``num_steps`` denoising steps (PNDM/PLMS runs one extra UNet call at the
end; it counts as step ``num_steps``). ``StepState.step`` is the index of the step being
computed: 0 before the first UNet call, set to ``i + 1`` by the controller's step callback
(diffusers ``callback_on_step_end`` is called after step ``i``). Every control on a pipeline
reads the same ``StepState``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StepState:
    """Step index of the UNet call in progress, the call's nominal number of steps, CFG layout."""

    step: int = 0
    num_steps: int = 50
    #: latent (height, width) of the current call, for reshaping attention maps; None = square
    latent_hw: tuple[int, int] | None = None
    #: classifier-free guidance layout: True = batch is [uncond, cond]; None = ask the pipeline
    cfg: bool | None = None

    def begin(self, num_steps: int, latent_hw: tuple[int, int] | None = None, cfg: bool | None = None) -> None:
        self.step = 0
        self.num_steps = int(num_steps)
        self.latent_hw = latent_hw
        self.cfg = cfg

    def advance(self, finished_step: int) -> None:
        """Called from the step callback after step ``finished_step``."""
        self.step = int(finished_step) + 1


@dataclass(frozen=True)
class StepWindow:
    """Steps ``[start, stop)``, as fractions of ``num_steps`` (``fraction=True``) or as indices.

    Fractions are turned into indices with ``round(f * num_steps)``; ``stop=1.0`` also covers
    the extra final PLMS step.
    """

    start: float = 0.0
    stop: float = 1.0
    fraction: bool = True

    @classmethod
    def indices(cls, start: int, stop: int) -> "StepWindow":
        return cls(float(start), float(stop), fraction=False)

    @classmethod
    def of(cls, spec: Any) -> "StepWindow":
        """``None`` (all steps), a ``StepWindow``, or a ``[start, stop]`` pair of fractions."""
        if spec is None:
            return cls()
        if isinstance(spec, StepWindow):
            return spec
        start, stop = spec
        return cls(float(start), float(stop))

    def bounds(self, num_steps: int) -> tuple[int, int]:
        if not self.fraction:
            return int(self.start), int(self.stop)
        start = int(round(self.start * num_steps))
        stop = int(round(self.stop * num_steps)) if self.stop < 1.0 else 1 << 30
        return start, stop

    def contains(self, step: int, num_steps: int) -> bool:
        start, stop = self.bounds(num_steps)
        return start <= step < stop
