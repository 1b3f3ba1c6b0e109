"""``t2ibench analyze maps | switch | pid``: attention and information analyses with figures.

Each command loads a pipeline (``--model``: a name of ``t2ibench.models`` — ``tinyworld``,
``tiny-sd``, ``sd14``, a local directory ...), writes figures (PNG) and values (CSV) into
``--out`` (default ``t2ibench-analysis/<command>``) and prints one line per file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..cliargs import trust_remote_code


def _csv_ints(text: str) -> list[int]:
    from ..errors import UserError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _steps_range(text: str | None) -> range | None:
    """``a:b`` -> range(a, b) (either side may be empty)."""
    from ..errors import UserError

    if not text:
        return None
    a, sep, b = text.partition(":")
    if not sep:
        raise UserError(f"--step-range {text!r}: expected START:STOP, e.g. 0:10")
    return range(int(a or 0), int(b) if b else 1 << 20)


def _under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or lies under it at a dot ("up_blocks.1" is not "up_blocks.10")."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def _layers(text: str | None, unet: Any) -> Any:
    """``--layers``: ``cross`` (every cross-attention layer), a JSON mapping of
    ``t2ibench.attention.LayerSelector`` (``blocks``, ``levels``; kind is always cross), or a JSON
    list of layer names, each naming every cross-attention layer whose processor key starts with
    it (``"up_blocks.1.attentions.0"``). Returns what ``CrossAttentionMaps(layers=...)`` takes;
    a selection that matches none of ``unet``'s cross-attention layers is a ``UserError``."""
    import json

    from ..attention import LayerSelector, attention_layers
    from ..errors import UserError

    if not text or text == "cross":
        return "cross"
    expected = ("expected 'cross', a JSON mapping such as '{\"blocks\": [\"up\"], \"levels\": [1]}' "
                "or a JSON list of layer names such as '[\"up_blocks.1.attentions.0\"]'")
    cross = [info.name for info in attention_layers(unet) if info.kind == "cross"]
    try:
        spec = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise UserError(f"--layers {text!r}: {exc}; {expected}") from None
    if isinstance(spec, list):
        if not spec or not all(isinstance(n, str) and n for n in spec):
            raise UserError(f"--layers {text!r}: a list must hold layer names; {expected}")
        chosen = [name for name in cross if any(_under(name, prefix) for prefix in spec)]
        missing = [prefix for prefix in spec if not any(_under(name, prefix) for name in cross)]
        if missing:
            shown = sorted({name.split(".transformer_blocks")[0] for name in cross})
            raise UserError(f"--layers {text!r}: {missing} name no cross-attention layer of this UNet; expected names "
                            f"among {shown}")
        return chosen
    try:
        if not isinstance(spec, dict):
            raise ValueError("not a mapping or a list")
        selector = LayerSelector.of({**spec, "kind": spec.get("kind", "cross")})
    except ValueError as exc:
        raise UserError(f"--layers {text!r}: {exc}; {expected}") from None
    if selector.kind != "cross":
        raise UserError(f"--layers {text!r}: kind {selector.kind!r}; maps are of cross-attention layers, {expected}")
    if not selector.select(unet):
        raise UserError(f"--layers {text!r}: selects none of this UNet's cross-attention layers; expected "
                        "blocks among down/mid/up and levels this model has")
    return selector


def _load(args) -> Any:
    from ..models import load_pipeline, set_scheduler

    pipe = load_pipeline(args.model, device=args.device, precision="fp32")
    if args.scheduler != "default":
        set_scheduler(pipe, args.scheduler)
    return pipe


def _out(args, name: str) -> Path:
    out = Path(args.out) if args.out else Path("t2ibench-analysis") / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def _common(p) -> None:
    p.add_argument("--model", default="tinyworld", help="model name or local pipeline directory (default: tinyworld)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--scheduler", default="default", help="sampler scheduler (default: the model's)")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    p.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale (default 5)")
    p.add_argument("--size", type=int, default=64, help="image height = width in pixels (default 64)")
    p.add_argument("--out", help="output folder (default: t2ibench-analysis/<command>)")


