"""Model configurations of the tinyworld models (the classes are the real SD / CLIP ones).

- tiny CLIP: ``transformers.CLIPModel``; text tower width 64 (4 layers, CLIP's 49,408-token
  vocabulary, context 77), vision tower a ViT of width 64 on 8x8 patches of the 64x64 image.
- VAE: ``diffusers.AutoencoderKL`` 64x64x3 -> 16x16x4 (two downsamplings).
- UNet: ``diffusers.UNet2DConditionModel`` on 16x16x4 latents, cross-attention width 64 (the
  text tower's hidden size), cross-attention at 16x16, 8x8 and 4x4.
- evaluator: :class:`t2ibench.world.evaluator.EvaluatorNet` (defined there).

``size="tiny"`` gives much smaller versions used by the tests (a few training steps).
"""

from __future__ import annotations

from typing import Any

EOS = 49407
BOS = 49406


def clip_config(size: str = "base"):
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    w = 64 if size == "base" else 16
    layers = 4 if size == "base" else 1
    text = CLIPTextConfig(
        vocab_size=49408, hidden_size=w, intermediate_size=4 * w, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=BOS, eos_token_id=EOS,
        pad_token_id=EOS, projection_dim=w, hidden_act="quick_gelu",
    )
    vision = CLIPVisionConfig(
        hidden_size=w * (2 if size == "base" else 1), intermediate_size=8 * w, num_hidden_layers=layers,
        num_attention_heads=4, image_size=64, patch_size=8, num_channels=3, projection_dim=w,
        hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=w)


def vae_kwargs(size: str = "base") -> dict[str, Any]:
    ch = (16, 32, 64) if size == "base" else (8, 16, 16)
    return dict(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=ch, layers_per_block=1, latent_channels=4,
        norm_num_groups=4, sample_size=64,  # 4+ channels per group: colour means survive the norms
    )


def unet_kwargs(size: str = "base", cross_dim: int = 64) -> dict[str, Any]:
    if size == "base":
        # sized for a 2-core CPU: 1.5M parameters, ~5.7 ms per sample-forward at batch 96 on 2
        # cores, i.e. ~0.29 s of UNet time per image at 25 steps with guidance (2 forwards a step);
        # a 4.3M-parameter (48, 96, 128) variant doubles that and puts the default suite over budget
        ch, groups, heads = (32, 64, 64), 8, 2
    else:
        ch, groups, heads = (16, 32, 32), 8, 2
    return dict(
        sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=ch, layers_per_block=1, cross_attention_dim=cross_dim,
        attention_head_dim=heads, norm_num_groups=groups,
    )


def scheduler_kwargs() -> dict[str, Any]:
    """SD 1.x's noise schedule (scaled-linear betas 0.00085..0.012, 1000 steps)."""
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
