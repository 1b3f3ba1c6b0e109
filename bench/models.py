"""Loading text-to-image pipelines by name or path, offline.

Names: ``tiny-sd`` / ``tiny-sdxl`` (random tiny pipelines built in code, for tests and smoke
runs; their images mean nothing), ``sdxl`` (stabilityai/stable-diffusion-xl-base-1.0), ``sd14`` (CompVis/stable-diffusion-v1-4),
``sd15`` (stable-diffusion-v1-5/stable-diffusion-v1-5), ``tinyworld`` (shipped in the package),
any Hugging Face id already in the local cache, or any local diffusers pipeline directory.
Nothing is downloaded: weights come from a directory, ``$T2IBENCH_MODELS/<name>``, or the
Hugging Face cache (``HF_HUB_OFFLINE=1`` works). Dtype: fp16 on CUDA (bf16 on request), fp32 on
CPU; every module in that dtype. SDXL's VAE overflows in fp16 (NaN images): it is kept in fp16
with ``config.force_upcast = True``, and the SDXL pipeline itself upcasts it to fp32 for the decode
(diffusers' mechanism); or give an fp16-safe VAE folder (suite key ``vae``). See ``placement``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class ModelRef:
    """A model name resolved to a local directory and a family (``sd`` or ``sdxl``)."""

    name: str
    repo_id: str | None
    path: Path
    family: str


TINY_MODELS = {"tiny-sd": "tiny_sd_pipeline", "tiny-sdxl": "tiny_sdxl_pipeline"}

KNOWN_MODELS = {
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd14": "CompVis/stable-diffusion-v1-4",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}


def _family(path: Path) -> str:
    import json

    index = json.loads((path / "model_index.json").read_text())
    cls = str(index.get("_class_name", ""))
    return "sdxl" if "XL" in cls else "sd"


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - very old hub
        return os.path.expanduser("~/.cache/huggingface/hub")


def resolve_model(name: str) -> ModelRef:
    """Find ``name`` on disk; a ``UserError`` naming the places searched when it is missing."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        if not (candidate / "model_index.json").is_file():
            raise UserError(f"model directory {candidate} has no model_index.json; expected a diffusers pipeline saved with save_pretrained")
        return ModelRef(name, None, candidate, _family(candidate))
    if name == "tinyworld":
        from .world import pipeline_available, pipeline_dir

        path = Path(pipeline_dir())
        if not pipeline_available():
            raise UserError(f"the tinyworld pipeline is not in this installation ({path}); train it with `t2ibench world train`")
        return ModelRef(name, None, path, "sd")
    repo_id = KNOWN_MODELS.get(name, name)
    searched = []
    env_root = os.environ.get("T2IBENCH_MODELS")
    if env_root:
        for sub in (name, repo_id, repo_id.replace("/", "--")):
            local = Path(env_root) / sub
            searched.append(str(local))
            if (local / "model_index.json").is_file():
                return ModelRef(name, repo_id, local, _family(local))
    if "/" in repo_id:
        searched.append(f"{_hf_cache_dir()} ({repo_id})")
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(repo_id, local_files_only=True))
            if (snap / "model_index.json").is_file():
                return ModelRef(name, repo_id, snap, _family(snap))
        except Exception:
            pass
    if name not in KNOWN_MODELS and "/" not in name:
        raise UserError(
            f"unknown model {name!r}: expected one of {sorted(KNOWN_MODELS) + ['tinyworld'] + sorted(TINY_MODELS)}, "
            "a Hugging Face id in the local cache, or a local diffusers pipeline directory"
        )
    raise UserError(
        f"model {name!r} ({repo_id}) not found; searched {', '.join(searched) or 'nowhere'}; "
        f"download it where there is network (`hf download {repo_id}`) into the Hugging Face cache, "
        f"or set T2IBENCH_MODELS to a folder holding it, or give a local pipeline directory"
    )


