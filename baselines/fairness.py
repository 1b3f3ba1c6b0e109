"""Balanced generation over the categories of a sensitive attribute (tSA).

Fairness prompt sets (see datasets/attributes.py) carry ``meta = {"tsa", "categories",
"hard_prompts", "class_prompts", "base_prompt"}``. Image ``index`` of a prompt is made for
category ``index % K``, so any multiple of K images is exactly balanced.
"""

from __future__ import annotations

from typing import Any

from t2ibench.errors import UserError
from t2ibench.types import ImageJob


def category(job: ImageJob, method: str) -> tuple[int, str]:
    """(k, name) of the category image ``job.index`` is made for."""
    cats = job.prompt.meta.get("categories")
    if not cats:
        raise UserError(
            f"method {method!r}: prompt {job.prompt.id!r} of set {job.prompt_set!r} has no meta.categories; "
            "expected a fairness prompt set (dataset 'attributes' or tinyworld-fairness)"
        )
    k = job.index % len(cats)
    return k, str(cats[k])


def category_meta(job: ImageJob, method: str) -> dict[str, Any]:
    k, name = category(job, method)
    return {"category": name, "category_index": k, "tsa": job.prompt.meta.get("tsa")}


def base_prompt(job: ImageJob) -> str:
    return str(job.prompt.meta.get("base_prompt") or job.prompt.text)
