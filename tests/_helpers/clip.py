"""Tiny randomly initialised CLIP models built in code (no download), and random images."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def tiny_random_clip(seed: int = 0, image_size: int = 32):
    """A random ``CLIPModel`` (text and vision width 32, 2 layers, projection 16), in eval mode."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    torch.manual_seed(seed)
    text = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
                          eos_token_id=49407, pad_token_id=49407, projection_dim=16)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=image_size, patch_size=8, projection_dim=16)
    cfg = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    return CLIPModel(cfg).eval()


def random_images(n: int, size: int = 32, seed: int = 0) -> list:
    """``n`` RGB PIL images of uniform random pixels."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
