"""Device and dtype policy: the pipeline decides where tensors live.

Every tensor that a method, control, scorer or analysis creates for a pipeline call (token
vectors, masks, logit biases, value states, reference features) is made on, or moved once to,
the pipeline's execution device, in the dtype of the module that reads it (the UNet's for
anything added to UNet activations, the text encoder's for token vectors; attention logits and
probabilities are float32 by design). Two exceptions, both deliberate:

- Noise comes from per-image **CPU** ``torch.Generator`` s (diffusers' ``randn_tensor`` draws
  on the CPU and moves the latents to the device), so a seed gives the same initial latents on
  every device: this is what lets a CPU reference be checked on CUDA.
- The VAE: SDXL's VAE overflows in fp16. It stays in the pipeline's dtype with
  ``config.force_upcast = True`` and the SDXL pipeline upcasts it to fp32 for the decode and
  back afterwards (diffusers' own mechanism); a user-supplied fp16-safe VAE (suite key ``vae``)
  keeps its own ``force_upcast`` (false for the fp16-fix VAEs) and decodes in fp16.
  ``vae_decode_dtype`` tells code that decodes by hand which dtype to use.

Scorers have no pipeline: each runs its networks (CLIP, Inception, ImageReward, DreamSim, the
tinyworld evaluator) in float32 on the device the scoring driver gives it (``Scorer.to``;
``t2ibench score --device``, default CUDA when available), moves each batch's inputs there and
returns its values on the host, so per-image values and their cache do not depend on the device.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import UserError


def resolve_device(requested: str | torch.device | None, option: str = "--device") -> torch.device:
    """The device a command runs on: ``requested`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...) or,
    when None, CUDA if available, else the CPU. An unknown name, or CUDA/MPS on a machine without
    it, is one ``UserError`` line naming ``option``."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise UserError(f"{option} {requested!r}: not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "meta":
        raise UserError(f"{option} {requested!r}: a device without data (tensors there have shapes, no values), "
                        "so no image or score can be computed; expected cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option} {requested!r}: CUDA is not available on this machine; expected cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"{option} {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{option} {requested!r}: MPS is not available on this machine; expected cpu")
    return device


def pipeline_device(pipe: Any) -> torch.device:
    """Where the pipeline runs its models (diffusers' ``_execution_device``; else the UNet's)."""
    try:
        return torch.device(pipe._execution_device)
    except AttributeError:
        return torch.device(pipe.unet.device)


def module_device(module: Any) -> torch.device:
    """Where a module's first parameter (else buffer) lives; the CPU for a module with neither
    (or a plain callable standing in for one)."""
    tensors = [*getattr(module, "parameters", list)(), *getattr(module, "buffers", list)()]
    return tensors[0].device if tensors else torch.device("cpu")


def vae_decode_dtype(vae: Any) -> torch.dtype:
    """The dtype latents should be decoded in: fp32 for an fp16 VAE that asks to be upcast."""
    if vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False)):
        return torch.float32
    return vae.dtype


class upcast_vae:
    """Context manager: the VAE in ``vae_decode_dtype`` for a hand-made encode/decode, then back."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae
        self.saved = vae.dtype

    def __enter__(self) -> Any:
        target = vae_decode_dtype(self.vae)
        if target != self.saved:
            self.vae.to(dtype=target)
        return self.vae

    def __exit__(self, *exc: Any) -> None:
        if self.vae.dtype != self.saved:
            self.vae.to(dtype=self.saved)
