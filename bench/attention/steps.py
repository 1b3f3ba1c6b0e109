"""The shared step counter and step windows.

A step is a *sampler step* (one timestep of the schedule), not a UNet call. Diffusers' PNDM
with ``skip_prk_steps`` (PLMS) makes ``num_steps + 1`` UNet calls and repeats its *second*
timestep (50 steps: ``[981, 961, 961, 941, …, 1]``): the first two calls are the reference
PLMS sampler's first step (its improved-Euler start evaluates the model at ``t`` and at the
next timestep), so both count as step 0 and call ``c ≥ 2`` is step ``c − 1``
(:func:`sampler_steps`: a step begins at the last call with its timestep). Schedulers without
a repeated timestep (DDIM, Euler) have one call per step.

``StepState.call`` is the index of the UNet call in progress and ``StepState.step`` its
sampler step: 0 before the first call, updated by the controller's step callback (diffusers
``callback_on_step_end`` is called after call ``i`` with its timestep). Every control on a
pipeline reads the same ``StepState``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


def sampler_steps(timesteps: Sequence[Any]) -> list[int]:
    """Sampler step of each UNet call, from the scheduler's ``timesteps`` (one entry per call).

    A step begins at the last call with its timestep: ``[981, 961, 961, 941]`` → ``[0, 0, 1, 2]``.
    """
    ts = [float(t) for t in timesteps]
    out, begun = [], 0
    for c, t in enumerate(ts):
        if c + 1 == len(ts) or ts[c + 1] != t:  # the last call with this timestep begins a step
            begun += 1
        out.append(max(begun - 1, 0))
    return out


def scheduler_timesteps(pipe: Any, call: int, timestep: Any) -> list[float] | None:
    """The schedule (one timestep per UNet call) of the pipeline call in progress, as floats.

    Read without touching the device: the scheduler's ``timesteps`` live on the pipeline's device,
    and reading them (``float(t)``, ``.tolist()``) would synchronise the host with it at every
    step. The same schedule is computed once on the CPU by a copy of the scheduler made from its
    config with the same number of inference steps, and used when it has as many entries as the
    scheduler's own (``len`` reads no values). None when there is no schedule for ``call``.
    """
    if timestep is None:
        return None
    scheduler = getattr(pipe, "scheduler", None)
    ts = getattr(scheduler, "timesteps", None)
    if ts is None or call >= len(ts):
        return None
    return _cpu_schedule(scheduler, ts)


def _cpu_schedule(scheduler: Any, timesteps: Any) -> list[float] | None:
    """``scheduler``'s schedule recomputed on the CPU, cached on it per ``set_timesteps`` call."""
    n_steps = getattr(scheduler, "num_inference_steps", None)
    key = (id(timesteps), len(timesteps), n_steps)
    cached = getattr(scheduler, "_t2ibench_cpu_schedule", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    values: list[float] | None = None
    if n_steps is not None:
        clone = type(scheduler).from_config(scheduler.config)
        clone.set_timesteps(int(n_steps), device="cpu")
        values = [float(t) for t in clone.timesteps.tolist()]
        if len(values) != len(timesteps):  # custom timesteps or sigmas: not the config's schedule
            values = None
    scheduler._t2ibench_cpu_schedule = (key, values)
    return values


@dataclass
class StepState:
    """Sampler step and UNet call in progress, the call's nominal number of steps, CFG layout."""

    step: int = 0
    num_steps: int = 50
    #: latent (height, width) of the current call, for reshaping attention maps; None = square
    latent_hw: tuple[int, int] | None = None
    #: classifier-free guidance layout: True = batch is [uncond, cond]; None = ask the pipeline
    cfg: bool | None = None
    call: int = 0
    #: sampler step of each UNet call (None until the scheduler's timesteps are known: one call per step)
    steps_of_call: list[int] | None = field(default=None, repr=False)

    def begin(self, num_steps: int, latent_hw: tuple[int, int] | None = None, cfg: bool | None = None) -> None:
        self.step = 0
        self.call = 0
        self.num_steps = int(num_steps)
        self.latent_hw = latent_hw
        self.cfg = cfg
        self.steps_of_call = None

    def advance(self, finished_call: int, timesteps: Sequence[Any] | None = None) -> None:
        """Called from the step callback after UNet call ``finished_call`` (``timesteps``: the schedule, one per call)."""
        self.call = int(finished_call) + 1
        if timesteps is not None and self.steps_of_call is None:
            self.steps_of_call = sampler_steps(timesteps)
        table = self.steps_of_call
        self.step = table[self.call] if table is not None and self.call < len(table) else (
            table[-1] + 1 + self.call - len(table) if table else self.call)


@dataclass(frozen=True)
class StepWindow:
    """Steps ``[start, stop)``, as fractions of ``num_steps`` (``fraction=True``) or as indices.

    Fractions are turned into sampler-step indices with ``round(f * num_steps)``; ``stop=1.0``
    covers every step.
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
