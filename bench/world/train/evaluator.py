"""Stage ``evaluator``: the small CNN that reads back what an image shows, into ``OUT/evaluator``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .. import data as D
from .config import ResolvedConfig
from .export import training_meta
from .loop import log, run_loop, setup


def train_evaluator(cfg: ResolvedConfig) -> dict[str, Any]:
    from ..evaluator import EvaluatorNet, augment, evaluator_loss, save_evaluator, targets_from_labels

    setup(cfg)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    net = EvaluatorNet(width=32 if cfg.size == "base" else 8).to(cfg.device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["evaluator"]

    def step_fn(step: int) -> dict[str, Any]:
        imgs, _, labels = D.mixed_batch(base + step * cfg.batch, cfg.batch, face_dist="uniform")
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        x = augment(imgs, g).to(cfg.device)
        tg = {k: v.to(cfg.device) for k, v in targets_from_labels(labels).items()}
        lr = cfg.lr * min(1.0, (step + 1) / 100) * (0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0))) * 0.95 + 0.05)
        for grp in opt.param_groups:
            grp["lr"] = lr
        net.train()
        loss, acc = evaluator_loss(net(x), tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": acc}

    def export(step: int, elapsed: float) -> None:
        save_evaluator(net, out / "evaluator")
        training_meta(out, "evaluator", {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                          "wall_time_s": round(elapsed), "device": cfg.device,
                                          "params": sum(p.numel() for p in net.parameters()),
                                          "data": "50% faces (attributes uniform), 50% object scenes; "
                                                  "augmented with blur, noise, colour jitter"})
        log.info(f"evaluator: exported step {step} to {out}/evaluator")

    return run_loop(cfg, "evaluator", {"model": net, "opt": opt}, step_fn, export)