# -- maps -----------------------------------------------------------------------------------
def cmd_maps(args) -> int:
    import pandas as pd

    from ..errors import UserError
    from .maps import box_shares

    if not args.prompt and not args.world_check:
        raise UserError("analyze maps: --prompt TEXT (or --world-check N): expected a prompt to map")
    pipe = _load(args)
    out = _out(args, "maps")
    rng = _steps_range(args.step_range)
    layers = _layers(args.layers, pipe.unet)
    written = []
    if args.world_check:
        written += _world_check(args, pipe, out, rng, layers)
    for seed in (_csv_ints(args.seeds) if args.prompt else []):
        tm, files = prompt_maps(pipe, args.prompt, seed, out, steps=args.steps, guidance=args.guidance,
                                height=args.size, width=args.size, layers=layers, step_range=rng,
                                range_text=args.step_range)
        written += files
        stem = f"maps-seed{seed}"
        if args.boxes:
            boxes = json.loads(Path(args.boxes).read_text()) if Path(args.boxes).is_file() else json.loads(args.boxes)
            shares = [{"seed": seed, **r} for r in box_shares(tm, boxes, (args.size, args.size), rng)]
            pd.DataFrame(shares).to_csv(out / f"{stem}-boxes.csv", index=False)
            written.append(out / f"{stem}-boxes.csv")
            for r in shares:
                print(f"seed {seed} {r['word']}: share in box {r['share']:.3f} (chance {r['chance']:.3f}, lift {r['lift']:.2f})")
    for w in written:
        print(f"t2ibench: wrote {w}")
    return 0


def prompt_maps(pipe: Any, prompt: str, seed: int, out: Path, *, steps: int, guidance: float, height: int,
                width: int, layers: Any = "cross", step_range: range | None = None, range_text: str | None = None
                ) -> tuple[Any, list[Path]]:
    """Generate ``prompt`` with ``seed``, capture its cross-attention maps and write into ``out``
    ``maps-seed<seed>-image.png`` (the image), ``maps-seed<seed>.png`` (one heat map a word, DAAM
    aggregation over ``step_range``) and ``maps-seed<seed>.csv`` (per-word map statistics).
    Returns (the captured ``TokenMaps``, the figure and table paths)."""
    import pandas as pd

    from .figures import heatmap_panels
    from .maps import capture_maps
    from .stats import token_statistics

    tm = capture_maps(pipe, prompt, seed, steps=steps, guidance=guidance, height=height, width=width, layers=layers)
    wm = tm.word_maps(step_range)
    stem = f"maps-seed{seed}"
    tm.image.save(out / f"{stem}-image.png")
    figure = heatmap_panels(tm.image, wm, out / f"{stem}.png",
                            title=f"{prompt!r} seed {seed}" + (f" steps {range_text}" if step_range else ""))
    rows = [{"seed": seed, "word": r.pop("token"), **r} for r in token_statistics({k: v.numpy() for k, v in wm.items()})]
    pd.DataFrame(rows).to_csv(out / f"{stem}.csv", index=False)
    return tm, [figure, out / f"{stem}.csv"]


def _world_check(args, pipe, out: Path, rng, layers: Any = "cross") -> list[Path]:
    """Box shares on tinyworld: on noised renders (renderer boxes) and on generated images (evaluator cells)."""
    import pandas as pd

    from .world_checks import (
        capture_render_maps,
        generated_word_box_shares,
        object_word_box_shares,
        token_role_box_shares,
        token_role_summary,
        word_share_summary,
    )

    written = []
    captures = capture_render_maps(pipe, args.world_check, layers=layers)
    df = pd.DataFrame(object_word_box_shares(pipe, captures=captures))
    df.to_csv(out / "world-check-renders.csv", index=False)
    written.append(out / "world-check-renders.csv")
    print(word_share_summary("renders (boxes from the renderer's labels)", df))
    roles = token_role_box_shares(captures)
    pd.DataFrame(roles).to_csv(out / "world-check-tokens.csv", index=False)
    written.append(out / "world-check-tokens.csv")
    print(token_role_summary(roles))
    try:
        from t2ibench.world.evaluator import load_evaluator

        ev = load_evaluator()
    except (ImportError, FileNotFoundError, OSError) as exc:
        print(f"generated images: not available: {str(exc).removeprefix('not available: ')}")
        return written
    rows, counts = generated_word_box_shares(pipe, ev, args.world_check, steps=args.steps, guidance=args.guidance, step_range=rng,
                                             layers=layers)
    g = pd.DataFrame(rows)
    g.to_csv(out / "world-check-generated.csv", index=False)
    written.append(out / "world-check-generated.csv")
    print(word_share_summary(f"generated images (cells from the evaluator; {counts['objects_found']} of "
                        f"{counts['objects_named']} named objects found)", g))
    return written


