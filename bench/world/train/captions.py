"""Varied training captions for object scenes, with the words that belong to each object.

The renderer's captions always name the kinds in the order they were drawn and join them with
", " and " and ". ``varied_caption`` says the same scene in shuffled order with other joins
("and", ",", "with", "next to", a true grid relation) and keeps, for every named kind, the word
index of its colour word and of its noun. ``token_positions`` maps word indices to the CLIP
tokenizer's positions (BOS at 0), so a token-level loss can read each object's own states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..render import COLORS, COUNT_WORDS, SHAPES, TIME_DAY, TIME_NIGHT, groups_of, relation

#: joins between two object phrases; the list join is "A, B and C"
PAIR_JOINS = (("and",), (",",), ("with",), ("next", "to"))


@dataclass(frozen=True)
class ObjectWords:
    """One named kind of a caption: attribute indices (``COLORS``/``SHAPES`` order; colour None
    when the caption leaves it out) and the word indices of its colour word and its noun."""

    color: int | None
    shape: int
    adj: int | None
    noun: int


@dataclass(frozen=True)
class SpannedCaption:
    text: str
    words: tuple[str, ...]
    objects: tuple[ObjectWords, ...]  # in caption order


def _phrase(group: Mapping[str, Any], keep_color: bool, keep_texture: bool) -> tuple[list[str], int | None, int]:
    words = [COUNT_WORDS[int(group["count"])]]
    if keep_texture and group["texture"] == "striped":
        words.append("striped")
    adj = None
    if keep_color:
        adj = len(words)
        words.append(group["color"])
    words.append(group["shape"] + ("s" if int(group["count"]) > 1 else ""))
    return words, adj, len(words) - 1


def varied_caption(labels: Mapping[str, Any], rng: np.random.Generator, drop_color: float = 0.05) -> SpannedCaption:
    """A caption of an object scene in shuffled kind order with a random join (see module doc)."""
    groups = groups_of(labels["objects"])
    order = [int(i) for i in rng.permutation(len(groups))]
    phrases = [_phrase(groups[i], rng.random() >= drop_color, rng.random() < 0.8) for i in order]
    objs = labels["objects"]
    pieces: list[list[str]]
    if len(objs) == 2 and len(groups) == 2 and rng.random() < 0.3:
        first = groups[order[0]]
        a, b = (objs[0], objs[1]) if all(objs[0][k] == first[k] for k in ("shape", "color", "texture")) \
            else (objs[1], objs[0])
        rels = relation(a, b)
        pieces = [phrases[0][0], rels[int(rng.integers(len(rels)))].split(), phrases[1][0]]
    elif len(phrases) == 2 or rng.random() < 0.5:
        join = list(PAIR_JOINS[int(rng.integers(len(PAIR_JOINS)))])
        pieces = [phrases[0][0]]
        for p in phrases[1:]:
            pieces += [join, p[0]]
    else:
        pieces = [phrases[0][0]]
        for k, p in enumerate(phrases[1:], start=1):
            pieces += [["and"] if k == len(phrases) - 1 else [","], p[0]]
    words: list[str] = []
    starts = []
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            starts.append(len(words))
        words.extend(piece)
    night = labels["background"] == "night"
    if night and rng.random() < 0.7:
        words += TIME_NIGHT[int(rng.integers(len(TIME_NIGHT)))].split()
    elif not night and rng.random() < 0.2:
        words += TIME_DAY[int(rng.integers(len(TIME_DAY)))].split()
    named = []
    for start, (_, adj, noun), i in zip(starts, phrases, order, strict=True):
        g = groups[i]
        named.append(ObjectWords(color=COLORS.index(g["color"]) if adj is not None else None,
                                 shape=SHAPES.index(g["shape"]), adj=None if adj is None else start + adj,
                                 noun=start + noun))
    text = " ".join(words).replace(" ,", ",")
    return SpannedCaption(text=text, words=tuple(words), objects=tuple(named))


def token_positions(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Token index (BOS = 0) of the last BPE token of each word, tokenizing word by word."""
    cache: dict[str, int] = tokenizer.__dict__.setdefault("_t2ibench_word_lengths", {})
    out, pos = [], 1
    for w in words:
        if w not in cache:
            cache[w] = len(tokenizer(w, add_special_tokens=False).input_ids)
        pos += cache[w]
        out.append(pos - 1)
    return out
