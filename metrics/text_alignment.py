"""FairQueue's Text-Alignment (TA): CLIPScore of each image against the *base* prompt, per tSA.

Definition (Teo et al., "FairQueue", NeurIPS 2024, supplement B.5 "Details of the Evaluation
Metrics", paragraph "Quality"): a sample generated from the ITI-GEN prompt P or the hard prompt
F of a tSA should keep the semantics of the base prompt T ("A headshot of a person"), so TA
compares each generated image with T by text-image cosine similarity in CLIP's feature space,
citing CLIPScore (Hessel et al. 2021, their ref. [37]) and Custom Diffusion (Kumari et al. 2023,
ref. [22]). Table 1 reports the mean per tSA ("For TA we utilize CLIP as the feature extractor").

What the paper leaves open, and what t2ibench does (each a parameter):

- scale ``w``: the paper says "cosine similarity" but its TA values (0.595-0.686, Table 1) are
  CLIPScore's ``w · max(cos, 0)`` with w = 2.5: a CLIP image-text cosine for a matching caption
  is about 0.25-0.3. The cited Custom Diffusion code computes exactly that (adobe-research/
  custom-diffusion ``customconcept101/evaluate.py:123-147``, ``get_clip_score(..., w=2.5)``,
  CLIP ViT-B/32). Default ``w = 2.5``; ``w = 1`` gives the plain cosine.
- CLIP network: not named. Default ``openai/clip-vit-base-patch32`` (the Custom Diffusion code's
  ViT-B/32, and the fairness suite's classifier CLIP); ``model``/``backend`` change it.
- text: the image's prompt-set prompt (:func:`t2ibench.metrics.common.prompt_of`), which for the
  fairness prompt sets is the base prompt T, never a method's rewrite; ``prompt`` overrides it.

Columns: ``ta`` (all images) and ``ta:<tsa>`` (the images of one tSA), each a mean with a 95 %
bootstrap interval; per-image values are kept for paired deltas.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

import numpy as np

from t2ibench.metrics.clip_score import ClipBackedScorer, clip_cosines
from t2ibench.metrics.common import ColumnSample, mean_ci, mean_sample, prompt_of

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
CLIPSCORE_W = 2.5


def text_alignment(cosines: Any, w: float = CLIPSCORE_W) -> np.ndarray:
    """Per-image TA from CLIP image-text cosines: ``w · max(cos, 0)`` (CLIPScore, Hessel et al. eq. 1)."""
    return w * np.clip(np.asarray(cosines, dtype=np.float64), 0.0, None)


def tsa_of(meta: Mapping[str, Any]) -> str:
    """The tSA an image belongs to (``prompt_meta.tsa``; the prompt id for other prompt sets)."""
    pm: Mapping[str, Any] = meta.get("prompt_meta") or {}
    return str(pm.get("tsa") or meta.get("prompt_id"))


class TextAlignmentScorer(ClipBackedScorer):
    """Per image: CLIP cosine with the base prompt; aggregate: TA = mean of ``w · max(cos, 0)``.

    params: ``backend`` ("transformers" | "open_clip" | "tinyworld"), ``model``, ``pretrained``
    (open_clip), ``w`` (CLIPScore scale, 2.5), ``prompt`` (text every image is compared with;
    default the image's prompt-set prompt, i.e. the base prompt T).
    """

    name = "ta"
    lower_is_better = False

    def __init__(
        self,
        backend: str = "transformers",
        model: str = DEFAULT_MODEL,
        pretrained: str | None = None,
        w: float = CLIPSCORE_W,
        prompt: str | None = None,
        batch_size: int = 16,
        _backend: Any = None,
    ) -> None:
        if not w > 0:
            raise ValueError(f"w = {w!r}; expected a positive scale (CLIPScore uses 2.5)")
        super().__init__(backend, model, pretrained, _backend)
        self.w, self.prompt = float(w), prompt
        self.batch_size = batch_size

    def _text(self, meta: Mapping[str, Any]) -> str:
        return self.prompt if self.prompt is not None else prompt_of(meta)

    def config(self) -> dict[str, Any]:
        # per-image values are cosines: w is applied at aggregation, so it is not part of the cache key
        return {"backend": self.backend_kind, "model": self.backend.name, "value": "cos(image, text)"}

    def conventions(self) -> dict[str, Any]:
        text = repr(self.prompt) if self.prompt is not None else "the prompt set's prompt (base prompt T)"
        return {"model": self.backend.name, "backend": self.backend_kind,
                "formula": f"mean({self.w:g} * max(cos(image, text), 0))", "text": text,
                "definition": "FairQueue (NeurIPS 2024) supplement B.5; CLIPScore w = 2.5 (Hessel et al.)"}

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"text": self._text(meta)}

    def score(self, images: list[Any], metas: list[Mapping[str, Any]]) -> list[Any]:
        cos, _ = clip_cosines(self.backend, images, [self._text(m) for m in metas])
        return [{"cos": float(c)} for c in cos.tolist()]

    def _groups(self, metas: list[Mapping[str, Any]]) -> dict[str, list[int]]:
        by_tsa: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(metas):
            by_tsa[tsa_of(m)].append(i)
        return dict(sorted(by_tsa.items()))

    def aggregate(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        ta = text_alignment([v["cos"] for v in values], self.w)
        out = {self.name: {**mean_ci(ta), "lower_is_better": False}}
        for tsa, idx in self._groups(metas).items():
            out[f"{self.name}:{tsa}"] = {**mean_ci(ta[idx]), "lower_is_better": False}
        return out

    def column_samples(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, ColumnSample]:
        ta = text_alignment([v["cos"] for v in values], self.w)
        out = {self.name: mean_sample(range(len(ta)), ta)}
        for tsa, idx in self._groups(metas).items():
            out[f"{self.name}:{tsa}"] = mean_sample(idx, ta[idx])
        return out
