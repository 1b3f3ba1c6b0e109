"""Load the image-reward 1.5 package's own model code (read from an unpacked wheel) under current libraries.

Nothing is copied from it: its files are imported from where they lie, with the smallest
compatibility layer that lets them import and run here (each item says why):

- ``transformers.modeling_utils`` lost ``apply_chunking_to_forward``, ``prune_linear_layer`` (moved
  to ``transformers.pytorch_utils``) and ``find_pruneable_heads_and_indices`` (removed; only used
  for head pruning, never here): re-exported for the duration of the import.
- ``fairscale`` (pinned 0.4.13 by the package) only provides ``checkpoint_wrapper`` for gradient
  checkpointing, off here: a stub module.
- ``PreTrainedModel.get_head_mask`` / ``invert_attention_mask`` were removed in transformers 5:
  their 4.x behaviour (no head mask → ``[None] * layers``; mask → ``(1 - m) · finfo.min``) is
  attached to the package's ``BertModel``; its ``init_weights`` (5.x: needs ``post_init`` state)
  gets 4.x's ``apply(_init_weights)`` (initial values only; the tests overwrite every weight).
- The package ``__init__`` imports OpenAI ``clip`` and HF hub downloads: the package and its
  ``models`` subpackage are registered as bare namespaces so only the model files run.

Where the unpacked wheel lies: $T2IBENCH_IMAGEREWARD_REF (the folder holding ``ImageReward/``),
default ~/.cache/t2ibench/image-reward-1.5. When it is not there, ``reference_dir`` fetches it
the way a person would, ``pip download image-reward==1.5 --no-deps`` (the package registry is
reachable in CI), and unpacks the wheel; only when that fails are the parity tests skipped.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import torch

DEFAULT_REF = Path.home() / ".cache" / "t2ibench" / "image-reward-1.5"
PKG = "_imagereward_ref"


def _fetch(root: Path) -> None:
    """Download the image-reward 1.5 wheel (no dependencies) and unpack it into ``root``."""
    import subprocess
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "image-reward==1.5", "--no-deps", "--quiet", "-d", tmp]
        subprocess.run(cmd, check=True, timeout=180, capture_output=True)
        wheel = next(Path(tmp).glob("image_reward-1.5-*.whl"))
        staging = Path(tempfile.mkdtemp(dir=root.parent))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(staging)
        staging.rename(root)


def reference_dir() -> Path:
    """The unpacked package's ``ImageReward/`` folder; fetched once if absent.

    Raises ``RuntimeError`` saying why it is not there (env folder lacks it, or the fetch failed
    and with what error); the tests turn that into a skip that states the reason.
    """
    root = Path(os.environ.get("T2IBENCH_IMAGEREWARD_REF", DEFAULT_REF))
    marker = root / "ImageReward" / "models" / "BLIP" / "med.py"
    if marker.is_file():
        return root / "ImageReward"
    if "T2IBENCH_IMAGEREWARD_REF" in os.environ:
        raise RuntimeError(f"T2IBENCH_IMAGEREWARD_REF={root} holds no ImageReward/models/BLIP/med.py")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        _fetch(root)
    except Exception as exc:  # no registry reachable: the parity tests skip with this reason
        detail = getattr(exc, "stderr", None) or b""
        detail = detail.decode(errors="replace").strip().splitlines()[-1:] if isinstance(detail, bytes) else []
        raise RuntimeError(
            f"could not fetch image-reward==1.5 into {root} ({type(exc).__name__}: {exc}"
            + (f"; pip: {detail[0]}" if detail else "") + ")"
        ) from exc
    if not marker.is_file():
        raise RuntimeError(f"the image-reward 1.5 wheel unpacked into {root} lacks ImageReward/models/BLIP/med.py")
    return root / "ImageReward"


def reference_or_skip() -> Path:
    """``reference_dir()``, or ``pytest.skip`` with the reason it is missing (shown by ``-ra``)."""
    import pytest

    try:
        return reference_dir()
    except RuntimeError as exc:
        pytest.skip(f"image-reward 1.5 reference unavailable: {exc}")


def load_reference(monkeypatch):
    """(med module, vit module, ImageReward module, blip_pretrain module) of the package."""
    src = reference_or_skip()
    import transformers.modeling_utils as mu
    import transformers.pytorch_utils as pu

    monkeypatch.setattr(mu, "apply_chunking_to_forward", pu.apply_chunking_to_forward, raising=False)
    monkeypatch.setattr(mu, "prune_linear_layer", pu.prune_linear_layer, raising=False)
    monkeypatch.setattr(mu, "find_pruneable_heads_and_indices", lambda *a, **k: None, raising=False)
    fs = {n: types.ModuleType(n) for n in ("fairscale", "fairscale.nn", "fairscale.nn.checkpoint",
                                            "fairscale.nn.checkpoint.checkpoint_activations")}
    fs["fairscale.nn.checkpoint.checkpoint_activations"].checkpoint_wrapper = lambda m, *a, **k: m
    for name, mod in fs.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for name, path in ((PKG, src), (f"{PKG}.models", src / "models")):
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, mod)
    for sub in ("models.BLIP", "models.BLIP.med", "models.BLIP.vit", "models.BLIP.blip", "models.BLIP.blip_pretrain", "ImageReward"):
        monkeypatch.delitem(sys.modules, f"{PKG}.{sub}", raising=False)
    med = importlib.import_module(f"{PKG}.models.BLIP.med")
    vit = importlib.import_module(f"{PKG}.models.BLIP.vit")
    blip_pretrain = importlib.import_module(f"{PKG}.models.BLIP.blip_pretrain")
    ir = importlib.import_module(f"{PKG}.ImageReward")

    def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
        assert head_mask is None
        return [None] * num_hidden_layers

    def invert_attention_mask(self, mask):
        ext = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        ext = ext.to(dtype=self.dtype)
        return (1.0 - ext) * torch.finfo(self.dtype).min

    for name, fn in (("get_head_mask", get_head_mask), ("invert_attention_mask", invert_attention_mask)):
        if not hasattr(med.BertModel, name):
            monkeypatch.setattr(med.BertModel, name, fn, raising=False)
    monkeypatch.setattr(med.BertModel, "init_weights", lambda self: self.apply(self._init_weights))
    return med, vit, ir, blip_pretrain
