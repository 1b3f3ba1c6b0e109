"""The training loop machinery shared by the stages: resumable checkpoints, logging, EMA.

A stage hands ``run_loop`` its modules/optimisers (anything with ``state_dict``), a ``step_fn``
(one optimisation step, returns scalars to log) and an ``export_fn`` (writes the weights folder).
Checkpoints go to ``WORK/<stage>/ckpt.pt``: tensors and plain containers only, written
atomically, and read back with ``torch.load(weights_only=True)``, so a file planted in the work
folder cannot run code.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from ...errors import UserError
from ...fileio import atomic_write_bytes
from ...log import get_logger
from .config import ResolvedConfig

log = get_logger("t2ibench.world.train")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


def setup(cfg: ResolvedConfig) -> None:
    """Per-stage process settings: CPU threads and the torch seed."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)


def save_tensors(obj: Any, path: Path) -> None:
    """``torch.save`` of tensors and plain containers, written atomically (unique temporary name)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_tensors(path: Path, map_location: str | torch.device | None = None) -> Any:
    """Read a file written by ``save_tensors`` with ``weights_only=True``.

    Anything beyond tensors and plain containers (a pickled object that could run code) is
    refused with a ``UserError`` naming the file; nothing in it is executed.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a t2ibench training file (it holds objects other than tensors and plain "
                        f"containers, refused by torch.load(weights_only=True): {first}); delete it to start "
                        "this stage afresh") from None


def checkpoint_path(cfg: ResolvedConfig, name: str) -> Path:
    return Path(cfg.work) / name / "ckpt.pt"


def run_loop(cfg: ResolvedConfig, name: str, state: dict[str, Stateful], step_fn: Callable[[int], dict[str, float]],
             export_fn: Callable[[int, float], None]) -> dict[str, Any]:
    """Run ``step_fn`` from the checkpointed step up to ``cfg.steps``; checkpoint and export every
    ``cfg.ckpt_every`` steps and at the end. Returns ``{"step", "elapsed"}`` (seconds trained)."""
    ckpt = checkpoint_path(cfg, name)
    step, elapsed = 0, 0.0
    if ckpt.exists():
        blob = load_tensors(ckpt, map_location=cfg.device)
        for k, obj in state.items():
            if k in blob["state"]:
                obj.load_state_dict(blob["state"][k])
        step, elapsed = int(blob["step"]), float(blob["elapsed"])
        log.info(f"{name}: resumed at step {step} ({elapsed:.0f} s trained so far)")
    else:
        log.info(f"{name}: starting from scratch; config {json.dumps(asdict(cfg), default=str)}")
    if step >= cfg.steps:
        log.info(f"{name}: already at {step} >= {cfg.steps} steps; exporting")
        export_fn(step, elapsed)
        return {"step": step, "elapsed": elapsed}
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc=name, disable=not cfg.progress, dynamic_ncols=True)
    t0 = time.time()
    base_elapsed = elapsed
    running: dict[str, float] = {}
    while step < cfg.steps:
        stats = step_fn(step)
        step += 1
        for k, v in stats.items():
            running[k] = running.get(k, 0.0) * 0.9 + float(v) * 0.1 if k in running else float(v)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
        elapsed = base_elapsed + time.time() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.info(f"{name} step {step}/{cfg.steps} " + " ".join(f"{k}={v:.5g}" for k, v in running.items())
                     + f" elapsed={elapsed:.0f}s")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_tensors({"state": {k: o.state_dict() for k, o in state.items()}, "step": step,
                          "elapsed": elapsed, "config": asdict(cfg)}, ckpt)
            export_fn(step, elapsed)
    bar.close()
    log.info(f"{name}: done at step {step} ({elapsed:.0f} s)")
    return {"step": step, "elapsed": elapsed}


class EMA:
    """Exponential moving average of parameters (state_dict-compatible for checkpoints)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.shadow = state_dict["shadow"]
        self.updates = int(state_dict["updates"])

    def copy_to(self, module: torch.nn.Module) -> None:
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in self.shadow.items()})