def default_dtype(device: str, precision: str = "auto"):
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision != "auto":
        if precision not in table:
            raise UserError(f"precision {precision!r}: expected one of auto, fp32, fp16, bf16")
        return table[precision]
    return torch.float16 if device.startswith("cuda") else torch.float32


def _dtype_keyword() -> str:
    """The ``from_pretrained`` keyword for the dtype: diffusers renamed ``torch_dtype`` to
    ``dtype`` (the old name warns, and goes in 1.0); older releases know only ``torch_dtype``."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def resolve_vae(directory: str) -> Path:
    """A local diffusers ``AutoencoderKL`` folder (``config.json`` + weights); else a ``UserError``."""
    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"vae: {directory}: no config.json there; expected a folder of a diffusers AutoencoderKL saved with save_pretrained")
    return path


def load_pipeline(name: str, device: str | None = None, precision: str = "auto", vae: str | None = None) -> Any:
    """Load the pipeline for ``name`` from disk onto ``device`` (default: CUDA if present).

    ``vae``: an ``AutoencoderKL`` folder replacing the model's VAE (its own ``force_upcast`` is
    kept: an fp16-safe VAE says false and decodes in fp16).
    """
    import torch
    from diffusers import AutoencoderKL, DiffusionPipeline

    from .placement import resolve_device

    device = str(resolve_device(device))
    dtype = default_dtype(device, precision)
    extra: dict[str, Any] = {}
    if vae:
        extra["vae"] = AutoencoderKL.from_pretrained(str(resolve_vae(vae)), **{_dtype_keyword(): dtype}, local_files_only=True)
    if name in TINY_MODELS:
        from . import tiny_models

        pipe = getattr(tiny_models, TINY_MODELS[name])(seed=0)
        if vae:
            pipe.vae = extra["vae"]
        family = "sdxl" if name == "tiny-sdxl" else "sd"
    else:
        ref = resolve_model(name)
        pipe = DiffusionPipeline.from_pretrained(str(ref.path), **{_dtype_keyword(): dtype}, **extra, local_files_only=True)
        family = ref.family
        if getattr(pipe, "safety_checker", None) is not None:
            # The checker blanks images it flags; a benchmark scores what the model made.
            pipe.safety_checker = None
    if name in TINY_MODELS:
        pipe.to(device=device, dtype=dtype)  # built in code in float32
    else:
        pipe.to(device)  # loaded in its dtype: casting with to() again makes diffusers warn on every load
    if family == "sdxl" and dtype == torch.float16 and not vae:
        # the model's own SDXL VAE overflows in fp16: the pipeline upcasts it for the decode
        pipe.vae.register_to_config(force_upcast=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


SCHEDULERS = {
    "default": None,
    "pndm": "PNDMScheduler",  # PLMS, as SD 1.4 / ITI-GEN / FairQueue
    "plms": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "ddpm": "DDPMScheduler",
}


def set_scheduler(pipe: Any, name: str) -> None:
    """Replace the pipeline's scheduler by ``name`` built from the current scheduler's config."""
    if name not in SCHEDULERS:
        raise UserError(f"sampler.scheduler = {name!r}: expected one of {sorted(SCHEDULERS)}")
    cls_name = SCHEDULERS[name]
    if cls_name is None:
        return
    import diffusers

    cls = getattr(diffusers, cls_name)
    extra = {"skip_prk_steps": True} if cls_name == "PNDMScheduler" else {}
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **extra)


def check_resolution(pipe: Any, height: int, width: int, where: str = "sampler") -> None:
    """Height and width must be multiples of 8 and of the VAE's downsampling factor."""
    import math

    factor = int(getattr(pipe, "vae_scale_factor", 8))
    multiple = math.lcm(8, factor)
    for key, value in (("height", height), ("width", width)):
        if value % multiple:
            raise UserError(f"{where}.{key} = {value}: the VAE cannot take it; expected a multiple of {multiple}")
