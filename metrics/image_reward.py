"""ImageReward-v1.0 on current torch/transformers: a port of its architecture, loading its checkpoint.

The image-reward 1.5 package does not import with transformers 5 and pins stale timm/fairscale
(references.md). This module re-implements the same computation with plain torch modules whose
parameter names equal the checkpoint's, so ``ImageReward.pt`` loads as is:

- ``blip.visual_encoder``: BLIP ViT (ViT-L/16 at 224 for v1.0: width 1024, 24 blocks, 16
  heads, pre-norm, LayerNorm eps 1e-6, exact GELU, class token + learned positions).
- ``blip.text_encoder``: BLIP's "MED" BERT (no token-type embeddings, absolute positions) where
  every layer does self-attention, then cross-attention to the image tokens (keys/values from
  the image width), then the feed-forward block; post-norm, LayerNorm eps from med_config.
  Padding mask as BLIP: additive (1 − mask)·(−10000).
- ``mlp``: Linear 768→1024→128→64→16→1 (dropouts, no activations).
- score = (mlp(text_output[:, 0]) − 0.16717362830052426) / 1.0333394966054072.

Inputs as ImageReward's ``score``: BERT ``bert-base-uncased`` tokens, padded to 35, truncated;
image resized (shorter side) to 224 with PIL bicubic, centre-cropped, CLIP mean/std.

Parity with the package's own modules on a random state_dict is tested in
tests/metrics/test_image_reward.py. With no checkpoint the scorer says "not available".
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
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
from t2ibench.placement import module_device

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TEXT_LENGTH = 35

# --------------------------------------------------------------------------------------------
# BLIP vision transformer


class _PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _ViTAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _ViTMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _ViTAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _ViTMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BlipVisionTransformer(nn.Module):
    """BLIP's ViT: (B, 3, S, S) normalised pixels → (B, 1 + (S/p)², width) tokens after the final norm."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 1024, depth: int = 24, num_heads: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = _PatchEmbed(img_size, patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList([_ViTBlock(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed[:, : x.size(1)]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


# --------------------------------------------------------------------------------------------
# BLIP MED BERT (encoder with cross-attention in every layer)


class _BertEmbeddings(nn.Module):
    position_ids: torch.Tensor

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        h = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], h, padding_idx=cfg.get("pad_token_id", 0))
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"]).expand((1, -1)), persistent=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pos = self.position_ids[:, : input_ids.shape[1]]
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(pos))


class _BertSelfAttention(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], kv_width: int) -> None:
        super().__init__()
        h = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.head_dim = h // self.num_heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(kv_width, h)
        self.value = nn.Linear(kv_width, h)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(context)), self._split(self.value(context))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)


class _BertSelfOutput(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], in_width: int | None = None) -> None:
        super().__init__()
        h = cfg["hidden_size"]
        self.dense = nn.Linear(in_width or h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _BertAttention(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], kv_width: int) -> None:
        super().__init__()
        self.self = _BertSelfAttention(cfg, kv_width)
        self.output = _BertSelfOutput(cfg)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, context, mask), x)


class _BertIntermediate(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"med_config hidden_act {act!r}; this port implements BLIP's 'gelu'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _BertLayer(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.attention = _BertAttention(cfg, cfg["hidden_size"])
        self.crossattention = _BertAttention(cfg, cfg["encoder_width"])
        self.intermediate = _BertIntermediate(cfg)
        self.output = _BertSelfOutput(cfg, cfg["intermediate_size"])

    def forward(self, x, self_mask, image_embeds, image_mask):
        x = self.attention(x, x, self_mask)
        x = self.crossattention(x, image_embeds, image_mask)
        return self.output(self.intermediate(x), x)


class _BertEncoder(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_BertLayer(cfg) for _ in range(cfg["num_hidden_layers"])])


class MedBertEncoder(nn.Module):
    """BLIP's text encoder in "multimodal" mode: text tokens attend to themselves, then to the image."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        if not cfg.get("add_cross_attention", True):
            raise ValueError("med_config without cross-attention is not ImageReward's")
        self.config = dict(cfg)
        self.embeddings = _BertEmbeddings(cfg)
        self.encoder = _BertEncoder(cfg)

    def forward(self, input_ids, attention_mask, image_embeds, image_mask=None) -> torch.Tensor:
        dtype = self.embeddings.word_embeddings.weight.dtype
        self_mask = ((1.0 - attention_mask[:, None, None, :].to(dtype)) * -10000.0)
        img_mask = None if image_mask is None else ((1.0 - image_mask[:, None, None, :].to(dtype)) * -10000.0)
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, self_mask, image_embeds, img_mask)
        return x


# --------------------------------------------------------------------------------------------
# The reward model


class _Blip(nn.Module):
    def __init__(self, med_config: Mapping[str, Any], image_size: int, vit: Mapping[str, int], embed_dim: int = 256) -> None:
        super().__init__()
        self.visual_encoder = BlipVisionTransformer(img_size=image_size, **vit)
        cfg = {**med_config, "encoder_width": vit["embed_dim"]}
        self.text_encoder = MedBertEncoder(cfg)
        # present in the checkpoint (BLIP pretraining heads), unused by the score
        self.vision_proj = nn.Linear(vit["embed_dim"], embed_dim)
        self.text_proj = nn.Linear(cfg["hidden_size"], embed_dim)


class _RewardMLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


VIT_LARGE = {"patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16}


class ImageRewardModel(nn.Module):
    """ImageReward: ``forward(pixel_values, input_ids, attention_mask)`` → standardised reward (B,)."""

    def __init__(self, med_config: Mapping[str, Any], image_size: int = 224, vit: Mapping[str, int] = VIT_LARGE) -> None:
        super().__init__()
        self.image_size = image_size
        self.blip = _Blip(med_config, image_size, dict(vit))
        self.mlp = _RewardMLP(int(med_config["hidden_size"]))
        self.mean, self.std = REWARD_MEAN, REWARD_STD

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        image_embeds = self.blip.visual_encoder(pixel_values)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        text = self.blip.text_encoder(input_ids, attention_mask, image_embeds, image_mask)
        raw = self.mlp(text[:, 0, :].float())
        return ((raw - self.mean) / self.std).squeeze(-1)

    def load_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load ImageReward.pt's state_dict; every parameter of the port must be present."""
        missing, unexpected = self.load_state_dict(dict(state_dict), strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing:
            raise ValueError(f"ImageReward checkpoint lacks {len(missing)} parameters, e.g. {missing[:3]}")
        self._unexpected = list(unexpected)


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
