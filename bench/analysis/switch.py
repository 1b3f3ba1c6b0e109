"""Prompt switching mid-denoising (FairQueue's I2H / H2I analysis) with attention statistics.

Two prompts: the hard prompt ("a headshot of a person smiling", HPS) and the inclusive prompt
(ITI-GEN: the base prompt followed by learned tokens), each a :class:`PromptSource`.

- H2I at step k: the hard prompt for steps ``0 .. k-1``, the inclusive prompt from step k on.
- I2H at step k: the reverse.

The switch replaces the conditional half of ``prompt_embeds`` (SDXL: and ``add_text_embeds``)
in diffusers' ``callback_on_step_end``; the unconditional half (the empty negative prompt) is
untouched. ``k = 0`` is the second prompt alone; ``k`` at or past the end the first alone.
``count`` says what ``k`` counts:

- ``"steps"`` (default): sampler steps (``t2ibench.attention.steps``; PNDM's repeated second
  timestep belongs to step 0), as every method's step window does.
- ``"calls"``: UNet calls, as FairQueue's analysis code does (``Analysis_Code/
  pipeline_stable_diffusion.py:696-716``: ``for i, t in enumerate(timesteps)``, the first prompt
  while ``i < step_start_switch``; 15 of the 51 calls of 50 PNDM steps).

Maps and statistics are per sampler step either way; a step is attributed to the prompt of its
last UNet call (with ``count="calls"`` and ``k = 1`` PNDM's step 0 mixes both prompts).

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

from ..attention.steps import sampler_steps
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


COUNTS = ("steps", "calls")

#: FairQueue's analysis setting (``Analysis_Code/cros_attn_analysis.py``): 50 PNDM steps of SD 1.4's
#: default scheduler (51 UNet calls, lines 83-85, 113), the pipeline's default guidance 7.5 (no
#: ``guidance_scale`` passed), the switch at UNet call 15 (line 27; ``pipeline_stable_diffusion.py:
#: 696-716``), fp16 autocast on CUDA (lines 89, 110), 512 px (SD 1.4's default size)
PAPER_SWITCH = {"steps": 50, "guidance": 7.5, "size": 512, "switch_step": 15, "count": "calls"}
#: FairQueue's hard prompts (``cros_attn_analysis.py:55-58``); the tSA words are the last three
#: (its ``vocabulary`` S0-S2, lines 70-73)
PAPER_HARD_PROMPTS = {
    "Smiling": "A headshot of a person smiling beaming grinning",
    "High_Cheekbones": "A headshot of a person high cheek bones",
    "Gray_Hair": "A headshot of a person with gray hair",
    "Chubby": "A headshot of a person chubby fleshy obese",
}


def _switch_after(schedule: Sequence[Any], switch_step: int, count: str) -> int | None:
    """The UNet call after which the second prompt takes over (None: never), and so the calls
    ``0 .. that`` use the first prompt; ``schedule``: one timestep per UNet call."""
    n_calls = len(schedule)
    if count == "calls":
        return switch_step - 1 if 0 < switch_step < n_calls else None
    step_of = sampler_steps(schedule)
    starts = [c for c in range(1, n_calls) if step_of[c] == switch_step and step_of[c - 1] < switch_step]
    return starts[0] - 1 if starts and switch_step > 0 else None


def first_prompt_steps(schedule: Sequence[Any], switch_step: int, count: str) -> set[int]:
    """Sampler steps whose last UNet call used the first prompt."""
    if switch_step <= 0:
        return set()
    last = _switch_after(schedule, switch_step, count)
    step_of = sampler_steps(schedule)
    last_call = {s: c for c, s in enumerate(step_of)}
    return {s for s, c in last_call.items() if last is None or c <= last}


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
    count: str = "steps",
) -> TokenMaps:
    """One image with ``first`` before ``switch_step`` (sampler steps or UNet calls, ``count``)
    and ``second`` after; maps captured.

    The returned ``TokenMaps.prompt`` is ``first.text``; ``meta["first_steps"]`` lists the sampler
    steps attributed to ``first``; use :func:`switch_statistics` for per-step token labels.
    """
    if count not in COUNTS:
        raise UserError(f"switch count {count!r}; expected one of {', '.join(COUNTS)}")
    e1, e2 = first.encoded(pipe), second.encoded(pipe)
    start = e2 if switch_step <= 0 else e1
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    schedule: list[float] = []

    def swap(p: Any, i: int, t: Any, kw: dict) -> dict:
        if not schedule:
            schedule.extend(float(x) for x in p.scheduler.timesteps)
        if i == _switch_after(schedule, switch_step, count):
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
    if not schedule:  # the callback never ran (no step): the schedule of this call all the same
        schedule.extend(float(x) for x in pipe.scheduler.timesteps)
    maps.meta.update(first=first.label, second=second.label, switch_step=switch_step, count=count, schedule=list(schedule),
                     first_steps=sorted(first_prompt_steps(schedule, switch_step, count)))
    return maps


def active_source(first: PromptSource, second: PromptSource, switch_step: int, step: int,
                  first_steps: Iterable[int] | None = None) -> PromptSource:
    """The prompt of ``step``: in ``first_steps`` when given (``TokenMaps.meta``), else step < switch_step."""
    if first_steps is not None:
        return first if step in set(first_steps) else second
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
    first_steps = maps.meta.get("first_steps")
    for step in maps.steps():
        src = active_source(first, second, switch_step, step, first_steps)
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
    count: str = "steps",
) -> SwitchResult:
    """Hard alone, inclusive alone, H2I and I2H at ``switch_step`` and at every ``sweep`` step
    (sampler steps or UNet calls: ``count``).

    Condition labels: ``hard``, ``inclusive``, ``H2I@k``, ``I2H@k``. Statistics rows carry
    ``condition`` and ``seed``; the phase split for the single prompts is at ``switch_step``.
    """
    top = steps + 1 if count == "calls" else steps  # PNDM: one UNet call more than steps
    if not 0 <= switch_step <= top:
        raise UserError(f"switch step: {switch_step}; expected 0..{top}")
    conds: list[tuple[str, PromptSource, PromptSource, int]] = [
        (hard.label, hard, hard, steps), (inclusive.label, inclusive, inclusive, steps),
    ]
    for k in dict.fromkeys([switch_step, *sweep]):
        if not 0 <= k <= top:
            raise UserError(f"sweep step: {k}; expected 0..{top}")
        conds += [(f"H2I@{k}", hard, inclusive, k), (f"I2H@{k}", inclusive, hard, k)]
    images: dict[str, list[Any]] = {}
    all_maps: dict[str, list[TokenMaps]] = {}
    rows: list[dict[str, Any]] = []
    for label, a, b, k in conds:
        for seed in seeds:
            tm = switched_call(pipe, a, b, k, seed, steps=steps, guidance=guidance, height=height, width=width,
                               count=count)
            images.setdefault(label, []).append(tm.image)
            all_maps.setdefault(label, []).append(tm)
            # early phase: the steps before the switch (for a single prompt: before ``switch_step``)
            early = first_prompt_steps(tm.meta["schedule"], switch_step if k >= steps else k, count)
            rows += switch_statistics(
                pipe, tm, a, b, k, early_until=len(early),
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
        early = set(tm.meta.get("first_steps", range(k)))
        for phase, rng, src in (("early", sorted(early), first), ("late", [s for s in tm.steps() if s not in early], second)):
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
