"""Prompt embeddings with ITI-GEN's learned tokens: ``base prompt + tokens of category k`` per row,
in one of the two layouts of ``t2ibench.attention.text.token_layout`` (``"reference"``: the
tokens overwrite end-of-text, ``!`` padding; ``"shifted"``: end-of-text moves right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from t2ibench.attention.text import (
    LAYOUT_REFERENCE,
    PromptEmbeds,
    as_token_embeddings,
    encode_ids,
    encode_prompts,
    injected_tokens,
    text_encoders,
    token_layout,
    with_placeholders,
)
from t2ibench.baselines.iti_gen.tokens import InclusiveTokens
from t2ibench.errors import UserError


@dataclass
class InclusivePrompts:
    """Embeddings of ``base + learned tokens`` per row, the tokens' positions and the feature position per row."""

    embeds: PromptEmbeds
    positions: list[list[int]]
    after: list[int]
    layout: str


def _tokenizer_for(pipe: Any, encoder_name: str) -> Any:
    return pipe.tokenizer_2 if encoder_name == "text_encoder_2" else pipe.tokenizer


def encode_inclusive(
    pipe: Any, base_texts: Sequence[str], tokens: Sequence[InclusiveTokens], cats: Sequence[int], layout: str | None = None
) -> InclusivePrompts:
    """Embeddings of ``base + learned tokens of category k`` per row, in ``layout`` (None: the tokens' own).

    Tokens imported from the authors' prompt embeddings (a ``prompt_embeds`` tensor (K, 77, D),
    see ``t2ibench.baselines.iti_gen.released``) are used as they are (SD 1.x: one text encoder).
    """
    layout = layout or tokens[0].layout
    encs = text_encoders(pipe)
    if all("prompt_embeds" in tok.tokens for tok in tokens):
        if len(encs) != 1:
            raise UserError("iti-gen: imported prompt embeddings are for an SD 1.x pipeline (one text encoder); this pipeline has two")
        enc = next(iter(encs.values()))
        rows = [tok.tokens["prompt_embeds"][k] for tok, k in zip(tokens, cats, strict=True)]
        lays = [token_layout(pipe.tokenizer, base, tok.n_tokens, LAYOUT_REFERENCE) for base, tok in zip(base_texts, tokens, strict=True)]
        embeds = PromptEmbeds(torch.stack(rows).to(device=enc.device, dtype=enc.dtype))
        return InclusivePrompts(embeds, [lay.positions for lay in lays], [lay.feature_position for lay in lays], LAYOUT_REFERENCE)
    ids: dict[str, torch.Tensor] = {}
    vectors: dict[str, list[torch.Tensor]] = {}
    positions: list[list[int]] = []
    after: list[int] = []
    for name, enc in encs.items():
        width = enc.get_input_embeddings().embedding_dim
        lays = [token_layout(_tokenizer_for(pipe, name), base, tok.n_tokens, layout) for base, tok in zip(base_texts, tokens, strict=True)]
        ids[name] = torch.tensor([lay.input_ids for lay in lays])
        vectors[name] = [as_token_embeddings(tok.for_encoder(name, width)[k], lay.positions, enc, layout)
                         for tok, k, lay in zip(tokens, cats, lays, strict=True)]
        if not positions:
            positions = [lay.positions for lay in lays]
            after = [lay.feature_position for lay in lays]
    with injected_tokens(encs, positions, vectors):
        embeds = encode_ids(pipe, ids, after)
    return InclusivePrompts(embeds, positions, after, layout)


def encode_base(pipe: Any, texts: Sequence[str], layout: str) -> PromptEmbeds:
    """The plain base prompt, padded as the layout pads (``"reference"``: ``!`` after end-of-text)."""
    if layout != LAYOUT_REFERENCE:
        return encode_prompts(pipe, texts)
    from t2ibench.attention.text import reference_padded_ids

    ids = {name: torch.tensor([reference_padded_ids(_tokenizer_for(pipe, name), t) for t in texts]) for name in text_encoders(pipe)}
    return encode_ids(pipe, ids)


@dataclass
class CategoryPrompt:
    """One category's inclusive prompt, for analyses that read per-token maps: ``text`` (the base
    prompt with placeholder words where the tokens go), ``embeds``, the tokens' ``positions`` and
    their display names (``{position: "<category:i>"}``)."""

    text: str
    embeds: PromptEmbeds
    positions: list[int]
    token_names: dict[int, str]


def category_prompt(pipe: Any, tokens: InclusiveTokens, k: int) -> CategoryPrompt:
    """The base prompt with category ``k``'s learned tokens, in the tokens' own layout."""
    encoded = encode_inclusive(pipe, [tokens.base_prompt], [tokens], [k])
    text, _ = with_placeholders(pipe.tokenizer, tokens.base_prompt, tokens.n_tokens)
    positions = encoded.positions[0]
    names = {p: f"<{tokens.categories[k]}:{i}>" for i, p in enumerate(positions)}
    return CategoryPrompt(text, encoded.embeds, positions, names)
