"""``am-categories``: COCO2014 val captions drawn into Attention Modulation's six categories.

Attention Modulation's Table 2 scores colour, content, numerical, texture, time and location on 50
prompts that are not published. This prompt set draws them from COCO2014 val captions (the file
``coco2014`` reads, ``params.path``) with the question grammar of the ``vqa_alignment`` scorer
(``t2ibench.metrics.questions``): a caption belongs to a category when it has a question of that
category other than presence (content: an action question). One caption per val2014 image, in
the order ``coco2014`` draws them with ``sample_seed``; the categories are filled rarest first
(time, texture, numerical, location, color, content), each caption going to the first category it
has that still needs captions, until each has ``limit`` (the prompt set's ``limit`` counts per
category here; default 50, the paper's prompt count). The captions are visited in an order shuffled
with ``random.Random(sample_seed)``. ``meta``: the COCO image id and file name, and ``category``.
"""

from __future__ import annotations

import random
from typing import Any

from t2ibench.errors import UserError
from t2ibench.types import PromptItem

#: filling order: the categories COCO captions show least first
ORDER = ("time", "texture", "numerical", "location", "color", "content")
DEFAULT_PER_CATEGORY = 50


def caption_categories(text: str) -> set[str]:
    """The categories a caption's questions cover (presence questions do not make content)."""
    from t2ibench.metrics.questions import prompt_questions

    return {q.category for q in prompt_questions(text).questions if q.kind != "presence"}


def load_am_categories(params: dict[str, Any], *, limit: int | None = None, sample_seed: int = 0,
                       where: str = "am-categories") -> list[PromptItem]:
    from t2ibench.datasets.coco2014 import load_captions

    params = dict(params or {})
    unknown = sorted(set(params) - {"path"})
    if unknown:
        raise UserError(f"{where}: unknown parameter {unknown[0]!r}; expected some of ['path']")
    per = DEFAULT_PER_CATEGORY if limit is None else int(limit)
    pool = load_captions(params, limit=10**9, sample_seed=sample_seed, where=where)
    random.Random(sample_seed).shuffle(pool)
    chosen: dict[str, list[PromptItem]] = {c: [] for c in ORDER}
    for item in pool:
        if all(len(v) >= per for v in chosen.values()):
            break
        cats = caption_categories(item.text)
        cat = next((c for c in ORDER if c in cats and len(chosen[c]) < per), None)
        if cat is not None:
            chosen[cat].append(PromptItem(id=item.id, text=item.text, meta={**item.meta, "category": cat}))
    return [it for c in ORDER for it in chosen[c]]
