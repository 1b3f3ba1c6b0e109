"""``iti-gen``: inclusive prompts (Zhang et al., ICCV 2023) — learned tokens per tSA category.

Prompt: the base prompt ("a headshot of a person") with ``n_tokens`` (3) learned token
embeddings of the category at its end-of-text position, in one of two layouts
(``t2ibench.attention.text.token_layout``): ``"reference"`` (ITI-GEN's: the tokens overwrite
end-of-text, ``!`` padding, feature read after the tokens; the default for new tokens) or
``"shifted"`` (end-of-text moves right; the layout of token files without a ``layout`` key,
e.g. the shipped tinyworld tokens). Generation is balanced: image ``i`` uses category ``i % K``.
"""

from __future__ import annotations

from typing import Any, Sequence

from t2ibench.attention import ControlledMethod
from t2ibench.attention.text import LAYOUTS, PromptEmbeds
from t2ibench.baselines.fairness import base_prompt, category, category_meta
from t2ibench.baselines.iti_gen.encoding import InclusivePrompts, encode_inclusive
from t2ibench.baselines.iti_gen.tokens import InclusiveTokens, tokens_path
from t2ibench.errors import UserError
from t2ibench.types import ImageJob, SamplerConfig


class ItiGen(ControlledMethod):
    name = "iti-gen"
    summary = "ITI-GEN inclusive prompts: learned tokens per tSA category, balanced (baseline)"

    def __init__(self, tokens_dir: str | None = None, layout: str | None = None) -> None:
        """``tokens_dir``: folder with ``<tsa>.safetensors`` + ``<tsa>.json`` from ``t2ibench itigen train``
        (or ``t2ibench itigen import``), or ``"@tinyworld"`` for the tokens shipped with the tinyworld
        models. ``layout``: prompt layout, ``"reference"`` or ``"shifted"``; None = the layout the
        tokens were learned in (their ``.json``)."""
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
        self.tokens_dir = tokens_dir
        self.layout = layout
        self._tokens: dict[str, InclusiveTokens] = {}

    def tokens_for(self, job: ImageJob) -> InclusiveTokens:
        tsa = job.prompt.meta.get("tsa")
        if not tsa:
            raise UserError(f"method {self.name!r}: prompt {job.prompt.id!r} has no meta.tsa; expected a fairness prompt set")
        if tsa not in self._tokens:
            if not self.tokens_dir:
                raise UserError(f"method {self.name!r}: params.tokens_dir not set; expected the folder of learned tokens (t2ibench itigen train)")
            tok = InclusiveTokens.load(tokens_path(self.tokens_dir, tsa))
            cats = [str(c) for c in job.prompt.meta.get("categories", [])]
            if cats and cats != tok.categories:
                raise UserError(f"method {self.name!r}: tokens for {tsa!r} were learned for categories {tok.categories}; the prompt set has {cats}")
            self._tokens[tsa] = tok
        return self._tokens[tsa]

    def inclusive_prompts(self, pipe: Any, jobs: Sequence[ImageJob]) -> InclusivePrompts:
        toks = [self.tokens_for(job) for job in jobs]
        cats = [category(job, self.name)[0] for job in jobs]
        return encode_inclusive(pipe, [base_prompt(job) for job in jobs], toks, cats, self.layout)

    def inclusive_embeds(self, pipe: Any, jobs: Sequence[ImageJob]) -> tuple[PromptEmbeds, list[list[int]]]:
        out = self.inclusive_prompts(pipe, jobs)
        return out.embeds, out.positions

    def prompt_text(self, job: ImageJob) -> str:
        return base_prompt(job)

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        embeds, _ = self.inclusive_embeds(pipe, jobs)
        return embeds.kwargs()

    def image_meta(self, job: ImageJob) -> dict:
        meta = {**category_meta(job, self.name), "inclusive_tokens": 3 if not self._tokens else self.tokens_for(job).n_tokens}
        if self._tokens:
            meta["prompt_layout"] = self.layout or self.tokens_for(job).layout
        return meta
