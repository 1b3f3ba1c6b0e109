"""DreamSim distance of each image to the comparison method's image of the same seed (FairQueue's DS).

DreamSim (Fu et al., NeurIPS 2023): a perceptual distance from an ensemble of ViT-B/16
backbones (DINO, CLIP, OpenCLIP) whose features are concatenated into one embedding ``e``;
distance ``1 − cos(e_a, e_b)``. The ``dreamsim`` package (0.2.1, ``dreamsim/model.py``:
``embed`` concatenates the backbones' features, ``normalize_embedding`` centres each embedding
on its mean over features and divides by its norm when ``normalize_embeds`` is set, the default
of its ``dreamsim()`` loader; ``forward`` returns ``1 − cosine_similarity``) takes (B, 3, 224,
224) RGB in [0, 1], resized bicubic. t2ibench does the same around a network you supply.

FairQueue's use (Teo et al., NeurIPS 2024, supplement B.5, "Semantic Preservation"): for each
latent code, the image generated from the base prompt T is the reference; the images of the
same latent code from the hard prompt, ITI-GEN (and FairQueue, Table 1 "DS") are compared with
it by DreamSim; lower = the method changed less than the tSA. Here: each image of a method is
paired with the image of ``compare_to`` (default ``sd``: the base prompt) that has the same
prompt set and (prompt id, image index), hence the same seed; columns ``dreamsim`` (all paired
images) and ``dreamsim:<tsa>``, means with 95 % bootstrap intervals.

Weights: not shipped and never downloaded. ``checkpoint`` (or ``$T2IBENCH_DREAMSIM``) names a
TorchScript file (or a ``torch.export`` ``.pt2`` archive) of the DreamSim embedding network: ``forward(x: (B, 3, S, S) float in [0, 1])``
returning the (B, D) embedding, or a tuple/list of per-backbone (B, D_i) features that are
concatenated in order. Exported once where the ``dreamsim`` package and its checkpoint are
installed, e.g. ``torch.jit.save(torch.jit.trace(Embed(model), torch.rand(1, 3, 224, 224)), F)``
with ``Embed.forward = model.embed`` (a ``.pt2`` needs a dynamic batch dimension,
``dynamic_shapes``, to score batches). Without it the scorer is "not available: <reason>".
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from t2ibench.metrics.common import ColumnSample, NotAvailable, Scorer, mean_ci, mean_sample
from t2ibench.metrics.text_alignment import tsa_of
from t2ibench.placement import module_device

ENV_VAR = "T2IBENCH_DREAMSIM"
IMAGE_SIZE = 224
EXPECTED = (f"a TorchScript DreamSim embedding network (params.checkpoint or ${ENV_VAR}): "
            "(B, 3, 224, 224) RGB in [0, 1] -> (B, D) embedding or per-backbone features")


def load_network(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The user's TorchScript DreamSim network, in eval mode; :class:`NotAvailable` if missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise NotAvailable(f"DreamSim checkpoint not found: {p}; expected {EXPECTED}")
    try:
        if p.suffix == ".pt2":  # torch.export archive
            return torch.export.load(str(p)).module().to(device)
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x but still loads
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(p), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise NotAvailable(f"DreamSim checkpoint {p} is not a TorchScript file ({str(exc).splitlines()[0][:120]}); "
                           f"expected {EXPECTED}") from None
    return net.eval()


def preprocess(images: list[Any], size: int = IMAGE_SIZE) -> torch.Tensor:
    """PIL images → (B, 3, size, size) float32 in [0, 1], resized bicubic as the dreamsim package does."""
    from PIL import Image

    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
              for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)


def concat_features(out: Any) -> torch.Tensor:
    """The network's output as one (B, D) embedding: a tensor as is, per-backbone features concatenated."""
    if isinstance(out, torch.Tensor):
        return out.reshape(out.shape[0], -1) if out.ndim > 2 else out
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
        return torch.cat([t.reshape(t.shape[0], -1) for t in out], dim=-1)
    raise TypeError(f"DreamSim network returned {type(out).__name__}; expected a tensor or a tuple of tensors")


def normalize_embedding(e: np.ndarray | torch.Tensor, center: bool = True) -> np.ndarray:
    """(N, D) embeddings → float64 unit rows, first centred on each row's mean when ``center``
    (dreamsim's ``normalize_embedding``)."""
    x = np.asarray(e, dtype=np.float64)
    if center:
        x = x - x.mean(axis=-1, keepdims=True)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def dreamsim_distance(a: np.ndarray, b: np.ndarray, center: bool = True) -> np.ndarray:
    """Row-wise DreamSim distance ``1 − cos`` between (N, D) embeddings ``a`` and ``b``."""
    return 1.0 - (normalize_embedding(a, center) * normalize_embedding(b, center)).sum(axis=-1)


def pair_key(meta: Mapping[str, Any]) -> tuple[str, str, int]:
    """(prompt set, prompt id, image index): equal across methods for the same prompt and seed."""
    return str(meta.get("prompt_set")), str(meta.get("prompt_id")), int(meta.get("index", 0))