# -- switch ---------------------------------------------------------------------------------
def _sources(args, pipe):
    from ..errors import UserError
    from .switch import PromptSource

    inclusive: PromptSource | None = None
    hard_text, tsa_words = args.hard, [w for w in (args.tsa_word or "").split(",") if w]
    if args.iti_gen:
        from t2ibench.baselines.iti_gen import InclusiveTokens, category_prompt

        from .switch import PAPER_HARD_PROMPTS

        tok = InclusiveTokens.load(args.iti_gen)
        # --paper: the attribute's present category (FairQueue takes row 0 of CelebA's [positive, negative])
        k = args.category if args.category is not None else (len(tok.categories) - 1 if args.paper else 0)
        if args.paper and not hard_text and tok.tsa in PAPER_HARD_PROMPTS:
            hard_text = PAPER_HARD_PROMPTS[tok.tsa]
            tsa_words = tsa_words or hard_text.split()[-3:]
        if not 0 <= k < len(tok.categories):
            raise UserError(f"--category {k}: expected 0..{len(tok.categories) - 1} for {tok.categories}")
        prompt = category_prompt(pipe, tok, k)
        inclusive = PromptSource("inclusive", prompt.text, tsa=prompt.positions, embeds=prompt.embeds, token_names=prompt.token_names)
        if not hard_text:
            hard_text = f"{tok.base_prompt} {tok.categories[k]}"
            tsa_words = tsa_words or [tok.categories[k]]
    elif args.inclusive:
        tsa_positions: list[int] = []
        if args.inclusive_tsa:
            from .tokens import term_token_positions

            tsa_positions = [p for w in args.inclusive_tsa.split(",")
                             for p in term_token_positions(pipe.tokenizer, args.inclusive, w)]
        inclusive = PromptSource("inclusive", args.inclusive, tsa=tsa_positions)
    if inclusive is None or not hard_text:
        raise UserError("analyze switch: give --iti-gen TOKENS (and --category) or --hard TEXT with --inclusive TEXT")
    if not tsa_words:
        raise UserError("analyze switch: --tsa-word: expected the tSA word(s) of the hard prompt, e.g. smiling")
    return PromptSource.hard(pipe.tokenizer, hard_text, tsa_words), inclusive


#: the switch command's own defaults (tinyworld's setting), which ``--paper`` replaces
SWITCH_DEFAULTS = {"steps": 25, "guidance": 5.0, "size": 64, "switch_step": 5, "count": "steps"}


def apply_paper_preset(args) -> None:
    """``--paper``: FairQueue's analysis setting (``switch.PAPER_SWITCH``) for every setting not
    given on the command line (one still at the command's default)."""
    from .switch import PAPER_SWITCH

    if not args.paper:
        return
    for key, value in PAPER_SWITCH.items():
        if getattr(args, key) == SWITCH_DEFAULTS[key]:
            setattr(args, key, value)


def cmd_switch(args) -> int:
    import contextlib

    import torch

    from .switch import switch_experiment, write_switch_outputs

    apply_paper_preset(args)
    pipe = _load(args)
    hard, inclusive = _sources(args, pipe)
    out = _out(args, "switch")
    # FairQueue runs its fp32 pipeline under fp16 autocast on CUDA; elsewhere fp32 as loaded
    on_cuda = args.paper and getattr(pipe, "device", torch.device("cpu")).type == "cuda"
    with torch.autocast("cuda", dtype=torch.float16) if on_cuda else contextlib.nullcontext():
        res = switch_experiment(
            pipe, hard, inclusive, args.switch_step, seeds=_csv_ints(args.seeds),
            sweep=_csv_ints(args.sweep) if args.sweep else (), steps=args.steps, guidance=args.guidance,
            height=args.size, width=args.size, count=args.count,
        )
    for w in write_switch_outputs(pipe, res, hard, inclusive, args.switch_step, out).values():
        print(f"t2ibench: wrote {w}")
    return 0


