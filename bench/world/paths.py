"""Where the shipped tinyworld weights live (inside the installed package).

``weights_dir()/pipeline``  a StableDiffusionPipeline (``from_pretrained(dir)`` loads offline)
``weights_dir()/clip``      transformers CLIPModel + CLIPTokenizer + CLIPImageProcessor (fp16 on disk)
``weights_dir()/evaluator`` the evaluator CNN (model.safetensors + config.json)
``weights_dir()/itigen``    ITI-GEN inclusive tokens per face tSA (``tokens_dir: "@tinyworld"``)

Importing this module is cheap (no torch). ``T2IBENCH_WORLD_WEIGHTS`` overrides the folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def weights_dir() -> Path:
    env = os.environ.get("T2IBENCH_WORLD_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parent / "weights"


def pipeline_dir() -> Path:
    """The tinyworld StableDiffusionPipeline directory (model name ``tinyworld``)."""
    return weights_dir() / "pipeline"


def clip_dir() -> Path:
    return weights_dir() / "clip"


def evaluator_dir() -> Path:
    return weights_dir() / "evaluator"


def itigen_dir() -> Path:
    return weights_dir() / "itigen"


def pipeline_available() -> bool:
    return (pipeline_dir() / "model_index.json").is_file() and (pipeline_dir() / "unet").is_dir()


def missing_reason(what: str, directory: Path) -> str:
    return (f"not available: tinyworld {what} weights not found in {directory}; "
            f"train them with `t2ibench world train --stage {what}` (see bench/world/README)")
