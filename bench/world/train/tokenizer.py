"""Stage ``tokenizer``: CLIPTokenizer files (open_clip's BPE vocabulary) into clip/ and pipeline/tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ResolvedConfig
from .export import training_meta
from .loop import log, setup


def train_tokenizer(cfg: ResolvedConfig) -> dict[str, Any]:
    """Write the tokenizer files; no training (step 0)."""
    from ...tokenizer import write_clip_tokenizer_files

    out = Path(cfg.out)
    for sub in ("clip", "pipeline/tokenizer"):
        write_clip_tokenizer_files(out / sub)
    setup(cfg)
    log.info(f"tokenizer: written to {out}/clip and {out}/pipeline/tokenizer")
    training_meta(out, "tokenizer", {"source": "open_clip bpe_simple_vocab_16e6.txt.gz", "context_length": 77})
    return {"step": 0, "elapsed": 0.0}


def load_tokenizer(out: Path) -> Any:
    """The CLIPTokenizer of ``OUT/clip`` if the tokenizer stage wrote it, else the packaged one."""
    from transformers import CLIPTokenizer

    from ...tokenizer import clip_tokenizer

    if (out / "clip" / "vocab.json").exists():
        return CLIPTokenizer.from_pretrained(str(out / "clip"))
    return clip_tokenizer()
