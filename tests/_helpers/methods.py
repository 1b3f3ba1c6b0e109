"""Helpers shared by tests/methods: tiny CLIP, synthetic references, jobs, attention-layer probes."""

from __future__ import annotations

import torch

from t2ibench.types import ImageJob, PromptItem, SamplerConfig

SAMPLER = SamplerConfig(steps=4, guidance=5.0, height=64, width=64)


def tiny_clip(seed: int = 0, width: int = 32):
    """A random ``CLIPModel``: text width ``width`` (= the tiny pipelines' encoders), 32x32 images."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                         pad_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                           image_size=32, patch_size=8),
        projection_dim=32,
    )
    return CLIPModel(config).eval()


def coloured_images(rgb, n: int, seed: int) -> torch.Tensor:
    """(n, 3, 32, 32) CLIP-normalised pixels: a colour plus noise (a synthetic reference category)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor(rgb, dtype=torch.float32)[None, :, None, None]
    x = (base + 0.15 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    mean = torch.tensor([0.4815, 0.4578, 0.4082])[None, :, None, None]
    std = torch.tensor([0.2686, 0.2613, 0.2758])[None, :, None, None]
    return (x - mean) / std


REFS = {"red": ((0.9, 0.1, 0.1), 1), "blue": ((0.1, 0.1, 0.9), 2)}


def reference_tensors(n: int = 24) -> dict[str, torch.Tensor]:
    return {name: coloured_images(rgb, n, seed) for name, (rgb, seed) in REFS.items()}


FAIR_ITEM = PromptItem(
    id="Colour",
    text="a headshot of a person",
    meta={
        "tsa": "Colour",
        "categories": ["red", "blue"],
        "hard_prompts": ["a headshot of a person in red", "a headshot of a person in blue"],
        "class_prompts": ["a red photo", "a blue photo"],
        "base_prompt": "a headshot of a person",
    },
)


def fair_jobs(n: int = 2, method: str = "m"):
    return [ImageJob(method, "fair", FAIR_ITEM, i, 100 + i) for i in range(n)]


def text_jobs(texts, method: str = "m"):
    return [ImageJob(method, "align", PromptItem(f"p{i}", t), 0, 7 + i) for i, t in enumerate(texts)]


def run_plain(pipe, texts, steps=5, seed=3, callback=None, **kw):
    """Plain pipeline call returning numpy images (float32)."""
    extra = {"callback_on_step_end": callback} if callback else {}
    return pipe(
        prompt=list(texts), num_inference_steps=steps, guidance_scale=5.0, height=64, width=64,
        generator=[torch.Generator().manual_seed(seed + i) for i in range(len(texts))], output_type="np", **extra, **kw,
    ).images


def cross_layer(pipe):
    """(name, Attention module) of the first cross-attention layer at the finest level."""
    from t2ibench.attention import LayerSelector

    cross = LayerSelector.of("cross").select(pipe.unet)
    info = min(cross, key=lambda i: i.level)
    return info.name, pipe.unet.get_submodule(info.name.rsplit(".processor", 1)[0])


def unet_inputs_recorder(pipe):
    """Forward pre-hook recording the UNet's encoder states (and SDXL text_embeds) per call."""
    calls = []

    def hook(module, args, kwargs):
        ehs = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        added = kwargs.get("added_cond_kwargs") or {}
        calls.append((ehs.detach().clone(), added.get("text_embeds")))

    return calls, pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