class DreamSimScorer(Scorer):
    """Per image: its DreamSim embedding; aggregate: mean distance to ``compare_to``'s paired image.

    params: ``checkpoint`` (TorchScript file; default ``$T2IBENCH_DREAMSIM``), ``compare_to``
    (method label whose images are the references, default ``sd``), ``normalize_embeds``
    (centre before the cosine, as dreamsim's loader does by default), ``image_size`` (224). It runs
    on the scoring device (``Scorer.to``). The scoring driver hands every scored image to
    :meth:`observe` before aggregating, so each method finds its references whatever the order
    of the groups.
    """

    network_attributes = ("_network",)
    name = "dreamsim"
    value_kind = "array"
    lower_is_better = True

    def __init__(
        self,
        checkpoint: str | None = None,
        compare_to: str = "sd",
        normalize_embeds: bool = True,
        image_size: int = IMAGE_SIZE,
        batch_size: int = 16,
        _network: Any = None,
    ) -> None:
        self.checkpoint = checkpoint if checkpoint is not None else os.environ.get(ENV_VAR) or None
        self.compare_to, self.normalize_embeds = compare_to, bool(normalize_embeds)
        self.image_size, self.batch_size = int(image_size), batch_size
        self._network = _network
        self._references: dict[tuple[str, str, int], np.ndarray] | None = None

    @property
    def network(self) -> Any:
        if self._network is None:
            if not self.checkpoint:
                raise NotAvailable(f"DreamSim checkpoint not found: none given; expected {EXPECTED}")
            self._network = load_network(self.checkpoint, str(self.device))
        return self._network

    def check_available(self) -> None:
        _ = self.network  # loading it raises NotAvailable with the reason

    def config(self) -> dict[str, Any]:
        ck = Path(self.checkpoint) if self.checkpoint else None
        ident = f"{ck.name}:{ck.stat().st_size}:{int(ck.stat().st_mtime)}" if ck is not None and ck.is_file() else "injected"
        return {"network": ident, "image_size": self.image_size, "resize": "bicubic", "range": "[0, 1]"}

    def conventions(self) -> dict[str, Any]:
        norm = "centred and L2-normalised" if self.normalize_embeds else "L2-normalised"
        return {"network": str(self.checkpoint or "injected"), "reference": f"method {self.compare_to!r}, same (prompt id, index)",
                "formula": f"mean(1 - cos(e, e_ref)), embeddings {norm}",
                "preprocessing": f"bicubic resize to {self.image_size}x{self.image_size}, RGB in [0, 1]",
                "definition": "DreamSim (Fu et al. 2023); FairQueue supplement B.5 semantic preservation"}

    @torch.inference_mode()
    def score(self, images: list[Any], metas: list[Mapping[str, Any]]) -> list[Any]:
        x = preprocess(images, self.image_size).to(module_device(self.network))
        e = concat_features(self.network(x)).double().cpu().numpy()
        return list(e)

    def observe(self, values: list[Any], metas: list[Mapping[str, Any]]) -> None:
        """Every scored image of the run (all methods): keeps ``compare_to``'s embeddings by pair key."""
        self._references = {pair_key(m): np.asarray(v, dtype=np.float64)
                            for v, m in zip(values, metas, strict=True) if str(m.get("method")) == self.compare_to}

    def _distances(self, values: list[Any], metas: list[Mapping[str, Any]]) -> tuple[list[int], np.ndarray]:
        if self._references is None:
            raise NotAvailable("DreamSim needs the comparison method's images; this scoring driver did not pass them "
                               "(Scorer.observe)")
        idx = [i for i, m in enumerate(metas) if pair_key(m) in self._references]
        if not idx:
            return [], np.zeros(0)
        mine = np.stack([np.asarray(values[i], dtype=np.float64) for i in idx])
        refs = np.stack([self._references[pair_key(metas[i])] for i in idx])
        return idx, dreamsim_distance(mine, refs, self.normalize_embeds)

    def aggregate(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        if metas and all(str(m.get("method")) == self.compare_to for m in metas):
            return {self.name: {"value": None, "n": 0, "ci": None, "lower_is_better": True,
                                "note": "the comparison images themselves"}}
        idx, d = self._distances(values, metas)
        unpaired = len(values) - len(idx)
        out = {self.name: {**mean_ci(d), "lower_is_better": True, "n_unpaired": unpaired}}
        if not idx:
            out[self.name]["note"] = f"no image of {self.compare_to!r} with the same prompt set, prompt id and index"
        by_tsa: dict[str, list[int]] = defaultdict(list)
        for j, i in enumerate(idx):
            by_tsa[tsa_of(metas[i])].append(j)
        for tsa, js in sorted(by_tsa.items()):
            out[f"{self.name}:{tsa}"] = {**mean_ci(d[js]), "lower_is_better": True}
        return out

    def column_samples(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, ColumnSample]:
        if self._references is None or all(str(m.get("method")) == self.compare_to for m in metas):
            return {}
        idx, d = self._distances(values, metas)
        out = {self.name: mean_sample(idx, d)}
        by_tsa: dict[str, list[int]] = defaultdict(list)
        for j, i in enumerate(idx):
            by_tsa[tsa_of(metas[i])].append(j)
        for tsa, js in sorted(by_tsa.items()):
            out[f"{self.name}:{tsa}"] = mean_sample([idx[j] for j in js], d[js])
        return out
