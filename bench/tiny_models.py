"""Tiny randomly initialised SD-1.x-shaped and SDXL-shaped pipelines, built in code: the models
``tiny-sd`` and ``tiny-sdxl`` (``t2ibench.models.TINY_MODELS``) that suites and tests run on.

They have the real classes and the real code paths (two text encoders and the added time
embeddings for SDXL; one encoder for SD 1.x), with widths of 32-64 so a 64x64 image takes
milliseconds per step on a CPU. Weights are random: the images mean nothing, the mechanics are
exercised. Seeded, so the same call builds the same weights.
"""

from __future__ import annotations

import torch

from .tokenizer import clip_tokenizer

_EOS = 49407


def _text_config(hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=_EOS,
        pad_token_id=_EOS,
        projection_dim=projection or hidden,
        hidden_act="gelu",
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )


def tiny_sd_pipeline(seed: int = 0):
    """A ``StableDiffusionPipeline`` (PNDM/PLMS scheduler, as SD 1.4) with random tiny weights.

    VAE factor 2: a 64x64 image has 32x32x4 latents. Cross-attention width 32.
    """
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    vae = _vae()
    text_encoder = CLIPTextModel(_text_config(32))
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
        set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_pipeline(seed: int = 0):
    """A ``StableDiffusionXLPipeline`` (Euler scheduler, as SDXL base) with random tiny weights.

    Two text encoders of width 32 (cross-attention width 64), the "text_time" added
    conditioning, VAE factor 2.
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=16,
    )
    vae = _vae()
    text_encoder = CLIPTextModel(_text_config(32))
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(32, projection=32))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading",
        steps_offset=1,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(pad_token="!"),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(kind: str, directory, seed: int = 0):
    """Build ``kind`` ("sd" or "sdxl") and ``save_pretrained`` it (safetensors) into ``directory``."""
    pipe = {"sd": tiny_sd_pipeline, "sdxl": tiny_sdxl_pipeline}[kind](seed)
    pipe.save_pretrained(str(directory), safe_serialization=True)
    return directory
