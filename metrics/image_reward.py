"""ImageReward-v1.0 on current torch/transformers: checkpoint loader, preprocessing, the Metric and
the ``image_reward`` scorer. The network (a port of ImageReward's BLIP + MLP that loads its
checkpoint as is) is in :mod:`~t2ibench.metrics.image_reward_network`.

Inputs as ImageReward's ``score``: BERT ``bert-base-uncased`` tokens, padded to 35, truncated;
image resized (shorter side) to 224 with PIL bicubic, centre-cropped, CLIP mean/std. With no
checkpoint the scorer says "not available".
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torchmetrics import Metric

from t2ibench.metrics.common import (
    CLIP_MEAN,
    CLIP_STD,
    ColumnSample,
    NotAvailable,
    Scorer,
    mean_ci,
    mean_sample,
    prompt_of,
    wrap_updates,
)
from t2ibench.metrics.image_reward_network import REWARD_MEAN, REWARD_STD, ImageRewardModel
from t2ibench.placement import module_device

MAX_TEXT_LENGTH = 35

__all__ = ["MAX_TEXT_LENGTH", "REWARD_MEAN", "REWARD_STD", "ImageReward", "ImageRewardModel", "ImageRewardScorer",
           "find_checkpoint", "image_reward", "load_bert_tokenizer", "load_image_reward", "preprocess_image"]


# --------------------------------------------------------------------------------------------
# Preprocessing


def preprocess_image(image, size: int = 224) -> torch.Tensor:
    """ImageReward's transform: shorter side → size (PIL bicubic), centre crop, CLIP mean/std. (3, S, S)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    image = TF.resize(image.convert("RGB"), size, interpolation=InterpolationMode.BICUBIC)
    image = TF.center_crop(image, size)
    return TF.normalize(TF.to_tensor(image), CLIP_MEAN, CLIP_STD)


# --------------------------------------------------------------------------------------------
# Locating and loading the checkpoint


