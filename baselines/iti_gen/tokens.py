"""The ITI-GEN token file format: learned tokens of one tSA on disk.

Files: ``<dir>/<tsa>.safetensors`` (tensor ``tokens`` (K, n_tokens, D); optionally one tensor
per pipeline encoder, ``text_encoder`` / ``text_encoder_2``, for SDXL; or ``prompt_embeds``
(K, 77, D) imported from the authors' release) and ``<dir>/<tsa>.json`` (tsa, categories,
base_prompt, n_tokens, widths, clip, settings, loss history, ``layout``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from t2ibench.attention.text import LAYOUT_SHIFTED
from t2ibench.errors import UserError


@dataclass
class InclusiveTokens:
    """Learned tokens of one tSA: ``tokens[name]`` is (K, n_tokens, D); ``name`` "tokens" is generic."""

    tsa: str
    categories: list[str]
    base_prompt: str
    tokens: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return next(v for k, v in self.tokens.items() if k != "prompt_embeds").shape[1]

    @property
    def layout(self) -> str:
        """The prompt layout the tokens were learned in (files without the key: ``"shifted"``)."""
        return str(self.meta.get("layout", LAYOUT_SHIFTED))

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / _file_stem(self.tsa)
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.tokens.items()}, str(stem) + ".safetensors")
        info = {
            "tsa": self.tsa, "categories": self.categories, "base_prompt": self.base_prompt, "n_tokens": self.n_tokens,
            "widths": {k: int(v.shape[-1]) for k, v in self.tokens.items()}, **self.meta,
        }
        Path(str(stem) + ".json").write_text(json.dumps(info, indent=2))
        return Path(str(stem) + ".safetensors")

    @classmethod
    def load(cls, path: str | Path) -> "InclusiveTokens":
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors") if path.suffix == ".json" else Path(str(path) + ".safetensors")
        info_path = path.with_suffix(".json")
        if not path.is_file() or not info_path.is_file():
            raise UserError(f"iti-gen tokens: {path} (and .json) not found; train them with `t2ibench itigen train`")
        info = json.loads(info_path.read_text())
        meta = {k: v for k, v in info.items() if k not in ("tsa", "categories", "base_prompt", "n_tokens", "widths")}
        return cls(info["tsa"], list(info["categories"]), info["base_prompt"], load_file(str(path)), meta)

    def for_encoder(self, name: str, width: int) -> torch.Tensor:
        """(K, n_tokens, width) tokens for one of the pipeline's text encoders."""
        if name in self.tokens:
            t = self.tokens[name]
        else:
            matches = [t for k, t in self.tokens.items() if k != "prompt_embeds" and t.shape[-1] == width]
            if not matches:
                have = {k: int(v.shape[-1]) for k, v in self.tokens.items()}
                raise UserError(f"iti-gen tokens for {self.tsa!r} have widths {have}; the pipeline's {name} needs {width}")
            t = matches[0]
        if t.shape[-1] != width:
            raise UserError(f"iti-gen tokens {name!r} for {self.tsa!r} have width {t.shape[-1]}; the pipeline needs {width}")
        return t


def _file_stem(tsa: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in tsa)


#: ``tokens_dir`` value naming the tokens shipped with the tinyworld models
SHIPPED_TINYWORLD = "@tinyworld"


def resolve_tokens_dir(tokens_dir: str | Path) -> Path:
    """A tokens folder, or ``"@tinyworld"`` for the shipped tinyworld tokens."""
    if str(tokens_dir) == SHIPPED_TINYWORLD:
        from t2ibench.world.paths import itigen_dir

        return itigen_dir()
    return Path(tokens_dir)


def tokens_path(tokens_dir: str | Path, tsa: str) -> Path:
    return resolve_tokens_dir(tokens_dir) / (_file_stem(tsa) + ".safetensors")