# -- pid ------------------------------------------------------------------------------------
def cmd_pid(args) -> int:
    import pandas as pd

    from .figures import bar_with_errors, heatmap_panels
    from .pid import bias_probe, pid_over_seeds, summarise

    pipe = _load(args)
    out = _out(args, "pid")
    common = dict(
        image_seeds=_csv_ints(args.seeds), estimator_seeds=_csv_ints(args.estimator_seeds), steps=args.steps,
        guidance=args.guidance, height=args.size, width=args.size, n_samples=args.samples, batch=args.batch,
        estimator=args.estimator, mode=args.drop,
    )
    written = []
    if args.bias:
        cats = [c for c in args.bias.split(",") if c]
        template = args.template or (args.prompt + " {}")
        prompts = {c: template.format(c) for c in cats}
        rows = bias_probe(pipe, args.subject, prompts, **common)
        df = pd.DataFrame(rows)
        df.to_csv(out / "bias_rows.csv", index=False)
        summ = pd.DataFrame(summarise(rows, by=("category", "prompt", "term1", "term2")))
        summ.to_csv(out / "bias_summary.csv", index=False)
        written += [out / "bias_rows.csv", out / "bias_summary.csv"]
        terms = ["redundancy", "unique1", "unique2", "synergy"]
        written.append(bar_with_errors(
            list(summ["category"]),
            {t: (list(summ[f"{t}_mean"]), list(summ[f"{t}_std"])) for t in terms},
            out / "bias_probe.png", ylabel="nats",
            title=f"bias probe: subject {args.subject!r} vs category words (mean ± sd over seeds)",
        ))
        for _, r in summ.iterrows():
            print(f"{r['category']}: R={r['redundancy_mean']:.4f}±{r['redundancy_std']:.4f} U(subject)={r['unique1_mean']:.4f} "
                  f"U(category)={r['unique2_mean']:.4f} S={r['synergy_mean']:.4f} nats (n={r['n']})")
    else:
        if not (args.term1 and args.term2):
            from ..errors import UserError

            raise UserError("analyze pid: --term1 and --term2: expected two words (phrases) of --prompt; or --bias CATEGORIES with --subject")
        rows, figs = pid_over_seeds(pipe, args.prompt, args.term1, args.term2, **common)
        pd.DataFrame(rows).to_csv(out / "pid_rows.csv", index=False)
        summ = summarise(rows)
        pd.DataFrame(summ).to_csv(out / "pid_summary.csv", index=False)
        written += [out / "pid_rows.csv", out / "pid_summary.csv"]
        for (image, est), seed in zip(figs, common["image_seeds"], strict=True):
            px = est.pixel
            panels = {
                f"i({args.term1})": px.i1, f"i({args.term2})": px.i2, "i(both)": px.i12,
                "redundancy": px.redundancy, f"unique {args.term1}": px.unique1, f"unique {args.term2}": px.unique2,
                "synergy": px.synergy,
            }
            written.append(heatmap_panels(image, {k: v.numpy() for k, v in panels.items()}, out / f"pid-seed{seed}.png",
                                          title=f"{args.prompt!r} seed {seed}: pixel-level PID (nats/pixel)", columns=4))
        s = summ[0]
        print(
            f"{args.prompt!r} ({args.term1}, {args.term2}), n={s['n']}: "
            + " ".join(f"{k}={s[f'{k}_mean']:.4f}±{s[f'{k}_std']:.4f}" for k in ("redundancy", "unique1", "unique2", "synergy", "i12"))
            + " nats"
        )
    for w in written:
        print(f"t2ibench: wrote {w}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="attention maps, prompt switching, DiffusionPID (figures + CSV)")
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    sub.required = True

    m = sub.add_parser("maps", parents=[trust_remote_code()], help="per-word cross-attention heatmaps (DAAM-style) of one prompt")
    _common(m)
    m.add_argument("--prompt", help="the prompt to map")
    m.add_argument("--world-check", type=int, default=0, metavar="N",
                   help="tinyworld: share of each object word's attention inside its object's box on N two-object "
                   "renders (renderer boxes) and N generated images (evaluator cells), vs chance")
    m.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    m.add_argument("--step-range", help="START:STOP steps to aggregate (default all)")
    m.add_argument("--boxes", help='JSON (or a file) {"word": [x0, y0, x1, y1]} in pixels: report the share of '
                   "each word's attention inside its box vs chance")
    m.add_argument("--layers", default="cross",
                   help="cross-attention layers to sum: 'cross' (all, default), a JSON mapping with blocks "
                   "(down/mid/up) and levels (0 = full latent resolution), e.g. '{\"blocks\": [\"up\"], \"levels\": [1]}', "
                   "or a JSON list of layer names (prefixes of the processor keys), e.g. '[\"up_blocks.1.attentions.0\"]'")
    m.set_defaults(func=cmd_maps)

    s = sub.add_parser("switch", parents=[trust_remote_code()], help="I2H / H2I prompt switching: grids, heatmaps, per-token statistics")
    _common(s)
    s.add_argument("--iti-gen", help="ITI-GEN tokens file (<tsa>.safetensors from `t2ibench itigen train`)")
    s.add_argument("--category", type=int, default=None,
                   help="category index of the ITI-GEN tokens (default 0; with --paper the last, the attribute present)")
    s.add_argument("--hard", help="hard prompt (default with --iti-gen: '<base prompt> <category>')")
    s.add_argument("--tsa-word", help="the tSA word(s) of the hard prompt, comma-separated (default: the category)")
    s.add_argument("--inclusive", help="a text to use as the second prompt instead of ITI-GEN tokens")
    s.add_argument("--inclusive-tsa", help="tSA word(s) of --inclusive")
    s.add_argument("--switch-step", type=int, default=5, help="switch at this step (default 5; FairQueue: UNet call 15 of 51)")
    s.add_argument("--count", default="steps", choices=["steps", "calls"],
                   help="what --switch-step counts: sampler steps (default) or UNet calls (FairQueue's analysis code)")
    s.add_argument("--paper", action="store_true",
                   help="FairQueue's analysis setting where not given: 50 steps, guidance 7.5, 512 px, switch at UNet "
                   "call 15 (--count calls), its three-word hard prompts (Smiling, High_Cheekbones, Gray_Hair, Chubby), "
                   "fp16 autocast on CUDA")
    s.add_argument("--sweep", help="also switch at these steps, comma-separated")
    s.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    s.set_defaults(func=cmd_switch)

    q = sub.add_parser("pid", parents=[trust_remote_code()], help="DiffusionPID: redundancy, uniqueness, synergy of two prompt terms")
    _common(q)
    q.add_argument("--prompt", required=True, help="the prompt (with --bias: the neutral subject prompt)")
    q.add_argument("--term1", help="first word/phrase of the prompt")
    q.add_argument("--term2", help="second word/phrase of the prompt")
    q.add_argument("--bias", help="bias probe: comma-separated category words of a sensitive attribute")
    q.add_argument("--subject", default="person", help="bias probe: the neutral subject word (default person)")
    q.add_argument("--template", help="bias probe: prompt template with {} for the category (default: '<prompt> {}')")
    q.add_argument("--seeds", default="0,1,2", help="image seeds (default 0,1,2)")
    q.add_argument("--estimator-seeds", default="0", help="estimator noise seeds per image (default 0)")
    q.add_argument("--samples", type=int, default=64, help="log-SNR/noise samples per estimate (default 64)")
    q.add_argument("--batch", type=int, default=16, help="samples per UNet batch (default 16)")
    q.add_argument("--estimator", default="orthogonal", choices=["orthogonal", "mmse"])
    q.add_argument("--drop", default="remove", choices=["remove", "mask"], help="how a term is taken out of the prompt")
    q.set_defaults(func=cmd_pid)