def find_checkpoint(path: str | None = None) -> tuple[Path, Path]:
    """(ImageReward.pt, med_config.json) from ``path``, $T2IBENCH_IMAGEREWARD, ~/.cache/ImageReward or the HF cache."""
    candidates: list[Path] = []
    for p in (path, os.environ.get("T2IBENCH_IMAGEREWARD")):
        if p:
            candidates.append(Path(p).expanduser())
    candidates.append(Path.home() / ".cache" / "ImageReward")
    hf_home = Path(os.environ.get("HF_HUB_CACHE", os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface") ))
    for hub in {hf_home, hf_home / "hub"}:
        candidates += [Path(p) for p in sorted(glob.glob(str(hub / "models--THUDM--ImageReward" / "snapshots" / "*")))]
    for c in candidates:
        ckpt = c if c.is_file() else c / "ImageReward.pt"
        med = ckpt.parent / "med_config.json"
        if ckpt.is_file() and med.is_file():
            return ckpt, med
    raise NotAvailable(
        "ImageReward-v1.0 checkpoint not found (ImageReward.pt + med_config.json; looked in "
        + ", ".join(str(c) for c in candidates[:3])
        + " and the HF cache; no download here)"
    )


def load_bert_tokenizer(path: str | None = None):
    """BLIP's tokenizer: bert-base-uncased + [DEC] bos + [ENC], from a local path or the HF cache."""
    from transformers import BertTokenizer

    try:
        tok = BertTokenizer.from_pretrained(path or "bert-base-uncased", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise NotAvailable(f"bert-base-uncased tokenizer not found locally: {str(exc).splitlines()[0][:120]}") from None
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def load_image_reward(path: str | None = None) -> ImageRewardModel:
    ckpt, med = find_checkpoint(path)
    model = ImageRewardModel(json.loads(med.read_text()))
    model.load_checkpoint(torch.load(ckpt, map_location="cpu", weights_only=True))
    return model.eval()


# --------------------------------------------------------------------------------------------
# Functional, Metric, Scorer


@torch.inference_mode()
def image_reward(model: ImageRewardModel, tokenizer, images: Sequence[Any], prompts: Sequence[str]) -> torch.Tensor:
    """ImageReward scores (float64, (B,), on the host) of (image, prompt) pairs, computed on the model's device."""
    enc = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH, return_tensors="pt")
    pixels = torch.stack([preprocess_image(im, model.image_size) for im in images])
    device = module_device(model)
    return model(pixels.to(device), enc["input_ids"].to(device), enc["attention_mask"].to(device)).double().cpu()


class ImageReward(Metric):
    """torchmetrics-style mean ImageReward. ``update(images, prompts)`` scores with ``model`` and
    ``tokenizer``; ``update_scores(rewards)`` takes precomputed rewards (B,) (then both may be None).
    States: ``total``, ``total_sq`` (float64), ``n`` (sum-merged)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    total: torch.Tensor
    total_sq: torch.Tensor
    n: torch.Tensor

    def __init__(self, model: ImageRewardModel | None = None, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        wrap_updates(self, "update_scores")

    def update(self, images: Sequence[Any], prompts: Sequence[str]) -> None:
        if self.model is None or self.tokenizer is None:
            raise ValueError("ImageReward metric built without model and tokenizer: feed update_scores")
        self.update_scores(image_reward(self.model, self.tokenizer, images, prompts))

    def update_scores(self, rewards: Any) -> None:
        """Precomputed standardised rewards (B,)."""
        r = torch.as_tensor(rewards, dtype=torch.float64).flatten().to(self.total.device)
        self.total += r.sum()
        self.total_sq += (r * r).sum()
        self.n += r.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.n


class ImageRewardScorer(Scorer):
    """Per image: ImageReward of (image, its prompt); aggregate: mean with a 95 % bootstrap interval.

    params: ``checkpoint`` (folder with ImageReward.pt + med_config.json), ``tokenizer``
    (bert-base-uncased folder; default: HF cache).
    """

    network_attributes = ("_model",)
    name = "image_reward"
    lower_is_better = False

    def __init__(self, checkpoint: str | None = None, tokenizer: str | None = None, batch_size: int = 8, _model=None, _tokenizer=None) -> None:
        self.checkpoint, self.tokenizer_path, self.batch_size = checkpoint, tokenizer, batch_size
        self._model, self._tokenizer = _model, _tokenizer

    def check_available(self) -> None:
        if self._model is None:
            find_checkpoint(self.checkpoint)
        if self._tokenizer is None:
            self._tokenizer = load_bert_tokenizer(self.tokenizer_path)
        if self._model is None:
            self._model = self.place(load_image_reward(self.checkpoint))

    def config(self) -> dict[str, Any]:
        return {"model": "ImageReward-v1.0 (t2ibench port)", "text_length": MAX_TEXT_LENGTH}

    def conventions(self) -> dict[str, Any]:
        return {"model": "ImageReward-v1.0", "standardisation": f"(raw - {REWARD_MEAN}) / {REWARD_STD}",
                "preprocess": "bicubic 224, centre crop, CLIP mean/std", "text": "bert-base-uncased, 35 tokens"}

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"prompt": prompt_of(meta)}

    def score(self, images, metas):
        self.check_available()
        r = image_reward(self._model, self._tokenizer, images, [prompt_of(m) for m in metas])
        return [float(x) for x in r]

    def aggregate(self, values, metas):
        """``image_reward``: the :class:`ImageReward` metric over the per-image rewards, with a 95 % bootstrap interval."""
        entry = mean_ci(values)
        if entry["value"] is not None:
            metric = ImageReward()
            metric.update_scores(values)
            entry["value"] = float(metric.compute())
        return {self.name: {**entry, "lower_is_better": False}}

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        return {self.name: mean_sample(range(len(values)), values)}
