"""tinyworld prompts with the structured labels they assert (used by datasets/tinyworld.py and
``world eval``).

Alignment categories (each prompt's labels follow ``check_prompt``'s schema)::

    color    "a red circle"                                   shape + colour
    count    "two green triangles" / "three ..."              exact number of that kind
    texture  "a striped yellow star"                          shape + colour + texture
    time     "a blue square at night" / "... during the day"  + background
    location "a red circle to the left of a blue square"      two kinds + grid relation
    binding  "a red circle and a blue square"                 two kinds, each with its colour

Labels: ``{"family": "objects", "objects": [{"shape", "color", "texture"?, "count"}],
"background"?: "day"|"night", "relation"?: {"subject": 0, "object": 1, "relation": "..."},
"check_count"?: True}``. Every text is exactly what the renderer's captions say for such a
scene, so the prompts are in the training distribution's language.

Fairness: per tSA (``TSAS`` of the evaluator) the neutral prompt, one hard prompt per category
(``render.face_phrase``) and CLIP class prompts (the same texts: the tiny CLIP was trained on
exactly these phrasings).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .evaluator import TSAS
from .render import COLORS, NEUTRAL_FACE, SHAPES, face_phrase, object_phrase

CATEGORIES = ("color", "count", "texture", "time", "location", "binding")
RELATIONS = ("to the left of", "to the right of", "above", "below")


def _obj(shape, color, texture=None, count=1):
    d = {"shape": shape, "color": color, "count": count}
    if texture:
        d["texture"] = texture
    return d


Kind = tuple[str, str]  # (colour, shape)
Prompt = tuple[str, dict[str, Any]]  # (text, labels)


def _color_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(object_phrase(s, c, None), {"family": "objects", "objects": [_obj(s, c)]}) for c, s in kinds]


def _count_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(object_phrase(s, c, None, n), {"family": "objects", "objects": [_obj(s, c, None, n)], "check_count": True})
            for n in (2, 3) for c, s in kinds]


def _texture_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(object_phrase(s, c, "striped"), {"family": "objects", "objects": [_obj(s, c, "striped")]}) for c, s in kinds]


def _time_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(f"{object_phrase(s, c, None)} {phrase}", {"family": "objects", "objects": [_obj(s, c)], "background": bg})
            for bg, phrase in (("night", "at night"), ("day", "during the day")) for c, s in kinds]


def _two_object_pairs(kinds: list[Kind]) -> list[tuple[Kind, Kind]]:
    """Ordered pairs of kinds that differ in both colour and shape."""
    return [(k1, k2) for k1, k2 in itertools.permutations(kinds, 2) if k1[0] != k2[0] and k1[1] != k2[1]]


def _binding_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(f"{object_phrase(s1, c1, None)} and {object_phrase(s2, c2, None)}",
             {"family": "objects", "objects": [_obj(s1, c1), _obj(s2, c2)]})
            for (c1, s1), (c2, s2) in _two_object_pairs(kinds)]


def _location_prompts(kinds: list[Kind]) -> list[Prompt]:
    return [(f"{object_phrase(s1, c1, None)} {rel} {object_phrase(s2, c2, None)}",
             {"family": "objects", "objects": [_obj(s1, c1), _obj(s2, c2)],
              "relation": {"subject": 0, "object": 1, "relation": rel}})
            for (c1, s1), (c2, s2) in _two_object_pairs(kinds) for rel in RELATIONS]


_CATEGORY_PROMPTS = {
    "color": _color_prompts, "count": _count_prompts, "texture": _texture_prompts, "time": _time_prompts,
    "location": _location_prompts, "binding": _binding_prompts,
}


def category_prompts(category: str) -> list[Prompt]:
    """All prompts of a category in a fixed order: (text, labels)."""
    if category not in _CATEGORY_PROMPTS:
        raise ValueError(f"unknown alignment category {category!r}; expected one of {CATEGORIES}")
    return _CATEGORY_PROMPTS[category](list(itertools.product(COLORS, SHAPES)))


def alignment_prompts(categories=CATEGORIES, per_category: int | None = None, sample_seed: int = 0
                      ) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, text, meta) interleaved round-robin over categories, each shuffled by ``sample_seed``.
    ``id`` = ``<category>-<index in the category's fixed order>``."""
    per: list[list[tuple[str, str, dict]]] = []
    for cat in categories:
        items = category_prompts(cat)
        order = np.random.default_rng([sample_seed, CATEGORIES.index(cat)]).permutation(len(items))
        if per_category is not None:
            order = order[:per_category]
        per.append([(f"{cat}-{i:04d}", items[i][0], {"category": cat, "labels": items[i][1]}) for i in order])
    out: list[tuple[str, str, dict[str, Any]]] = []
    for row in itertools.zip_longest(*per):
        out.extend(x for x in row if x is not None)
    return out


def fairness_meta(tsa: str) -> dict[str, Any]:
    spec = TSAS[tsa]
    hard = [face_phrase({spec["key"]: v}) for v in spec["values"]]
    return {
        "tsa": tsa,
        "categories": list(spec["names"]),
        "hard_prompts": hard,
        "class_prompts": list(hard),
        "base_prompt": NEUTRAL_FACE,
        "label_key": spec["key"],
        "label_values": list(spec["values"]),
    }


def headshot_attribute_prompts() -> list[tuple[str, dict[str, Any]]]:
    """Every hard prompt of every tSA with its labels (the attribute-naming headshot prompts)."""
    out = []
    for tsa, spec in TSAS.items():
        for v in spec["values"]:
            out.append((face_phrase({spec["key"]: v}), {"family": "face", spec["key"]: v, "tsa": tsa}))
    return out
