"""Import the ITI-GEN / FairQueue authors' released files as t2ibench inclusive tokens.

Two kinds of file (humansensinglab/ITI-GEN ``iti_gen/model.py:329-346``, ``prepend.py``;
Bearwithchris/FairQueue_Code ``README.md``: ``ckpts/.../basis_final_embed_29.pt``):

- ``basis_perturbation_embed_<epoch>_<Attr>.pth``: the learned tokens, a state dict
  ``{"para": (K, 3, 768)}`` (``FairToken``); imported as tokens in the ``"reference"`` layout.
- ``basis_final_embed_<epoch>.pt``: the prompt embeddings the authors generate from, a tensor
  (K, 77, 768) (CLIP ViT-L/14 text encoder output with the tokens at positions 6-8); imported
  as ``prompt_embeds``, used as they are (SD 1.x pipelines only).

Both are read with ``torch.load(weights_only=True)``: no code in the file is executed.
Category order: ITI-GEN orders CelebA categories ``[positive, negative]`` (``utils.py``
``reference_image_category``), t2ibench's attributes prompt set ``[absent, present]``; FairFace
age bins and FAIR skin tones are in the same order in both. ``reorder`` maps the file's rows
to the prompt set's categories.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from t2ibench.baselines.iti_gen.tokens import InclusiveTokens
from t2ibench.errors import UserError

#: tSAs whose reference category order equals the attributes prompt set's (others: CelebA, reversed)
SAME_ORDER = ("Age", "Skin_Tone", "Skin_tone")


def reference_order(tsa: str, k: int) -> list[int]:
    """Row of the released file for each of the prompt set's categories."""
    if tsa in SAME_ORDER:
        return list(range(k))
    if k != 2:
        raise UserError(f"itigen import: tSA {tsa!r} with {k} categories; CelebA attributes have 2 (give --order)")
    return [1, 0]


def _load(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"itigen import: {path} not found; expected the authors' basis_perturbation_embed_*.pth or basis_final_embed_*.pt")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, unsupported globals
        raise UserError(f"itigen import: {path} could not be read with weights_only=True ({type(exc).__name__}: {exc}); "
                        "expected a tensor or a state dict of tensors") from exc


def import_released(
    path: str | Path, tsa: str, categories: Sequence[str], order: Sequence[int] | None = None,
    base_prompt: str = "a headshot of a person",
) -> InclusiveTokens:
    """The released file as ``InclusiveTokens`` for ``categories`` (the prompt set's order).

    ``order[c]``: the file's row for category c (default :func:`reference_order`).
    """
    path = Path(path)
    obj = _load(path)
    if isinstance(obj, dict):
        if "para" not in obj or not isinstance(obj["para"], torch.Tensor):
            raise UserError(f"itigen import: {path} holds keys {sorted(obj)}; expected a FairToken state dict with 'para'")
        t, kind = obj["para"], "tokens"
        if t.ndim != 3:
            raise UserError(f"itigen import: {path} 'para' has shape {tuple(t.shape)}; expected (K, n_tokens, D)")
    elif isinstance(obj, torch.Tensor):
        t, kind = obj, "prompt_embeds"
        if t.ndim != 3 or t.shape[1] != 77:
            raise UserError(f"itigen import: {path} is a tensor of shape {tuple(t.shape)}; expected prompt embeddings (K, 77, D)")
    else:
        raise UserError(f"itigen import: {path} holds a {type(obj).__name__}; expected a tensor or a state dict")
    k = len(categories)
    if t.shape[0] != k:
        raise UserError(f"itigen import: {path} has {t.shape[0]} rows; the tSA {tsa!r} has {k} categories {list(categories)}")
    rows = list(order) if order is not None else reference_order(tsa, k)
    if sorted(rows) != list(range(k)):
        raise UserError(f"itigen import: order {rows}; expected a permutation of 0..{k - 1}")
    t = t[rows].float().contiguous()
    tensors = {"tokens": t} if kind == "tokens" else {"tokens": torch.zeros(k, 3, t.shape[-1]), "prompt_embeds": t}
    meta = {"layout": "reference", "imported_from": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "kind": kind, "file_rows": rows}
    return InclusiveTokens(tsa, [str(c) for c in categories], base_prompt, tensors, meta)


#: ITI-GEN's reference-image folder names per category (utils.py reference_image_category), in prompt-set order
AGE_FOLDERS = ["0_2", "3_9", "10_19", "20_29", "30_39", "40_49", "50_59", "60_69", "more_than_70"]
SKIN_FOLDERS = ["1", "2", "3", "4", "5", "6"]


def reference_folders(root: str | Path, tsa: str, categories: Sequence[str]) -> dict[str, Path]:
    """``{category: folder}`` from images sorted into folders as ITI-GEN's ``data/`` expects them.

    ``root/<Attr>/positive`` and ``root/<Attr>/negative`` for CelebA attributes (positive = the
    attribute present, t2ibench's second category), ``root/Age/<0_2 … more_than_70>`` (FairFace)
    and ``root/Skin_tone/<1 … 6>`` (FAIR benchmark); ``root`` is ITI-GEN's ``data/<dataset>``.
    """
    root = Path(root)
    if tsa == "Age":
        attr, names = root / "Age", AGE_FOLDERS
    elif tsa in ("Skin_Tone", "Skin_tone"):
        attr = root / "Skin_tone" if (root / "Skin_tone").is_dir() else root / "Skin_Tone"
        names = SKIN_FOLDERS
    else:
        attr, names = root / tsa, ["negative", "positive"]
    if len(names) != len(categories):
        raise UserError(f"reference folders for {tsa!r}: {len(names)} folders for {len(categories)} categories {list(categories)}")
    out = {}
    for cat, name in zip(categories, names, strict=True):
        folder = attr / name
        if not folder.is_dir():
            raise UserError(f"reference folders for {tsa!r}: {folder} not found; expected ITI-GEN's layout {attr}/{{{','.join(names)}}}")
        out[str(cat)] = folder
    return out
