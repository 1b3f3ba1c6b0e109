"""Training of the tinyworld models, stage by stage: tokenizer, clip, vae, unet, evaluator, itigen.

Each stage trains into a work directory ``WORK/<stage>/`` (``ckpt.pt`` every ``ckpt_every``
steps, ``log.txt``) and exports with ``save_pretrained`` (safetensors) into the weights folder
``OUT`` (default: the package's ``t2ibench/world/weights``) at every checkpoint. Rerunning the
same command resumes from the checkpoint; raising ``--steps`` continues training. The data of
step ``i`` is rendered from seeds derived from ``i``, so a resumed run sees what an
uninterrupted run would have seen. CUDA is used when available, else the CPU.

Dependencies between stages: ``clip`` writes the text tower used by ``unet`` (the pipeline's
text encoder) and ``clip/``; ``vae`` writes ``pipeline/vae``; ``unet`` needs both and
precomputes the VAE latents of its training renders once (``WORK/unet/latents-*.pt``).
``vae --decoder-only`` continues training the decoder alone, keeping the encoder (and thus the
UNet's latents) unchanged.

Layout: ``config`` (``TrainConfig``), ``loop`` (resumable loop, checkpoints, EMA), ``export``
(writing the weights folder), and one module per stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...log import log_to_file
from .clip import clip_captions, contrastive_loss, export_clip, train_clip
from .config import DEFAULTS, STAGES, ResolvedConfig, TrainConfig
from .evaluator import train_evaluator
from .export import save_half_precision
from .itigen import ITIGEN_REFERENCE_START, train_itigen
from .loop import EMA, log, run_loop
from .tokenizer import train_tokenizer
from .unet import export_pipeline, min_snr_weights, prepare_latents, train_unet
from .vae import train_vae

__all__ = [
    "DEFAULTS", "EMA", "ITIGEN_REFERENCE_START", "STAGES", "ResolvedConfig", "TrainConfig", "clip_captions",
    "contrastive_loss", "export_clip", "export_pipeline", "min_snr_weights", "prepare_latents", "run_loop",
    "save_half_precision", "train",
]

TRAINERS: dict[str, Callable[[ResolvedConfig], dict[str, Any]]] = {
    "tokenizer": train_tokenizer, "clip": train_clip, "vae": train_vae, "unet": train_unet,
    "evaluator": train_evaluator, "itigen": train_itigen,
}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) one stage; returns ``{"step", "elapsed"}``. Log lines also go to
    ``WORK/<stage>/log.txt``."""
    rcfg = cfg.resolved()
    fn = TRAINERS.get(rcfg.stage)
    if fn is None:
        raise ValueError(f"unknown stage {rcfg.stage!r}; expected one of {STAGES}")
    Path(rcfg.out).mkdir(parents=True, exist_ok=True)
    with log_to_file(log, Path(rcfg.work) / rcfg.stage / "log.txt"):
        return fn(rcfg)
