"""CLIP tokenizer files built offline from the BPE vocabulary that open-clip-torch ships.

``CLIPTokenizer`` needs ``vocab.json`` and ``merges.txt``; both follow from open_clip's
``bpe_simple_vocab_16e6.txt.gz`` exactly as CLIP builds its vocabulary (256 byte symbols, the
same with ``</w>``, 48,894 merges, then ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` =
49407), so token ids match open_clip's tokenizer and OpenAI CLIP's. Context length 77.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

N_MERGES = 49152 - 256 - 2
CONTEXT_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte → printable-unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def open_clip_bpe_path() -> Path:
    import open_clip.tokenizer

    return Path(open_clip.tokenizer.default_bpe())


def write_clip_tokenizer_files(directory: str | Path, bpe_path: str | Path | None = None) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(bpe_path or open_clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "model_max_length": CONTEXT_LENGTH,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2)
    )
    return directory


@lru_cache(maxsize=1)
def _cached_dir() -> Path:
    import tempfile

    return write_clip_tokenizer_files(Path(tempfile.mkdtemp(prefix="t2ibench-tokenizer-")))


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A ``transformers.CLIPTokenizer`` with CLIP's vocabulary, built offline."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(_cached_dir()), model_max_length=CONTEXT_LENGTH, pad_token=pad_token)
