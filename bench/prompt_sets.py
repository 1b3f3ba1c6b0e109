"""Loading a suite's prompt set through the dataset registry, with its checks."""

from __future__ import annotations

from .errors import UserError
from .paths import EXPECTED, is_safe_name
from .registry import DATASETS
from .types import PromptItem


def load_prompt_set(spec, where: str = "prompt_sets") -> list[PromptItem]:
    """The prompts of ``spec`` (a ``PromptSetSpec``); ids are unique and file-name safe."""
    loader = DATASETS.get(spec.dataset, where=f"{where}.dataset")
    items = loader(dict(spec.params), limit=spec.limit, sample_seed=spec.sample_seed, where=where)
    if not items:
        raise UserError(f"{where}: dataset {spec.dataset!r} gave no prompts; expected at least one")
    seen: set[str] = set()
    for item in items:
        if not is_safe_name(item.id):
            raise UserError(f"{where}: prompt id {item.id!r} is not file-name safe; expected {EXPECTED}")
        if item.id in seen:
            raise UserError(f"{where}: prompt id {item.id!r} occurs twice; expected unique ids")
        seen.add(item.id)
    return items
