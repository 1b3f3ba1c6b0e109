"""FID feature networks: float (B, 3, S, S) in [0, 1] → features (B, d), resolved by name.

Inception-v3 pool3 (2048-d) only from local files (no download): clean-fid's own TorchScript
network (``inception-2015-12-05.pt``, a path you supply: ``network: PATH.pt`` or
``$T2IBENCH_CLEANFID_INCEPTION``), fed floats as clean-fid feeds it, so FID equals clean-fid's;
else torch-fidelity's port, which takes only uint8, so the preprocessed floats are quantised
(close to clean-fid, not equal). Otherwise any ``nn.Module`` with ``num_features`` and
``name`` (e.g. tinyworld's tiny CLIP image features). The network's name is part of every report
and of the reference-statistics cache key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from t2ibench.metrics.common import CLIP_MEAN, CLIP_STD, NotAvailable, unwrap_features
from t2ibench.placement import module_device


class ClipImageFeatures(nn.Module):
    """CLIP image embeddings (projected, not normalised) of images in [0, 1] at the model's size.

    Works with transformers ``CLIPModel`` (4.x and 5.x) and open_clip models (``encode_image``).
    """

    model: Any  # transformers CLIPModel or an open_clip model (duck-typed: get_image_features / encode_image)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, name: str, mean=CLIP_MEAN, std=CLIP_STD) -> None:
        super().__init__()
        self.model = model.eval()
        self.name = name
        clip: Any = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if hasattr(model, "get_image_features"):
            self.num_features = int(clip.config.projection_dim)
        else:
            self.num_features = int(clip.visual.output_dim)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        if hasattr(self.model, "get_image_features"):
            return unwrap_features(self.model.get_image_features(pixel_values=x)).float()
        return self.model.encode_image(x).float()


def inception_weights_path() -> Path | None:
    """Local torch-fidelity Inception-v3 FID weights, if any ($T2IBENCH_INCEPTION_WEIGHTS or torch hub cache)."""
    env = os.environ.get("T2IBENCH_INCEPTION_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"):
        if (hub / name).is_file():
            return hub / name
    return None


class CleanFIDInception(nn.Module):
    """clean-fid's TorchScript Inception-v3 (``inception-2015-12-05.pt``) as clean-fid calls it in
    ``clean`` mode (``cleanfid/inception_torchscript.py:43-55``): input in [0, 255] as floats,
    normalised ``(x − 128) / 128``, ``base.layers`` → pool3 features (B, 2048).

    Input: float (B, 3, 299, 299) in [0, 1] (this module multiplies by 255). Raises
    :class:`NotAvailable` when the file is missing or not TorchScript.
    """

    num_features = 2048
    quantizes = False
    clean_fid = True  # the network clean-fid itself uses: with its preprocessing, FID equals clean-fid's
    image_size = 299

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise NotAvailable(f"clean-fid Inception {path} not found; expected clean-fid's TorchScript inception-2015-12-05.pt")
        try:
            self.base = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise NotAvailable(f"clean-fid Inception {path}: not a TorchScript file ({exc})") from None
        self.name = f"inception-v3 (clean-fid TorchScript {path.name}, pool3 2048-d, float input)"

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * 255.0
        return self.base.layers.forward((x - 128.0) / 128.0).reshape(x.shape[0], self.num_features)


def cleanfid_inception_path() -> Path | None:
    """clean-fid's TorchScript Inception named by $T2IBENCH_CLEANFID_INCEPTION, if that file exists."""
    env = os.environ.get("T2IBENCH_CLEANFID_INCEPTION")
    return Path(env) if env and Path(env).is_file() else None


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d) via torchmetrics/torch-fidelity, from local weights only.

    Input: float (B, 3, 299, 299) in [0, 1] (already preprocessed); it is rounded to uint8 because
    torch-fidelity's network accepts only uint8 (clean-fid feeds its Inception floats: ``quantizes``).
    Raises :class:`NotAvailable` when torch-fidelity or weights are missing.
    """

    num_features = 2048
    quantizes = True
    name = "inception-v3 (torch-fidelity FID weights, pool3 2048-d)"

    def __init__(self) -> None:
        super().__init__()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as exc:  # pragma: no cover
            raise NotAvailable(f"torchmetrics Inception: {exc}") from None
        path = inception_weights_path()
        if path is None:
            raise NotAvailable(
                "Inception-v3 FID weights not found locally (set T2IBENCH_INCEPTION_WEIGHTS or put "
                "weights-inception-2015-12-05-6726825d.pth in the torch hub checkpoints folder; no download here)"
            )
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path), antialias=False
            )
        except ModuleNotFoundError as exc:
            raise NotAvailable(f"Inception-v3 needs torch-fidelity: {exc}") from None

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * 255).round().clamp(0, 255).to(torch.uint8)).reshape(x.shape[0], -1)


def network_features(network: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Features (B, d) float64 on the host of preprocessed images ``x`` (B, 3, S, S) in [0, 1],
    computed on the network's device."""
    with torch.inference_mode():
        return network(x.to(module_device(network))).double().cpu().numpy()


def resolve_network(spec: str | nn.Module) -> nn.Module:
    """A feature network from ``"inception-v3"`` (clean-fid's TorchScript file when
    $T2IBENCH_CLEANFID_INCEPTION names one, else torch-fidelity's weights), a path to clean-fid's
    ``inception-2015-12-05.pt`` (any ``*.pt``), ``"tinyworld-clip"`` or ``"module:callable"``.

    The module needs ``num_features`` (int) and ``name`` (str, reported with the number); an
    optional ``image_size`` sets the default preprocessing size.
    """
    if isinstance(spec, nn.Module):
        return spec
    if spec in ("inception", "inception-v3"):
        path = cleanfid_inception_path()
        return CleanFIDInception(path) if path is not None else InceptionFeatures()
    if spec.endswith(".pt"):
        return CleanFIDInception(spec)
    if spec in ("tinyworld-clip", "tiny-clip"):
        from t2ibench.metrics.tinyworld import tiny_clip_image_features

        return tiny_clip_image_features()
    if ":" in spec:
        from t2ibench.registry import Registry

        fn = Registry("feature network", "t2ibench.feature_networks", {}).get(spec)
        return fn() if not isinstance(fn, nn.Module) else fn
    raise ValueError(f"feature network {spec!r}; expected inception-v3, a clean-fid inception-2015-12-05.pt path, "
                     "tinyworld-clip or module:callable")
