"""The method interface: a method turns (pipeline, image jobs, sampler settings) into images.

A method may change the prompt text, pass its own prompt embeddings, install attention
processors and register step callbacks (diffusers' ``callback_on_step_end``); it leaves the
pipeline as it found it. The base class implements the plain pipeline call so that most
methods override one or two hooks:

- ``prompt_text(job)``: the text actually given to the pipeline (default: the prompt as is);
- ``pipeline_kwargs(pipe, jobs, texts, sampler)``: extra or replacing call arguments
  (``prompt_embeds``, ``negative_prompt_embeds``, ...);
- ``attention_processors(pipe, jobs, sampler)``: ``{layer name: processor}`` to install for the
  call, restored afterwards;
- ``on_step_end(pipe, step, timestep, callback_kwargs)``: the diffusers step callback;
- ``image_meta(job)``: what to record for each image (e.g. the tSA category it was made for).

Parameters are keyword arguments of ``__init__``; every constant a method chose is one of them,
with its default in the signature, so the registry can report and hash them.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar, Mapping, Sequence

import torch

from .errors import UserError
from .types import GeneratedImage, ImageJob, SamplerConfig


class Method:
    """Base class for generation methods. Subclasses set ``name`` and override hooks."""

    name: ClassVar[str] = ""
    #: one line for ``t2ibench methods``
    summary: ClassVar[str] = ""
    _params: dict[str, Any]  # effective parameters, set by from_params (see ``params``)

    def __init__(self, **params: Any) -> None:
        if params:
            raise UserError(f"method {self.name!r}: unknown parameters {sorted(params)}; it takes none")

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """The keyword parameters of ``__init__`` with their defaults (for docs and hashing)."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    @classmethod
    def build(cls, params: Mapping[str, Any] | None = None, *, where: str = "") -> "Method":
        """Instantiate with user parameters; a wrong name or type is a ``UserError``."""
        params = dict(params or {})
        accepted = cls.param_defaults()
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            loc = f"{where}: " if where else ""
            raise UserError(
                f"{loc}method {cls.name!r} has no parameter {unknown[0]!r}; "
                f"expected one of {sorted(accepted) or 'none'}"
            )
        try:
            method = cls(**params)
        except UserError:
            raise
        except (TypeError, ValueError) as exc:
            loc = f"{where}: " if where else ""
            raise UserError(f"{loc}method {cls.name!r}: {exc}") from None
        method._params = {**accepted, **params}
        return method

    @property
    def params(self) -> dict[str, Any]:
        """Effective parameters (defaults filled in)."""
        return dict(getattr(self, "_params", self.param_defaults()))

    # -- lifecycle ----------------------------------------------------------------------------
    def setup(self, pipe: Any) -> None:
        """Once per pipeline before the first batch (load learned tokens, build a parser, ...)."""

    def teardown(self, pipe: Any) -> None:
        """Once after the last batch; undo whatever ``setup`` changed on the pipeline."""

    # -- hooks --------------------------------------------------------------------------------
    def prompt_text(self, job: ImageJob) -> str:
        return job.prompt.text

    def pipeline_kwargs(
        self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig
    ) -> dict[str, Any]:
        return {}

    def attention_processors(
        self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig
    ) -> dict[str, Any]:
        return {}

    def on_step_end(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        return callback_kwargs

    #: tensors the step callback reads or replaces (diffusers ``callback_on_step_end_tensor_inputs``)
    callback_tensor_inputs: tuple[str, ...] = ()  # a method may set its own per call (FairQueue)

    def image_meta(self, job: ImageJob) -> dict[str, Any]:
        return {}

    # -- the call -----------------------------------------------------------------------------
    def generate(
        self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig
    ) -> list[GeneratedImage]:
        """Generate one image per job, each from a CPU generator seeded with ``job.seed``."""
        texts = [self.prompt_text(job) for job in jobs]
        truncated = count_truncated_tokens(pipe, texts)
        call: dict[str, Any] = dict(
            prompt=list(texts),
            num_inference_steps=sampler.steps,
            guidance_scale=sampler.guidance,
            height=sampler.height,
            width=sampler.width,
            generator=[torch.Generator("cpu").manual_seed(job.seed) for job in jobs],
            output_type="pil",
        )
        extra = self.pipeline_kwargs(pipe, jobs, texts, sampler)
        if "prompt_embeds" in extra:
            call.pop("prompt")
        call.update(extra)
        if type(self).on_step_end is not Method.on_step_end:
            call["callback_on_step_end"] = self.on_step_end
            call["callback_on_step_end_tensor_inputs"] = list(self.callback_tensor_inputs) or ["latents"]
        processors = self.attention_processors(pipe, jobs, sampler)
        with installed_processors(pipe, processors):
            images = pipe(**call).images
        out = []
        for job, image, text, n_cut in zip(jobs, images, texts, truncated, strict=True):
            meta = {"prompt_text": text, **self.image_meta(job)}
            if n_cut:
                meta["truncated_tokens"] = n_cut
            out.append(GeneratedImage(image=image, meta=meta))
        return out


def count_truncated_tokens(pipe: Any, texts: Sequence[str]) -> list[int]:
    """Tokens beyond the text encoder's window per text (0 when it fits); warns when any."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return [0] * len(texts)
    limit = int(tokenizer.model_max_length)
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    cut = [max(0, n - limit) for n in lengths]
    for text, n in zip(texts, cut, strict=True):
        if n:
            warnings.warn(
                f"prompt truncated by {n} tokens to the text encoder's {limit}: {text[:60]!r}...",
                stacklevel=2,
            )
    return cut


class installed_processors:
    """Context manager: install ``{layer name: processor}`` on the UNet, restore on exit.

    Layers not named keep their processor. Restoring uses the exact objects that were there, so
    with no processors given the call is the plain pipeline's, byte for byte.
    """

    def __init__(self, pipe: Any, processors: Mapping[str, Any]) -> None:
        self.unet = pipe.unet
        self.processors = dict(processors)
        self.saved: dict[str, Any] | None = None

    def __enter__(self) -> "installed_processors":
        if self.processors:
            self.saved = dict(self.unet.attn_processors)
            unknown = sorted(set(self.processors) - set(self.saved))
            if unknown:
                raise ValueError(f"no attention layer named {unknown[0]!r} in this UNet")
            self.unet.set_attn_processor({**self.saved, **self.processors})
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            self.unet.set_attn_processor(self.saved)
            self.saved = None
