"""Stage ``vae``: the AutoencoderKL (64x64 RGB -> 16x16x4) into ``OUT/pipeline/vae``.

``--decoder-only`` (work folder ``WORK/vae-decoder``) fine-tunes the decoder of the shipped VAE
with the encoder frozen, so the UNet's latents stay valid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import data as D
from ..models import vae_kwargs
from .config import ResolvedConfig
from .export import replace_dir, staging, training_meta
from .loop import log, run_loop, setup


def train_vae(cfg: ResolvedConfig) -> dict[str, Any]:
    from diffusers import AutoencoderKL

    setup(cfg)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    vae = AutoencoderKL(**vae_kwargs(cfg.size)).to(cfg.device)
    name = "vae"
    if cfg.decoder_only:
        name = "vae-decoder"
        src = out / "pipeline" / "vae"
        if not (Path(cfg.work) / name / "ckpt.pt").exists():
            vae = AutoencoderKL.from_pretrained(str(src)).to(cfg.device)
            log.info(f"vae --decoder-only: starting from {src}")
        for mod in (vae.encoder, vae.quant_conv):
            mod.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["vae"]

    def step_fn(step: int) -> dict[str, Any]:
        imgs, _, _ = D.mixed_batch(base + step * cfg.batch, cfg.batch, face_dist="uniform")
        x = imgs.to(cfg.device) * 2 - 1
        lr = cfg.lr * min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr
        vae.train()
        if cfg.decoder_only:
            with torch.no_grad():
                post = vae.encode(x).latent_dist
            z = post.sample()
            kl = torch.zeros((), device=x.device)
        else:
            post = vae.encode(x).latent_dist
            z = post.sample()
            kl = post.kl().mean() / z[0].numel()
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        loss = mse + 0.5 * F.l1_loss(rec, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))
        return {"loss": loss.item(), "psnr": psnr, "kl": kl.item()}

    def export(step: int, elapsed: float) -> None:
        stage = staging(out, "vae")
        vae.eval()
        if not cfg.decoder_only:
            with torch.no_grad():
                imgs, _, _ = D.mixed_batch(D.HELDOUT_BASE + 777_000, 64, face_dist="biased")
                z = vae.encode(imgs.to(cfg.device) * 2 - 1).latent_dist.mean
            vae.register_to_config(scaling_factor=float(1.0 / z.std().item()))
        vae.to("cpu").save_pretrained(str(stage), safe_serialization=True)
        vae.to(cfg.device)
        replace_dir(stage, out / "pipeline" / "vae")
        key = "vae_decoder" if cfg.decoder_only else "vae"
        training_meta(out, key, {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                  "wall_time_s": round(elapsed), "device": cfg.device,
                                  "scaling_factor": vae.config.scaling_factor,
                                  "data": "50% faces (attributes uniform), 50% object scenes, rendered per step"})
        log.info(f"{name}: exported step {step} to {out}/pipeline/vae (scaling_factor {vae.config.scaling_factor:.4f})")

    return run_loop(cfg, name, {"model": vae, "opt": opt}, step_fn, export)
