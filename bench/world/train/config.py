"""The configuration of one training stage (``t2ibench world train`` flags) and per-stage defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..paths import weights_dir

STAGES = ("tokenizer", "clip", "vae", "unet", "evaluator", "itigen")
DEFAULTS: dict[str, tuple[int, int, float]] = {  # steps, batch, lr
    "clip": (6000, 64, 5e-4),
    "vae": (3000, 8, 8e-4),
    "unet": (40000, 32, 3e-4),
    "evaluator": (4000, 128, 1e-3),
    "itigen": (150, 64, 1e-2),  # ITI-GEN's own settings: 30 epochs x 5 steps, 64 images per category
}


@dataclass
class TrainConfig:
    stage: str
    work: str = "tw_train"
    out: str | None = None  # weights folder; None = the package's
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    ckpt_every: int = 100
    log_every: int = 20
    seed: int = 0
    device: str | None = None
    size: str = "base"  # "tiny" for tests
    threads: int | None = None
    decoder_only: bool = False  # vae: train the decoder only
    freeze_text: bool = False  # clip: keep the text tower (= the pipeline's text encoder) fixed
    init_from: str | None = None  # clip / unet: a model folder to start from (fresh start only; a checkpoint wins)
    token_loss: float = 0.0  # clip: weight of the token-level objective (train.token_loss); 0 = contrastive only
    token_batch: int = 256  # clip: captions per step of the token-level objective
    replace_text_encoder: bool = False  # clip: write pipeline/text_encoder even when a UNet is trained on the old one
    scene_mix: str = "render"  # unet: "render" (the renderer's 50/50 families) | "binding" (see unet.SCENE_MIXES)
    varied_captions: float = 0.0  # unet: share of object scenes captioned by captions.varied_caption
    n_latents: int = 20000  # unet: training renders whose latents are precomputed
    cfg_dropout: float = 0.1  # unet: share of empty captions (classifier-free guidance)
    ema: float = 0.999  # unet: EMA decay of exported weights
    snr_gamma: float | None = 5.0  # unet: min-SNR-gamma loss weighting (Hang et al. 2023); None = plain MSE
    lr_decay_steps: int = 0  # unet: the last N steps of the run decay the lr linearly to 0 (0 = constant)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> ResolvedConfig:
        """A copy with the stage's defaults, the package's weights folder and the device filled in."""
        steps, batch, lr = DEFAULTS.get(self.stage, (0, 0, 0.0))
        return ResolvedConfig(**{
            **asdict(self),
            "steps": self.steps if self.steps is not None else steps,
            "batch": self.batch or batch,
            "lr": self.lr or lr,
            "out": self.out or str(weights_dir()),
            "device": self.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        })


@dataclass
class ResolvedConfig(TrainConfig):
    """``TrainConfig.resolved()``: every optional field set (what the stages receive)."""

    out: str = ""
    steps: int = 0
    batch: int = 0
    lr: float = 0.0
    device: str = "cpu"
