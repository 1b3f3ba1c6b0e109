"""Prompt switching mid-denoising (FairQueue's I2H / H2I analysis) with attention statistics.

Two prompts: the hard prompt ("a headshot of a person smiling", HPS) and the inclusive prompt
(ITI-GEN: the base prompt followed by learned tokens), each a :class:`PromptSource`.

- H2I at step k: the hard prompt for steps ``0 .. k-1``, the inclusive prompt from step k on.
- I2H at step k: the reverse.

The switch replaces the conditional half of ``prompt_embeds`` (SDXL: and ``add_text_embeds``)
in diffusers' ``callback_on_step_end`` after step ``k-1``; the unconditional half (the empty
negative prompt) is untouched. ``k = 0`` is the second prompt alone; ``k >= steps`` the first
alone. Step indices count the sampler's steps from 0 (FairQueue's public code switches at step
15 of 50).

Per step, the maps of the prompt active at that step are characterised token by token with
:func:`t2ibench.analysis.stats.map_statistics`; ``share`` is the token's share of all attention
mass at that step (all 77 key positions: the softmax sums to 1 per query, head and layer).
Token groups: ``tsa`` (the tSA word of a hard prompt, the learned tokens of an inclusive
prompt), ``non-tsa`` (the other words of the prompt), ``sot`` (start of text), ``eot`` (the
first end-of-text token; later padding positions are not reported). Phase: ``early`` for
steps before ``early_until`` (default: the switch step), ``late`` after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..errors import UserError
from .maps import TokenMaps, capture_maps
from .stats import map_statistics
from .tokens import term_token_positions


@dataclass
class PromptSource:
    """A prompt to switch between.

    ``text``: what the tokens are (and what is encoded when ``embeds`` is None); ``embeds``: a
    ``t2ibench.attention.PromptEmbeds`` (e.g. with ITI-GEN's learned tokens injected); ``tsa``:
    token positions of the tSA tokens; ``token_names``: display names per position (default:
    the tokenizer's strings).
    """

    label: str
    text: str
    tsa: Sequence[int] = ()
    embeds: Any = None
    token_names: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def hard(cls, tokenizer: Any, text: str, tsa_words: Sequence[str], label: str = "hard") -> "PromptSource":
        """A hard prompt whose tSA tokens are those of ``tsa_words``."""
        pos = [p for w in tsa_words for p in term_token_positions(tokenizer, text, w)]
        return cls(label=label, text=text, tsa=pos)

    def encoded(self, pipe: Any):
        from ..attention import encode_prompts

        return self.embeds if self.embeds is not None else encode_prompts(pipe, [self.text])


def _names(pipe: Any, source: PromptSource) -> dict[int, str]:
    from ..attention import token_labels

    names = {p: t for p, t in token_labels(pipe.tokenizer, source.text)}
    names.update(source.token_names)
    return names


def _groups(pipe: Any, source: PromptSource) -> dict[int, str]:
    ids = pipe.tokenizer(source.text, truncation=True, max_length=pipe.tokenizer.model_max_length)["input_ids"]
    eot = len(ids) - 1
    out = {0: "sot", eot: "eot"}
    for p in range(1, eot):
        out[p] = "non-tsa"
    for p in source.tsa:
        out[int(p)] = "tsa"
    return out


def switched_call(
    pipe: Any,
    first: PromptSource,
    second: PromptSource,
    switch_step: int,
    seed: int = 0,
    *,
    steps: int = 25,
    guidance: float = 5.0,
    height: int = 64,
    width: int = 64,
) -> TokenMaps:
    """One image with ``first`` for steps < ``switch_step`` and ``second`` after; maps captured.

    The returned ``TokenMaps.prompt`` is ``first.text``; use :func:`switch_statistics` for
    per-step token labels of the active prompt.
    """
    e1, e2 = first.encoded(pipe), second.encoded(pipe)
    start = e2 if switch_step <= 0 else e1
    sdxl = getattr(pipe, "text_encoder_2", None) is not None

    def swap(p: Any, i: int, t: Any, kw: dict) -> dict:
        if i + 1 == switch_step and switch_step < steps:
            pe = kw["prompt_embeds"].clone()
            n = e2.prompt_embeds.shape[0]
            pe[-n:] = e2.prompt_embeds.to(pe.dtype)
            kw["prompt_embeds"] = pe
            if sdxl and e2.pooled is not None:
                te = kw["add_text_embeds"].clone()
                te[-n:] = e2.pooled.to(te.dtype)
                kw["add_text_embeds"] = te
        return kw

    tensors = ["latents", "prompt_embeds"] + (["add_text_embeds"] if sdxl else [])
    maps = capture_maps(
        pipe, first.text if switch_step > 0 else second.text, seed, steps=steps, guidance=guidance,
        height=height, width=width, prompt_embeds=start, callback=swap, tensor_inputs=tensors,
    )
    maps.meta.update(first=first.label, second=second.label, switch_step=switch_step)
    return maps


def active_source(first: PromptSource, second: PromptSource, switch_step: int, step: int) -> PromptSource:
    return first if step < switch_step else second


def switch_statistics(
    pipe: Any,
    maps: TokenMaps,
    first: PromptSource,
    second: PromptSource,
    switch_step: int,
    *,
    early_until: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows (one per step and reported token) of the module doc's statistics."""
    early_until = switch_step if early_until is None else early_until
    cache: dict[str, tuple[dict[int, str], dict[int, str]]] = {}
    rows = []
    for step in maps.steps():
        src = active_source(first, second, switch_step, step)
        if src.label not in cache:
            cache[src.label] = (_names(pipe, src), _groups(pipe, src))
        names, groups = cache[src.label]
        m = maps.per_step[step]
        ref = float(m.sum())
        for pos in sorted(groups):
            st = map_statistics(m[pos].numpy(), reference_total=ref)
            rows.append({
                **(extra or {}), "switch_step": switch_step, "step": step,
                "phase": "early" if step < early_until else "late",
                "prompt": src.label, "position": pos, "token": names.get(pos, str(pos)),
                "token_group": groups[pos], **st,
            })
    return rows


@dataclass
class SwitchResult:
    """Images, maps and statistics of a switching experiment."""

    images: dict[str, list[Any]]  # condition label -> one image per seed
    maps: dict[str, list[TokenMaps]]
    rows: list[dict[str, Any]]


def switch_experiment(
    pipe: Any,
    hard: PromptSource,
    inclusive: PromptSource,
    switch_step: int,
    seeds: Sequence[int] = (0,),
    *,
    sweep: Iterable[int] = (),
    steps: int = 25,
    guidance: float = 5.0,
    height: int = 64,
    width: int = 64,
) -> SwitchResult:
    """Hard alone, inclusive alone, H2I and I2H at ``switch_step`` and at every ``sweep`` step.

    Condition labels: ``hard``, ``inclusive``, ``H2I@k``, ``I2H@k``. Statistics rows carry
    ``condition`` and ``seed``; the phase split for the single prompts is at ``switch_step``.
    """
    if not 0 <= switch_step <= steps:
        raise UserError(f"switch step: {switch_step}; expected 0..{steps}")
    conds: list[tuple[str, PromptSource, PromptSource, int]] = [
        (hard.label, hard, hard, steps), (inclusive.label, inclusive, inclusive, steps),
    ]
    for k in dict.fromkeys([switch_step, *sweep]):
        if not 0 <= k <= steps:
            raise UserError(f"sweep step: {k}; expected 0..{steps}")
        conds += [(f"H2I@{k}", hard, inclusive, k), (f"I2H@{k}", inclusive, hard, k)]
    images: dict[str, list[Any]] = {}
    all_maps: dict[str, list[TokenMaps]] = {}
    rows: list[dict[str, Any]] = []
    for label, a, b, k in conds:
        for seed in seeds:
            tm = switched_call(pipe, a, b, k, seed, steps=steps, guidance=guidance, height=height, width=width)
            images.setdefault(label, []).append(tm.image)
            all_maps.setdefault(label, []).append(tm)
            rows += switch_statistics(
                pipe, tm, a, b, k, early_until=switch_step if k >= steps else k,
                extra={"condition": label, "seed": seed},
            )
    return SwitchResult(images, all_maps, rows)


def write_switch_outputs(
    pipe: Any, result: SwitchResult, hard: PromptSource, inclusive: PromptSource, switch_step: int, out: str | Path,
) -> dict[str, Path]:
    """grid.png, heatmaps_<condition>.png, stats.csv, distributions.png, share_over_steps.png."""
    import pandas as pd

    from . import figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    labels = list(result.images)
    n_seeds = len(next(iter(result.images.values())))
    written["grid"] = figures.image_grid(
        [[result.images[c][s] for c in labels] for s in range(n_seeds)], out / "grid.png",
        row_labels=[f"seed {result.maps[labels[0]][s].meta['seed']}" for s in range(n_seeds)], col_labels=labels,
        title=f"hard: {hard.text!r} | inclusive: {inclusive.text!r}",
    )
    for c in labels:
        tm = result.maps[c][0]
        k = int(tm.meta.get("switch_step", 0))
        first = hard if c.startswith("H2I") or c == hard.label else inclusive
        second = inclusive if c.startswith("H2I") or c == inclusive.label else hard
        panels: dict[str, torch.Tensor] = {}
        for phase, rng, src in (("early", range(0, k), first), ("late", range(k, tm.num_steps + 1), second)):
            chosen = [s for s in rng if s in tm.per_step]
            if not chosen:
                continue
            agg = tm.aggregate(chosen)
            names, groups = _names(pipe, src), _groups(pipe, src)
            for pos in sorted(groups):
                if groups[pos] in ("tsa", "non-tsa"):
                    panels[f"{phase} {src.label}: {names.get(pos, pos)}@{pos}{' *' if groups[pos] == 'tsa' else ''}"] = agg[pos]
        safe = c.replace("@", "_at_")
        written[f"heatmaps_{safe}"] = figures.heatmap_panels(tm.image, panels, out / f"heatmaps_{safe}.png", title=f"{c} (seed {tm.meta['seed']}; * = tSA token)")
    df = pd.DataFrame(result.rows)
    csv = out / "stats.csv"
    df.to_csv(csv, index=False)
    written["stats"] = csv
    focus = df[df["token_group"].isin(["tsa", "non-tsa"])]
    if len(focus):
        written["distributions"] = figures.group_distributions(
            focus, ["share", "max", "spread", "kurt_x"], out / "distributions.png",
            title=f"tSA vs non-tSA tokens, early (< step {switch_step}) vs late steps",
        )
        mean_share = focus.groupby(["condition", "step", "token_group"], as_index=False)["share"].mean()
        mean_share["series"] = mean_share["condition"] + " " + mean_share["token_group"]
        written["share_over_steps"] = figures.line_over_steps(
            mean_share, "share", out / "share_over_steps.png", by="series", title="mean attention share per token",
        )
    return written
