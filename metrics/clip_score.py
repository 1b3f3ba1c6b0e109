"""CLIP Score: 100 · cos(E_image, E_text), clamped at 0, averaged (torchmetrics' definition).

Conventions (recorded with every number):

- ``clamp="mean"`` (default) is torchmetrics 1.9's code: ``max(mean(100·cos), 0)``; the
  per-image form ``mean(max(100·cos, 0))`` (torchmetrics' docstring, Hessel et al. with w = 100)
  is ``clamp="per-image"``. They differ only when some cosines are negative.
- Captions longer than the text context (77 tokens for CLIP) are truncated explicitly, keeping
  the end-of-text token (as OpenAI ``clip.tokenize(truncate=True)`` and open_clip do), and
  counted (``n_truncated``). torchmetrics instead slices the token ids (dropping end-of-text).
- Backends: transformers ``CLIPModel`` + ``CLIPImageProcessor`` (default
  ``openai/clip-vit-large-patch14`` with ``local_files_only=True``; works with transformers 5,
  where ``get_image_features`` returns a ModelOutput), and open_clip (any architecture;
  ``pretrained`` a local checkpoint path or a tag already in the local cache).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torchmetrics import Metric

from t2ibench.metrics.common import (
    ClipBackend,
    ColumnSample,
    NotAvailable,
    Scorer,
    mean_ci,
    mean_sample,
    prompt_of,
    tokenize_truncating,
    unwrap_features,
    wrap_updates,
)

DEFAULT_MODEL = "openai/clip-vit-large-patch14"


# --------------------------------------------------------------------------------------------
# Backends: images (PIL) and texts → L2-normalised float32 embeddings on the host; ``to(device)``
# places the model, each batch's inputs follow it


class HFClipBackend(ClipBackend):
    """transformers ``CLIPModel`` with its image processor and a tokenizer."""

    def __init__(self, model, tokenizer, image_processor, name: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.context_length = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_MODEL) -> "HFClipBackend":
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        try:
            model = CLIPModel.from_pretrained(name_or_path, local_files_only=True)
            processor = CLIPImageProcessor.from_pretrained(name_or_path, local_files_only=True)
            tokenizer = CLIPTokenizer.from_pretrained(name_or_path, local_files_only=True)
        except (OSError, ValueError):
            raise NotAvailable(
                f"CLIP model {name_or_path!r} not found locally (a local directory or the HF cache; no download here)"
            ) from None
        return cls(model, tokenizer, processor, name_or_path)

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[bool]]:
        return tokenize_truncating(self.tokenizer, texts, self.context_length)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Any]) -> torch.Tensor:
        # uint8 (3, H, W) tensors: the processor takes its torch path (same pixels, ~2-3x faster than PIL input)
        tensors = [im if isinstance(im, torch.Tensor) else torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
                   for im in images]
        pixel_values = self.image_processor(images=tensors, return_tensors="pt")["pixel_values"]
        f = unwrap_features(self.model.get_image_features(pixel_values=pixel_values.to(self.device)))
        return self.embeddings_on_host(f)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
        enc, truncated = self.tokenize(texts)
        f = unwrap_features(self.model.get_text_features(**{k: v.to(self.device) for k, v in enc.items()}))
        return self.embeddings_on_host(f), truncated


class OpenClipBackend(ClipBackend):
    """open_clip model + its preprocessing transform + its tokenizer."""

    def __init__(self, model, preprocess, tokenizer, name: str, context_length: int = 77) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.context_length = context_length

    @classmethod
    def create(cls, arch: str, pretrained: str | None) -> "OpenClipBackend":
        import open_clip

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        except Exception as exc:  # open_clip raises RuntimeError/HF errors when it would download
            raise NotAvailable(
                f"open_clip {arch}/{pretrained} not loadable offline: {str(exc).splitlines()[0][:160]}"
            ) from None
        tokenizer = open_clip.get_tokenizer(arch)
        return cls(model, preprocess, tokenizer, f"open_clip:{arch}/{pretrained}", getattr(model, "context_length", 77))

    def _count_truncated(self, texts: Sequence[str]) -> list[bool]:
        enc = getattr(self.tokenizer, "encode", None)
        if enc is None:  # HF tokenizer wrapper
            return [False] * len(texts)
        # + start and end tokens
        return [len(enc(t)) + 2 > self.context_length for t in texts]

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Any]) -> torch.Tensor:
        x = torch.stack([self.preprocess(im.convert("RGB")) for im in images])
        return self.embeddings_on_host(self.model.encode_image(x.to(self.device)).float())

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
        tokens = self.tokenizer(list(texts))
        return self.embeddings_on_host(self.model.encode_text(tokens.to(self.device)).float()), self._count_truncated(texts)


def make_backend(backend: str = "transformers", model: str = DEFAULT_MODEL, pretrained: str | None = None):
    """``"transformers"`` (model id or path), ``"open_clip"`` (arch + pretrained), ``"tinyworld"``."""
    if backend == "transformers":
        return HFClipBackend.from_pretrained(model)
    if backend == "open_clip":
        return OpenClipBackend.create(model, pretrained)
    if backend == "tinyworld":
        from t2ibench.metrics.tinyworld import tiny_clip_backend

        return tiny_clip_backend()
    raise ValueError(f"CLIP backend {backend!r}; expected transformers, open_clip or tinyworld")


# --------------------------------------------------------------------------------------------
# Functional form and Metric


def clip_cosines(backend, images: Sequence[Any], texts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
    """Per-pair cosine similarity (float64, (B,)) and which captions were truncated."""
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} captions")
    img = backend.encode_images(images)
    txt, truncated = backend.encode_texts(texts)
    return (img.double() * txt.double()).sum(-1), truncated


def reduce_clip_score(cosines: Sequence[float] | torch.Tensor, clamp: str = "mean") -> float:
    """CLIP Score from cosines: ``mean`` → max(mean(100·cos), 0); ``per-image`` → mean(max(100·cos, 0))."""
    s = 100.0 * torch.as_tensor(cosines, dtype=torch.float64)
    if clamp == "mean":
        return float(torch.clamp(s.mean(), min=0.0))
    if clamp == "per-image":
        return float(torch.clamp(s, min=0.0).mean())
    raise ValueError(f"clamp {clamp!r}; expected 'mean' or 'per-image'")


def clip_score(images: Sequence[Any], texts: Sequence[str], backend, clamp: str = "mean") -> float:
    """Functional CLIP Score of (image, caption) pairs with a backend from :func:`make_backend`."""
    cos, _ = clip_cosines(backend, images, texts)
    return reduce_clip_score(cos, clamp)


class CLIPScore(Metric):
    """torchmetrics-style CLIP Score. ``update(images: list[PIL], texts: list[str])`` encodes with
    ``backend``; ``update_cosines(cos)`` / ``update_scores(100·cos)`` take precomputed values (then
    ``backend`` may be None).

    States (float64/long, merged by sum): ``score_sum`` (Σ 100·cos), ``clamped_sum``
    (Σ max(100·cos, 0)), ``n_samples``, ``n_truncated``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    score_sum: torch.Tensor
    clamped_sum: torch.Tensor
    n_samples: torch.Tensor
    n_truncated: torch.Tensor

    def __init__(self, backend: Any = None, clamp: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if clamp not in ("mean", "per-image"):
            raise ValueError(f"clamp {clamp!r}; expected 'mean' or 'per-image'")
        self.backend = backend
        self.clamp = clamp
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clamped_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_truncated", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        wrap_updates(self, "update_cosines", "update_scores")

    def update(self, images: Sequence[Any], texts: Sequence[str]) -> None:
        if self.backend is None:
            raise ValueError("CLIPScore built without a backend: feed update_cosines or update_scores")
        cos, truncated = clip_cosines(self.backend, images, texts)
        self.update_cosines(cos, truncated)

    def update_cosines(self, cosines, truncated: Sequence[bool] = ()) -> None:
        """Image-caption cosines (B,) and which captions were truncated."""
        self.update_scores(100.0 * torch.as_tensor(cosines, dtype=torch.float64), truncated)

    def update_scores(self, scores, truncated: Sequence[bool] = ()) -> None:
        """Per-pair scores 100·cos (B,) and which captions were truncated."""
        s = torch.as_tensor(scores, dtype=torch.float64)
        self.score_sum += s.sum()
        self.clamped_sum += s.clamp(min=0).sum()
        self.n_samples += s.numel()
        self.n_truncated += int(sum(bool(t) for t in truncated))

    def compute(self) -> torch.Tensor:
        if self.clamp == "mean":
            return torch.clamp(self.score_sum / self.n_samples, min=0.0)
        return self.clamped_sum / self.n_samples


# --------------------------------------------------------------------------------------------
# Scorer for run directories


class ClipBackedScorer(Scorer):
    """Base of the scorers that read one CLIP backend: built on first use from ``backend_kind``,
    ``model_name`` and ``pretrained`` (:func:`make_backend`); ``check_available`` builds it."""

    network_attributes = ("_backend",)

    def __init__(self, backend: str, model: str, pretrained: str | None, _backend: Any = None) -> None:
        self.backend_kind, self.model_name, self.pretrained = backend, model, pretrained
        self._backend = _backend

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = self.place(make_backend(self.backend_kind, self.model_name, self.pretrained))
        return self._backend

    def check_available(self) -> None:
        _ = self.backend  # loading it raises NotAvailable with the reason


class CLIPScoreScorer(ClipBackedScorer):
    """Per image: 100·cos with its prompt (and whether the prompt was truncated); aggregate: CLIP Score.

    params: ``backend`` ("transformers" | "open_clip" | "tinyworld"), ``model`` (HF id/path or
    open_clip arch), ``pretrained`` (open_clip), ``clamp`` ("mean" | "per-image").
    """

    name = "clip_score"
    lower_is_better = False

    def __init__(
        self,
        backend: str = "transformers",
        model: str = DEFAULT_MODEL,
        pretrained: str | None = None,
        clamp: str = "mean",
        batch_size: int = 16,
        _backend: Any = None,
    ) -> None:
        super().__init__(backend, model, pretrained, _backend)
        self.clamp = clamp
        self.batch_size = batch_size

    def config(self) -> dict[str, Any]:
        return {"backend": self.backend_kind, "model": self.backend.name, "tokenizer": "explicit truncation, EOS kept"}

    def conventions(self) -> dict[str, Any]:
        clamp = "max(mean(100*cos), 0) (torchmetrics 1.9)" if self.clamp == "mean" else "mean(max(100*cos, 0))"
        return {"model": self.backend.name, "backend": self.backend_kind, "formula": clamp,
                "truncation": f"captions over {getattr(self.backend, 'context_length', 77)} tokens truncated, EOS kept"}

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"prompt": prompt_of(meta)}

    def score(self, images, metas):
        cos, truncated = clip_cosines(self.backend, images, [prompt_of(m) for m in metas])
        return [{"score": float(100.0 * c), "truncated": bool(t)} for c, t in zip(cos.tolist(), truncated, strict=True)]

    def aggregate(self, values, metas):
        """``clip_score``: :class:`CLIPScore` over the per-image scores, with a 95 % bootstrap interval."""
        s = np.array([v["score"] for v in values], dtype=np.float64)
        entry = mean_ci(np.clip(s, 0, None) if self.clamp == "per-image" else s)
        metric = CLIPScore(clamp=self.clamp)
        metric.update_scores(s, [v["truncated"] for v in values])
        if entry["value"] is not None:
            entry["value"] = float(metric.compute())
        if entry["ci"] and self.clamp == "mean":
            entry["ci"] = [max(c, 0.0) for c in entry["ci"]]
        entry["n_truncated"] = int(metric.n_truncated)
        entry["lower_is_better"] = False
        return {self.name: entry}

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        s = np.array([v["score"] for v in values], dtype=np.float64)
        if self.clamp == "per-image":
            return {self.name: mean_sample(range(len(s)), np.clip(s, 0, None))}
        return {self.name: mean_sample(range(len(s)), s, floor=0.0)}
