"""Words of a prompt, their token positions, and prompt edits that drop or mask words.

Words are the prompt split on whitespace. A *term* is one word or a phrase of consecutive words
("red", "blue square"), matched case-insensitively with surrounding punctuation ignored; the
first occurrence is used unless ``occurrence`` is given.

Token positions are indices into the text encoder's sequence (0 is ``<|startoftext|>``): CLIP's
BPE tokenises word by word, so a prompt's tokens are the concatenation of its words' tokens
(checked; a mismatch raises).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UserError

#: the string CLIP tokenizers parse as the end-of-text (= SD 1.x padding) token
MASK_TOKEN_TEXT = "<|endoftext|>"


def _norm(word: str) -> str:
    return re.sub(r"^[^\w]+|[^\w]+$", "", word.lower())


def words(prompt: str) -> list[str]:
    return prompt.split()


def find_term(prompt: str, term: str, occurrence: int = 0) -> list[int]:
    """Word indices of ``term`` in ``prompt`` (see module doc); ``UserError`` when absent."""
    ws = [_norm(w) for w in words(prompt)]
    tw = [_norm(w) for w in term.split()]
    if not tw or not any(tw):
        raise UserError(f"term {term!r}: empty; expected one or more words of the prompt")
    hits = [i for i in range(len(ws) - len(tw) + 1) if ws[i : i + len(tw)] == tw]
    if len(hits) <= occurrence:
        raise UserError(f"term {term!r}: not a word (phrase) of the prompt {prompt!r}; expected one of its words")
    start = hits[occurrence]
    return list(range(start, start + len(tw)))


def word_token_spans(tokenizer: Any, prompt: str) -> list[tuple[str, list[int]]]:
    """``[(word, [token positions])]`` for every word of ``prompt`` (positions after BOS = 0)."""
    full = tokenizer(prompt, truncation=False)["input_ids"]
    spans: list[tuple[str, list[int]]] = []
    pos = 1
    for w in words(prompt):
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        spans.append((w, list(range(pos, pos + len(ids)))))
        pos += len(ids)
    body = full[1:-1] if full and full[-1] == tokenizer.eos_token_id else full[1:]
    if pos - 1 != len(body):
        raise ValueError(f"word-by-word tokenisation does not match the prompt's tokens for {prompt!r}")
    return spans


def term_token_positions(tokenizer: Any, prompt: str, term: str, occurrence: int = 0) -> list[int]:
    """Token positions of ``term`` (all of its words' tokens) in the encoded ``prompt``."""
    spans = word_token_spans(tokenizer, prompt)
    return [p for i in find_term(prompt, term, occurrence) for p in spans[i][1]]


@dataclass(frozen=True)
class Dropped:
    """A prompt with some terms taken out, and how: ``text`` is what the text encoder reads."""

    text: str
    removed: tuple[str, ...]
    mode: str


def drop_terms(tokenizer: Any, prompt: str, terms: Sequence[str], mode: str = "remove") -> Dropped:
    """The prompt without ``terms``.

    ``mode="remove"`` (default; DiffusionPID conditions on the prompt with the word deleted):
    the words are deleted from the text, later tokens move left. ``mode="mask"``: each token of
    the words is replaced by ``<|endoftext|>`` (the SD 1.x padding token), so every other token
    keeps its position.
    """
    if mode not in ("remove", "mask"):
        raise UserError(f"drop mode: {mode!r}; expected 'remove' or 'mask'")
    ws = words(prompt)
    drop: set[int] = set()
    for t in terms:
        drop.update(find_term(prompt, t))
    out = []
    for i, w in enumerate(ws):
        if i not in drop:
            out.append(w)
        elif mode == "mask":
            n = len(tokenizer(w, add_special_tokens=False)["input_ids"])
            out.extend([MASK_TOKEN_TEXT] * n)
    return Dropped(text=" ".join(out), removed=tuple(terms), mode=mode)
