"""Adapters from the tinyworld models (t2ibench.world) to the scorers' small interfaces.

- :func:`tiny_clip_backend`: a CLIP backend (encode_images / encode_texts / model.logit_scale)
  on the shipped tiny CLIP, for CLIP Score and zero-shot fairness.
- :func:`tiny_clip_image_features`: the tiny CLIP's image embeddings as a Fréchet-distance
  feature network (``name``, ``num_features``, ``image_size``).
- :func:`tiny_evaluator_classifier`: tinyworld's evaluator as a fairness classifier.
- :func:`tiny_alignment_judge`: tinyworld's evaluator as an alignment judge.

Each raises :class:`NotAvailable` with the reason when the shipped weights are missing.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, TypeVar

import torch

from t2ibench.metrics.common import (
    CLIP_MEAN,
    CLIP_STD,
    ClipBackend,
    NotAvailable,
    pil_to_float,
    tokenize_truncating,
    unwrap_features,
)
from t2ibench.world import evaluator as world_evaluator
from t2ibench.world import paths as world_paths
from t2ibench.world import sets as world_sets


def _strip(reason: str) -> str:
    return reason[len("not available: "):] if reason.startswith("not available: ") else reason


def load_tiny_clip() -> tuple[Any, Any]:
    """(CLIPModel float32, CLIPTokenizer) of the shipped tiny CLIP (``t2ibench.world.paths.clip_dir()``)."""
    directory = world_paths.clip_dir()
    if not (directory / "config.json").is_file():
        raise NotAvailable(_strip(world_paths.missing_reason("clip", directory)))
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(str(directory), local_files_only=True, dtype=torch.float32)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(directory), local_files_only=True)
    except OSError:
        from t2ibench.tokenizer import clip_tokenizer

        tokenizer = clip_tokenizer()
    return model.float().eval(), tokenizer


class TensorClipBackend(ClipBackend):
    """A CLIP backend over a transformers ``CLIPModel`` whose images are already at its size.

    Images (PIL) → float [0, 1] → resized to ``image_size`` (bicubic, antialiased) only if
    needed → normalised with ``mean``/``std``. Captions truncated explicitly (EOS kept) and counted.
    """

    def __init__(self, model, tokenizer, name: str, image_size: int | None = None, mean=CLIP_MEAN, std=CLIP_STD) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.image_size = int(image_size or model.config.vision_config.image_size)
        self.context_length = int(model.config.text_config.max_position_embeddings)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        """Normalised (B, 3, S, S) float32 on the host."""
        x = pil_to_float(images)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Any]) -> torch.Tensor:
        f = unwrap_features(self.model.get_image_features(pixel_values=self.pixel_values(images).to(self.device)))
        return self.embeddings_on_host(f)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
        enc, truncated = tokenize_truncating(self.tokenizer, texts, self.context_length)
        f = unwrap_features(self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                                         attention_mask=enc["attention_mask"].to(self.device)))
        return self.embeddings_on_host(f), truncated


class ClipFeatureNet(torch.nn.Module):
    """Projected CLIP image embeddings (not normalised) of float images in [0, 1] at ``image_size``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, backend: TensorClipBackend) -> None:
        super().__init__()
        self.model = backend.model  # a submodule, so ``.to(device)`` moves it
        self.register_buffer("mean", backend.mean, persistent=False)
        self.register_buffer("std", backend.std, persistent=False)
        self.name = f"{backend.name} image embeddings ({backend.model.config.projection_dim}-d)"
        self.num_features = int(backend.model.config.projection_dim)
        self.image_size = backend.image_size

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) floats in [0, 1] on the module's device → (B, d) float32 there."""
        x = (x.float() - self.mean) / self.std
        return unwrap_features(self.model.get_image_features(pixel_values=x)).float()


def tiny_clip_backend() -> TensorClipBackend:
    model, tokenizer = load_tiny_clip()
    return TensorClipBackend(model, tokenizer, "tinyworld tiny CLIP")


def tiny_clip_image_features() -> ClipFeatureNet:
    return ClipFeatureNet(tiny_clip_backend())


def _load_evaluator() -> world_evaluator.Evaluator:
    try:
        return world_evaluator.load_evaluator()
    except FileNotFoundError as exc:
        raise NotAvailable(_strip(str(exc))) from None


_Holder = TypeVar("_Holder", bound="_EvaluatorUser")


class _EvaluatorUser:
    """Holds tinyworld's loaded evaluator; ``to(device)`` moves it."""

    def __init__(self) -> None:
        self.evaluator = _load_evaluator()

    def to(self: _Holder, device: str | torch.device) -> _Holder:
        self.evaluator.to(device)
        return self


class TinyEvaluatorClassifier(_EvaluatorUser):
    """tinyworld's evaluator as a fairness classifier: probabilities of the tSA's head, category order
    of ``TSAS[tsa]["values"]`` (= the prompt set's ``categories`` order)."""

    name = "tinyworld evaluator"

    def predict(self, images, meta: Mapping[str, Any]) -> torch.Tensor:
        tsa = meta.get("tsa")
        spec = world_evaluator.TSAS.get(tsa) if isinstance(tsa, str) else None
        if spec is None:
            raise ValueError(f"tinyworld evaluator has no tSA {tsa!r}; expected one of {sorted(world_evaluator.TSAS)}")
        if list(meta.get("categories", spec["names"])) != list(spec["names"]):
            raise ValueError(f"tSA {tsa!r}: categories {meta.get('categories')} differ from the evaluator's {spec['names']}")
        probs = self.evaluator.predict(list(images))["probs"][spec["key"]]
        return torch.as_tensor(probs).float()


def tiny_evaluator_classifier() -> TinyEvaluatorClassifier:
    return TinyEvaluatorClassifier()


class TinyAlignmentJudge(_EvaluatorUser):
    """tinyworld's evaluator + ``check_prompt``: 1.0 when every fact the prompt asserts is read back."""

    name = "tinyworld evaluator (check_prompt: all asserted facts; per-check rates)"

    def __call__(self, images, prompt_metas):
        preds = self.evaluator.unbatch(self.evaluator.predict(list(images)))
        out = []
        for pm, p in zip(prompt_metas, preds, strict=True):
            r = world_evaluator.check_prompt(pm.get("labels", {}), p)
            out.append({"correct": float(r["correct"]), "checks": {k: bool(v) for k, v in r["checks"].items()}})
        return out


def tiny_alignment_judge() -> TinyAlignmentJudge:
    return TinyAlignmentJudge()


# --------------------------------------------------------------------------------------------
# reference sets (for FID and classifier accuracy), regenerated from seeds


def heldout_references(n: int = 500, family: str | None = None, face_dist: str = "biased") -> list:
    """Held-out tinyworld renders as PIL images (Fréchet-distance references)."""
    from PIL import Image

    images, _, _ = world_sets.heldout(int(n), family=family, face_dist=face_dist)
    return [Image.fromarray(im) for im in images]


def tsa_references(tsa: str, categories: Sequence[str], n: int = 50) -> tuple[list, list[int]]:
    """Labelled faces per tSA category (classifier accuracy): ``n`` per category, label = category index."""
    from PIL import Image

    images, labels = [], []
    for k in range(len(categories)):
        ims, _, _ = world_sets.reference_set(tsa, k, int(n))
        images += [Image.fromarray(im) for im in ims]
        labels += [k] * len(ims)
    return images, labels
