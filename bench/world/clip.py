"""The tiny CLIP: ``load_clip()`` -> (transformers CLIPModel in float32, eval mode; CLIPTokenizer).

Stored in float16 on disk (clip/), loaded as float32. Images: float (N, 3, 64, 64) in [0, 1]
normalised with ``t2ibench.world.data.clip_normalize`` (OpenAI CLIP mean/std); the folder also
ships a ``preprocessor_config.json`` for ``transformers.CLIPProcessor``. Embedding width 64; logit
scale is the model's (``model.logit_scale.exp()``).
"""

from __future__ import annotations

from pathlib import Path


def load_clip(directory: str | Path | None = None, device: str = "cpu"):
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    from .paths import clip_dir, missing_reason

    directory = Path(directory) if directory else clip_dir()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(missing_reason("clip", directory))
    model = CLIPModel.from_pretrained(str(directory), torch_dtype=torch.float32).to(device).eval()
    tok = CLIPTokenizer.from_pretrained(str(directory))
    return model, tok

