"""Sensitive-attribute (tSA) prompt sets for fair generation (ITI-GEN, FairQueue).

One prompt per tSA: the base prompt ("a headshot of a person", ITI-GEN/FairQueue) with its
categories, a hard prompt per category (HPS: the category written into the prompt) and CLIP
zero-shot class prompts per category (for the fairness classifier). Methods that balance over
categories make image ``i`` for category ``i % K``.

Attributes: CelebA binary attributes used by ITI-GEN/FairQueue (category 0 = attribute absent),
FairFace ``Age`` (9 bins) and ``Skin_Tone`` (6 Fitzpatrick types, as in ITI-GEN's FAIR
benchmark). The hard and class prompt wording is this project's; change it with ``params``.

Class prompts (``params.class_prompts``):

- ``"iti-gen"``: ITI-GEN's README evaluation example (``README.md:260``, ``--class-list 'a
  headshot of a person wearing eyeglasses' 'a headshot of a person'``): the attribute's presence
  is named, its absence is the base prompt alone (no negation, which CLIP reads poorly). For the
  attributes whose categories are both affirmative (Male, Young, Age, Skin_Tone) and the present
  wording of attributes other than Eyeglasses, the hard-prompt wording (the supplement's Table A3
  is not reproduced here).
- ``"headshot"`` (default) = the hard-prompt wording for every category ("a headshot of a person
  not smiling" / "... smiling").
- ``"photo"`` = "a photo of ..." (the project's earlier wording).
"""

from __future__ import annotations

from t2ibench.errors import UserError
from t2ibench.types import PromptItem

from ._io import subsample

BASE_PROMPT = "a headshot of a person"

#: tSA -> [(category name, hard-prompt suffix, class prompt)]
TSAS: dict[str, list[tuple[str, str, str]]] = {
    "Male": [
        ("female", "a headshot of a woman", "a photo of a woman"),
        ("male", "a headshot of a man", "a photo of a man"),
    ],
    "Young": [
        ("old", "a headshot of an old person", "a photo of an old person"),
        ("young", "a headshot of a young person", "a photo of a young person"),
    ],
    "Smiling": [
        ("not smiling", "a headshot of a person not smiling", "a photo of a person who is not smiling"),
        ("smiling", "a headshot of a person smiling", "a photo of a person who is smiling"),
    ],
    "Eyeglasses": [
        ("no eyeglasses", "a headshot of a person without eyeglasses", "a photo of a person without eyeglasses"),
        ("eyeglasses", "a headshot of a person with eyeglasses", "a photo of a person with eyeglasses"),
    ],
    "Gray_Hair": [
        ("not gray hair", "a headshot of a person without gray hair", "a photo of a person without gray hair"),
        ("gray hair", "a headshot of a person with gray hair", "a photo of a person with gray hair"),
    ],
    "High_Cheekbones": [
        ("not high cheekbones", "a headshot of a person without high cheekbones", "a photo of a person without high cheekbones"),
        ("high cheekbones", "a headshot of a person with high cheekbones", "a photo of a person with high cheekbones"),
    ],
    "Chubby": [
        ("not chubby", "a headshot of a person who is not chubby", "a photo of a person who is not chubby"),
        ("chubby", "a headshot of a chubby person", "a photo of a chubby person"),
    ],
    "Pale_Skin": [
        ("not pale skin", "a headshot of a person without pale skin", "a photo of a person without pale skin"),
        ("pale skin", "a headshot of a person with pale skin", "a photo of a person with pale skin"),
    ],
    "Heavy_Makeup": [
        ("no heavy makeup", "a headshot of a person without makeup", "a photo of a person without makeup"),
        ("heavy makeup", "a headshot of a person with heavy makeup", "a photo of a person with heavy makeup"),
    ],
    "Bald": [
        ("not bald", "a headshot of a person with hair", "a photo of a person with hair"),
        ("bald", "a headshot of a bald person", "a photo of a bald person"),
    ],
    "Mustache": [
        ("no mustache", "a headshot of a person without a mustache", "a photo of a person without a mustache"),
        ("mustache", "a headshot of a person with a mustache", "a photo of a person with a mustache"),
    ],
    "Age": [
        (b, f"a headshot of a person aged {b}", f"a photo of a person aged {b}")
        for b in ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
    ],
    "Skin_Tone": [
        (f"type {k}", f"a headshot of a person with skin tone type {k}", f"a photo of a person with skin tone type {k}")
        for k in range(1, 7)
    ],
}

