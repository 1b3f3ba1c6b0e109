"""The model cards ``OUT/{pipeline,clip,evaluator,itigen}/README.md`` of the tinyworld weights.

A card is its template ``cards/<model>.md`` (the prose and the training facts from
``OUT/training.json``) followed by one section per measured part (``cards/<model>-<part>.md``,
left out when ``eval.json`` has no figures for it). Templates use ``string.Template``
placeholders (``$name``); the tables are rendered here. Every block ends with one blank line.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Mapping

from ..fileio import atomic_write_text

__all__ = ["render_cards", "write_cards"]


def _template(name: str) -> Template:
    return Template(resources.files("t2ibench.world").joinpath("cards").joinpath(f"{name}.md").read_text(encoding="utf-8"))


def _block(name: str, **fields: Any) -> str:
    return _template(name).substitute(**fields).rstrip("\n") + "\n\n"


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(d: Mapping[str, Any]) -> str:
    """Rows ``| key | value |`` of a two-column table (floats to 3 decimals)."""
    return "\n".join(f"| {k} | {_fmt(v)} |" for k, v in d.items())


def _shares(categories: list[str], shares: list[float]) -> str:
    return ", ".join(f"{c} {s:.2f}" for c, s in zip(categories, shares, strict=True))


def _facts(train: Mapping[str, Any], key: str) -> str:
    t = train.get(key)
    if not t:
        return "(no training record)"
    return "\n".join(f"- {k}: {v}" for k, v in t.items())


def _fine_tunes(train: Mapping[str, Any], stages: Mapping[str, str]) -> str:
    """Sections for the fine-tunes (``<stage>_fine_tune`` records) that ``train`` holds; "" if none."""
    return "".join(f"\n\n### {title}\n{_facts(train, key)}" for key, title in stages.items() if train.get(key))


def _pipeline(train: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    text = _block("pipeline", training_clip=_facts(train, "clip"), training_vae=_facts(train, "vae"),
                  training_vae_decoder=_facts(train, "vae_decoder"), training_unet=_facts(train, "unet"),
                  fine_tunes=_fine_tunes(train, {"clip_fine_tune": "text encoder fine-tuning (with the CLIP)",
                                                 "unet_fine_tune": "UNet fine-tuning"}))
    v = figures.get("vae") or {}
    if v:
        text += _block("pipeline-vae", figures=_table({
            "PSNR dB (mean)": v.get("psnr_db"), "PSNR dB (median)": v.get("psnr_db_median"),
            "images": v.get("n_images"), "target >= 28 dB met": v.get("met")}))
    t = figures.get("text") or {}
    if t.get("share"):
        roles = list(next(iter(t["share"].values())))
        text += _block("pipeline-text", captions=t.get("captions"), template=t.get("caption_template"), met=t.get("met"),
                       roles=" | ".join(roles), rule=" | ".join("---" for _ in roles),
                       rows="\n".join(f"| {name} | " + " | ".join(f"{row[r]:.2f}" for r in roles) + " |"
                                      for name, row in t["share"].items()))
    b = figures.get("binding") or {}
    if "binding_accuracy" in b:
        text += _block("pipeline-binding", steps=b.get("steps"), guidance=b.get("guidance"), n_prompts=b.get("n_prompts"),
                       n_images=b.get("n_images"), figures=_table({
                           "binding: both objects' shape and colour right (target 0.5)": b.get("binding_accuracy"),
                           "both colours present, shapes ignored": b.get("both_colors_present")}))
    p = figures.get("pipeline") or {}
    if p:
        rows = [f"| {tsa} | {r['fd_neutral_prompt']:.3f} | {r['fd_balanced_renders']:.3f} | "
                f"{r['fd_training_distribution']:.3f} | {_shares(r['categories'], r['distribution_neutral_prompt'])} |"
                for tsa, r in p.get("neutral_prompt_fd", {}).items()]
        text += _block(
            "pipeline-generation", scheduler=p.get("scheduler"), steps=p.get("steps"), guidance=p.get("guidance"),
            n_neutral=p.get("n_neutral"), alignment_accuracy=_table(p.get("alignment_accuracy", {})),
            figures=_table({
                "single-object shape and colour right (target 0.85)": p.get("single_object_shape_and_color"),
                "single-object colour right, shape ignored": p.get("single_object_color_right"),
                "attribute-naming headshot prompts right (target 0.80)": p.get("headshot_attribute_accuracy_all"),
                "binding error rate (two-object prompts)": p.get("binding_error_rate"),
                "count error rate": p.get("count_error_rate"),
                "relation error rate": p.get("relation_error_rate"),
                "neutral prompt: share read as a face": p.get("neutral_face_share")}),
            check_rates=_table(p.get("check_rates", {})),
            headshot_attribute_accuracy=_table(p.get("headshot_attribute_accuracy", {})),
            neutral_prompt_fd="\n".join(rows))
    return text


def _clip(train: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    text = _block("clip", training=_facts(train, "clip"),
                  fine_tunes=_fine_tunes(train, {"clip_fine_tune": "Fine-tuning"}))
    c = figures.get("clip") or {}
    if c:
        text += _block("clip-figures", n_per_category=c.get("n_per_category"),
                       zero_shot_accuracy=_table(c.get("zero_shot_accuracy", {})))
    return text


def _evaluator(train: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    text = _block("evaluator", training=_facts(train, "evaluator"))
    e = figures.get("evaluator") or {}
    if e:
        text += _block("evaluator-figures", n_images=e.get("n_images"), accuracy=_table(e.get("accuracy", {})))
    return text


def _itigen(train: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    text = _block("itigen", training=_facts(train, "itigen"))
    it = figures.get("itigen") or {}
    if it.get("tsas"):
        neutral = (figures.get("pipeline") or {}).get("neutral_prompt_fd", {})
        rows = []
        for tsa, r in it["tsas"].items():
            nfd = neutral.get(tsa, {}).get("fd_neutral_prompt")
            rows.append(f"| {tsa} | {r['category_hit_rate']:.3f} | {r['fd_iti_gen']:.3f} | "
                        + (f"{nfd:.3f}" if nfd is not None else "–") + " | "
                        + _shares(r["categories"], r["distribution"]) + " |")
        text += _block("itigen-figures", steps=it.get("steps"), guidance=it.get("guidance"),
                       per_category=it.get("per_category"), rows="\n".join(rows))
    return text


CARDS = {"pipeline": _pipeline, "clip": _clip, "evaluator": _evaluator, "itigen": _itigen}


def render_cards(train: Mapping[str, Any], figures: Mapping[str, Any]) -> dict[str, str]:
    """Card text per model folder name, from ``training.json`` and ``eval.json`` contents."""
    return {name: fn(train, figures) for name, fn in CARDS.items()}


def write_cards(out: Path, figures: Mapping[str, Any]) -> None:
    """Write ``OUT/<model>/README.md`` for every model folder present in ``out``."""
    train = json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}
    for name, text in render_cards(train, figures).items():
        if (out / name).is_dir():
            atomic_write_text(out / name / "README.md", text)
