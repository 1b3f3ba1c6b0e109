"""ImageReward-v1.0's network, ported to plain torch modules whose parameter names equal the
checkpoint's, so ``ImageReward.pt`` loads as is (the image-reward 1.5 package does not import with
transformers 5 and pins stale timm/fairscale; references.md):

- ``blip.visual_encoder``: BLIP ViT (ViT-L/16 at 224 for v1.0: width 1024, 24 blocks, 16
  heads, pre-norm, LayerNorm eps 1e-6, exact GELU, class token + learned positions).
- ``blip.text_encoder``: BLIP's "MED" BERT (no token-type embeddings, absolute positions) where
  every layer does self-attention, then cross-attention to the image tokens (keys/values from
  the image width), then the feed-forward block; post-norm, LayerNorm eps from med_config.
  Padding mask as BLIP: additive (1 − mask)·(−10000).
- ``mlp``: Linear 768→1024→128→64→16→1 (dropouts, no activations).
- score = (mlp(text_output[:, 0]) − 0.16717362830052426) / 1.0333394966054072.

Parity with the package's own modules on a random state_dict: tests/metrics/test_image_reward.py.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072

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
