"""The analysis figures (maps, DiffusionPID, prompt switching) on a real (tinyworld) model, measured and printed.

    python benchmarks/bench_analysis.py [--model tinyworld] [--out DIR] [--images 8] [--seeds 0,1,2]
                                        [--samples 64] [--iti-gen TOKENS.safetensors]

1. maps: share of each object word's cross-attention mass inside its own object's box (boxes
   from the renderer's labels), on noised two-object renders, vs the share inside the other
   object's box and vs chance (box area), summed over layers and per cross-attention layer;
   plus the heatmap figure of one generated two-object prompt.
2. pid: DiffusionPID redundancy / uniqueness / synergy for a colour-shape pair and a
   face-attribute pair, mean ± sd over image seeds; the bias probe (subject "person" vs the
   smiling / eyeglasses category words).
3. switch (``--iti-gen`` tokens; on tinyworld the shipped eyeglasses tokens): H2I / I2H grids,
   CSV and plots for the ITI-GEN prompt vs its hard prompt.

With a model that is not available (no tinyworld weights) it prints "not available: <why>" and
exits 0. ``--model tiny-sd`` runs every step on random weights (mechanics only; numbers mean
nothing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def _mean_sd(xs):
    xs = [float(x) for x in xs]
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tinyworld")
    ap.add_argument("--out", default="t2ibench-analysis/bench")
    ap.add_argument("--images", type=int, default=8, help="two-object renders for the box-share measure")
    ap.add_argument("--seeds", default="0,1,2", help="image seeds for the PID spread")
    ap.add_argument("--samples", type=int, default=64, help="log-SNR samples per PID estimate")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--iti-gen", help="ITI-GEN tokens file for the switch analysis "
                    "(default with --model tinyworld: the shipped eyeglasses tokens)")
    args = ap.parse_args(argv)

    from t2ibench.errors import UserError
    from t2ibench.models import load_pipeline

    try:
        pipe = load_pipeline(args.model, device="cpu", precision="fp32")
    except UserError as exc:
        print(f"not available: {exc}")
        return 0
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    import pandas as pd

    from t2ibench.analysis.figures import heatmap_panels
    from t2ibench.analysis.maps import capture_maps
    from t2ibench.analysis.pid import bias_probe, pid_over_seeds, summarise
    from t2ibench.analysis.world_checks import (
        capture_render_maps,
        object_word_box_shares,
        token_role_box_shares,
        token_role_summary,
        word_share_summary,
    )

    # 1. maps ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    captures = capture_render_maps(pipe, args.images)
    df = pd.DataFrame(object_word_box_shares(pipe, captures=captures))
    df.to_csv(out / "maps_box_shares.csv", index=False)
    print(word_share_summary(f"maps (renders, all layers; {df['seed'].nunique()} renders)", df))
    roles = token_role_box_shares(captures)
    pd.DataFrame(roles).to_csv(out / "maps_token_roles.csv", index=False)
    print(token_role_summary(roles))
    # per layer and noise level: DAAM's sum over layers and steps can hide a layer that localises
    from t2ibench.attention import attention_layers

    per_layer = []
    for layer in [li.name for li in attention_layers(pipe.unet) if li.kind == "cross"]:
        for frac in (0.1, 0.3):
            every = pd.DataFrame(object_word_box_shares(pipe, args.images, fractions=(frac,), layers=[layer]))
            for index, sub in every.groupby("object"):
                per_layer.append({"layer": layer.removesuffix(".transformer_blocks.0.attn2.processor"), "t_over_T": frac,
                                  "object": index, "share_own": sub["share_own"].mean(), "share_other": sub["share_other"].mean(),
                                  "chance_own": sub["chance_own"].mean(),
                                  "own_gt_other": (sub["share_own"] > sub["share_other"]).mean()})
    pl = pd.DataFrame(per_layer)
    pl.to_csv(out / "maps_box_shares_per_layer.csv", index=False)
    print("maps per cross-attention layer (one noise level t/T each; words of object 1 or 2; own / other object's box / chance):")
    for r in pl.itertuples():
        print(f"  {r.layer:<28} t/T={r.t_over_T:.1f} object {r.object}: own {r.share_own:.3f}, other {r.share_other:.3f}, "
              f"chance {r.chance_own:.3f}, own > other in {r.own_gt_other:.0%}")
    try:
        from t2ibench.analysis.world_checks import generated_word_box_shares
        from t2ibench.world.evaluator import load_evaluator

        ev = load_evaluator()
        g_rows, counts = generated_word_box_shares(pipe, ev, args.images, steps=args.steps)
        g = pd.DataFrame(g_rows)
        g.to_csv(out / "maps_generated_box_shares.csv", index=False)
        print(word_share_summary(f"maps (generated, boxes = evaluator cells; {counts['objects_found']} of "
                                 f"{counts['objects_named']} named objects found)", g))
    except (ImportError, FileNotFoundError, OSError) as exc:
        print(f"maps (generated): not available: {exc}")
    tm = capture_maps(pipe, "a red circle and a blue square", 0, steps=args.steps, height=size, width=size)
    heatmap_panels(tm.image, tm.word_maps(), out / "maps_generated.png", title="a red circle and a blue square (seed 0)")
    print(f"maps: {time.perf_counter() - t0:.1f} s; figure {out / 'maps_generated.png'}")

    # 2. pid ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    common = dict(image_seeds=seeds, steps=args.steps, height=size, width=size, n_samples=args.samples, batch=16)
    summary = []
    for prompt, t1, t2 in [("a red circle", "red", "circle"),
                           ("a headshot of a smiling person with eyeglasses", "smiling", "eyeglasses")]:
        r, figs = pid_over_seeds(pipe, prompt, t1, t2, **common)
        s = summarise(r)[0]
        summary.append(s)
        image, est = figs[0]
        px = est.pixel
        heatmap_panels(image, {"R": px.redundancy.numpy(), f"U {t1}": px.unique1.numpy(), f"U {t2}": px.unique2.numpy(),
                               "S": px.synergy.numpy()}, out / f"pid_{t1}_{t2}.png", title=f"{prompt} (seed {seeds[0]})")
        print(f"pid {prompt!r} ({t1}, {t2}), {s['n']} seeds, {args.samples} samples: "
              + ", ".join(f"{k} {s[f'{k}_mean']:.3f} ± {s[f'{k}_std']:.3f}" for k in ("redundancy", "unique1", "unique2", "synergy", "i12"))
              + " nats")
    bias = bias_probe(pipe, "person", {"smiling": "a headshot of a smiling person",
                                       "eyeglasses": "a headshot of a person with eyeglasses"}, **common)
    for s in summarise(bias, by=("category",)):
        print(f"bias probe person vs {s['category']!r}: R {s['redundancy_mean']:.3f} ± {s['redundancy_std']:.3f} nats "
              f"(U person {s['unique1_mean']:.3f}, U word {s['unique2_mean']:.3f})")
    pd.DataFrame(summary).to_csv(out / "pid_summary.csv", index=False)
    pd.DataFrame(bias).to_csv(out / "bias_probe.csv", index=False)
    print(f"pid: {time.perf_counter() - t0:.1f} s")

    # 3. switch -------------------------------------------------------------------------------
    if not args.iti_gen and args.model == "tinyworld":
        from t2ibench.baselines.iti_gen import SHIPPED_TINYWORLD, tokens_path

        shipped = tokens_path(SHIPPED_TINYWORLD, "eyeglasses")
        args.iti_gen = str(shipped) if shipped.is_file() else None
    if args.iti_gen:
        from t2ibench.analysis.cli import cmd_switch

        ns = argparse.Namespace(model=args.model, device="cpu", scheduler="default", steps=args.steps, guidance=5.0,
                                size=size, out=str(out / "switch"), iti_gen=args.iti_gen, category=1, hard=None,
                                tsa_word=None, inclusive=None, inclusive_tsa=None, switch_step=max(1, args.steps * 3 // 10),
                                sweep=None, seeds="0,1")
        cmd_switch(ns)
    else:
        print("switch: skipped (give --iti-gen TOKENS.safetensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
