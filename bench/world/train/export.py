"""Writing into the weights folder ``OUT``: folders swapped in whole, JSON atomically, fp16 weights,
and the stage facts in ``OUT/training.json`` (the model cards are written from it)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...fileio import atomic_write_text


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def staging(out: Path, name: str) -> Path:
    """An empty hidden folder ``OUT/.<name>.staging`` to write an export into before ``replace_dir``."""
    p = out / f".{name.replace('/', '_')}.staging"
    if p.exists():
        shutil.rmtree(p)
    p.mkdir(parents=True)
    return p


def replace_dir(src: Path, dst: Path) -> None:
    """Move a freshly written folder into place (old one removed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old)


def training_meta(out: Path, key: str, info: dict[str, Any]) -> None:
    """Record stage facts in OUT/training.json under ``key`` (merged into what is there)."""
    path = out / "training.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta[key] = {**meta.get(key, {}), **info}
    write_json(path, meta)


def save_half_precision(model: Any, directory: Path) -> None:
    """``save_pretrained`` with float16 weights on disk and ``dtype: float32`` in config.json.

    The file is half the size; ``from_pretrained`` without a dtype (transformers' "auto") reads
    the config and computes in float32, so a plain load of the pipeline runs on the CPU.
    """
    copy.deepcopy(model).to("cpu").half().save_pretrained(str(directory), safe_serialization=True)
    cfg_path = Path(directory) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
