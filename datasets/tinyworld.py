"""tinyworld prompt sets: ``tinyworld-alignment`` and ``tinyworld-fairness``.

``tinyworld-alignment`` params: ``categories`` (subset of color, count, texture, time,
location, binding; default all), ``per_category`` (cap per category). Prompts are interleaved
round-robin over the categories (so ``limit: 24`` gives 4 per category), each category's order
shuffled by ``sample_seed``. ``meta = {"category": ..., "labels": {...}}``; the labels are what
the prompt asserts, checked by ``t2ibench.world.evaluator.check_prompt``.

``tinyworld-fairness`` params: ``tsas`` (subset of eyeglasses, smiling, hair, skin_tone;
default all). One prompt per tSA, ``id`` = tSA name, ``text`` = "a headshot of a person",
``meta`` = {tsa, categories, hard_prompts, class_prompts, base_prompt, label_key,
label_values} (``label_key``/``label_values``: the evaluator's prediction key and the value of
each category, in order).
"""

from __future__ import annotations

from typing import Any

from t2ibench.errors import UserError
from t2ibench.types import PromptItem


def _list_param(params: dict, key: str, allowed, where: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return list(allowed)
    if isinstance(value, str):
        value = [value]
    bad = [v for v in value if v not in allowed]
    if bad:
        raise UserError(f"{where}: {key}: unknown value {bad[0]!r}; expected some of {list(allowed)}")
    return list(value)


def _check_params(params: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown parameter {unknown[0]!r}; expected some of {sorted(allowed)}")


def load_alignment(params: dict[str, Any], *, limit: int | None = None, sample_seed: int = 0,
                   where: str = "tinyworld-alignment") -> list[PromptItem]:
    from t2ibench.world.prompts import CATEGORIES, alignment_prompts

    params = dict(params or {})
    _check_params(params, {"categories", "per_category"}, where)
    cats = _list_param(params, "categories", CATEGORIES, where)
    per = params.get("per_category")
    if per is not None and (not isinstance(per, int) or per < 1):
        raise UserError(f"{where}: per_category: {per!r}; expected a positive integer")
    items = [PromptItem(id=i, text=t, meta=m) for i, t, m in alignment_prompts(cats, per, sample_seed)]
    return items[:limit] if limit is not None else items


def load_fairness(params: dict[str, Any], *, limit: int | None = None, sample_seed: int = 0,
                  where: str = "tinyworld-fairness") -> list[PromptItem]:
    from t2ibench.world.evaluator import TSAS
    from t2ibench.world.prompts import fairness_meta

    params = dict(params or {})
    _check_params(params, {"tsas"}, where)
    tsas = _list_param(params, "tsas", list(TSAS), where)
    items = []
    for tsa in tsas:
        meta = fairness_meta(tsa)
        items.append(PromptItem(id=tsa, text=meta["base_prompt"], meta=meta))
    return items[:limit] if limit is not None else items