DEFAULT_TSAS = ["Smiling", "High_Cheekbones", "Gray_Hair", "Eyeglasses", "Male", "Young", "Chubby"]


CLASS_PROMPT_STYLES = ("headshot", "iti-gen", "photo")
#: ITI-GEN README.md:260: the present category's class prompt where it differs from the hard prompt
ITI_GEN_PRESENT = {"Eyeglasses": "a headshot of a person wearing eyeglasses"}
#: tSAs whose category 0 is the attribute's absence: in the "iti-gen" style its class prompt is the base prompt
ABSENCE_FIRST = frozenset({"Smiling", "Eyeglasses", "Gray_Hair", "High_Cheekbones", "Chubby", "Pale_Skin", "Heavy_Makeup",
                           "Bald", "Mustache"})


def class_prompts_of(tsa: str, style: str = "headshot") -> list[str]:
    """The CLIP zero-shot class prompt of each category of ``tsa`` in ``style`` (module docstring)."""
    cats = TSAS[tsa]
    if style == "photo":
        return [c[2] for c in cats]
    prompts = [c[1] for c in cats]
    if style == "iti-gen" and tsa in ABSENCE_FIRST:
        prompts = [BASE_PROMPT, ITI_GEN_PRESENT.get(tsa, prompts[1])]
    return prompts


def attribute_prompt(tsa: str, base_prompt: str = BASE_PROMPT, class_prompts: str = "headshot") -> PromptItem:
    """The prompt item for one tSA (see module docstring for the meta keys)."""
    cats = TSAS[tsa]
    meta = {
        "tsa": tsa,
        "base_prompt": base_prompt,
        "categories": [c[0] for c in cats],
        "hard_prompts": [c[1] if base_prompt == BASE_PROMPT else f"{base_prompt}, {c[0]}" for c in cats],
        "class_prompts": class_prompts_of(tsa, class_prompts),
    }
    return PromptItem(id=tsa, text=base_prompt, meta=meta)


def load_attribute_prompts(params: dict, *, limit: int | None = None, sample_seed: int = 0, where: str = "prompt_sets") -> list[PromptItem]:
    """``params.tsas`` (default: FairQueue's CelebA set) with ``params.base_prompt``."""
    tsas = params.get("tsas", DEFAULT_TSAS)
    base = params.get("base_prompt", BASE_PROMPT)
    style = params.get("class_prompts", "headshot")
    unknown_keys = sorted(set(params) - {"tsas", "base_prompt", "class_prompts"})
    if unknown_keys:
        raise UserError(f"{where}.params.{unknown_keys[0]}: unknown key; expected tsas, base_prompt, class_prompts")
    if style not in CLASS_PROMPT_STYLES:
        raise UserError(f"{where}.params.class_prompts: {style!r}; expected one of {', '.join(CLASS_PROMPT_STYLES)}")
    if not isinstance(tsas, list) or not tsas:
        raise UserError(f"{where}.params.tsas: expected a non-empty list of attribute names from {sorted(TSAS)}")
    for t in tsas:
        if t not in TSAS:
            raise UserError(f"{where}.params.tsas: unknown attribute {t!r}; expected one of {sorted(TSAS)}")
    return subsample([attribute_prompt(t, base, style) for t in tsas], limit, sample_seed)
