"""Per-image generation time of each method relative to ``sd`` on the same pipeline, in one run.

    . /work/venv/bin/activate && python benchmarks/bench_methods.py [--pipeline tiny-sd|tiny-sdxl|DIR]
        [--size 64] [--steps 10] [--batch 2] [--repeats 5] [--threads 1]

Variants run in interleaved rounds (every variant once per round, in a rotated order,
``--repeats`` rounds) so machine load drifts hit all alike. Two clocks: the process CPU time
(with one torch thread, what the generation itself costs; robust when other processes share
the cores) and the wall clock. Ratios use each variant's fastest round and, in brackets, the
median round. Targets (a method should cost little over plain sampling): ≤ 1.05
temperature, queuing, amplification, reweighting; ≤ 1.15 masking and map capture. For
reference, ``all-layers-eager`` installs diffusers' eager ``AttnProcessor`` on every layer
(what Prompt-to-Prompt / Attend-and-Excite style attention stores do). ITI-GEN tokens are
random here (timing does not depend on what they learned).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from t2ibench.attention import ControlledMethod, CrossAttentionMaps
from t2ibench.baselines.iti_gen import InclusiveTokens
from t2ibench.method import Method
from t2ibench.registry import METHODS
from t2ibench.types import ImageJob, PromptItem, SamplerConfig

ALIGN = ["a red cat and a blue dog on a wooden table", "a green ball next to a small yellow car"]
FAIR = PromptItem("Smiling", "a headshot of a person", {
    "tsa": "Smiling", "categories": ["not smiling", "smiling"], "base_prompt": "a headshot of a person",
    "hard_prompts": ["a headshot of a person not smiling", "a headshot of a person smiling"],
})


class MapCapture(ControlledMethod):
    """The plain pipeline with ``CrossAttentionMaps`` on every cross-attention layer, every step."""

    name = "map-capture"

    def __init__(self) -> None:
        pass

    def controls(self, pipe, jobs, sampler):
        self.maps = CrossAttentionMaps(layers="cross")
        return [self.maps]


class AllLayersEager(Method):
    """Reference: diffusers' eager ``AttnProcessor`` (explicit probabilities) on every layer."""

    name = "all-layers-eager"

    def __init__(self) -> None:
        pass

    def attention_processors(self, pipe, jobs, sampler):
        from diffusers.models.attention_processor import AttnProcessor

        return {name: AttnProcessor() for name in pipe.unet.attn_processors}


def variants(tokens_dir: str):
    fq = {"tokens_dir": tokens_dir}
    am = {"temperature": False, "masking": False, "reweighting": False}
    return [
        # label, method class, params, prompts ("align"|"fair"), target
        ("sd", METHODS.get("sd"), {}, "align", None),
        ("temperature", METHODS.get("attention-modulation"), {**am, "temperature": True}, "align", 1.05),
        ("queuing", METHODS.get("fairqueue"), {**fq, "amplify": False}, "fair", 1.05),
        ("amplification", METHODS.get("fairqueue"), {**fq, "queue": False}, "fair", 1.05),
        ("reweighting", METHODS.get("attention-modulation"), {**am, "reweighting": True}, "align", 1.05),
        ("masking", METHODS.get("attention-modulation"), {**am, "masking": True}, "align", 1.15),
        ("masking (all steps)", METHODS.get("attention-modulation"), {**am, "masking": True, "mask_steps": [0, 1]}, "align", 1.15),
        ("map capture (all cross layers, all steps)", MapCapture, {}, "align", 1.15),
        ("attention-modulation (all three)", METHODS.get("attention-modulation"), {}, "align", None),
        ("fairqueue (PQ + AA)", METHODS.get("fairqueue"), fq, "fair", None),
        ("iti-gen", METHODS.get("iti-gen"), fq, "fair", None),
        ("hard-prompt", METHODS.get("hard-prompt"), {}, "fair", None),
        ("structured-diffusion", METHODS.get("structured-diffusion"), {}, "align", None),
        ("all-layers-eager (reference)", AllLayersEager, {}, "align", None),
    ]


def load_pipe(spec: str):
    from t2ibench import testing

    if spec == "tiny-sd":
        return testing.tiny_sd_pipeline()
    if spec == "tiny-sdxl":
        return testing.tiny_sdxl_pipeline()
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(spec, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", default="tiny-sd")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = load_pipe(args.pipeline)
    sampler = SamplerConfig(steps=args.steps, guidance=6.0, height=args.size, width=args.size)
    tmp = tempfile.mkdtemp(prefix="bench-tokens-")
    widths = {n: getattr(pipe, n).get_input_embeddings().embedding_dim for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None}
    InclusiveTokens("Smiling", ["not smiling", "smiling"], "a headshot of a person",
                    {n: torch.randn(2, 3, w) * 0.02 for n, w in widths.items()}).save(tmp)
    jobs = {
        "align": [ImageJob("b", "align", PromptItem(f"p{i}", ALIGN[i % 2]), 0, i) for i in range(args.batch)],
        "fair": [ImageJob("b", "fair", FAIR, i, i) for i in range(args.batch)],
    }
    table = variants(tmp)
    methods = [(label, cls.build(params), kind, target) for label, cls, params, kind, target in table]
    with torch.inference_mode():
        methods[0][1].generate(pipe, jobs["align"], SamplerConfig(steps=2, height=args.size, width=args.size))  # warm-up
        cpu: dict[str, list[float]] = {label: [] for label, *_ in methods}
        wall: dict[str, list[float]] = {label: [] for label, *_ in methods}
        for r in range(args.repeats):
            order = methods[r % len(methods):] + methods[: r % len(methods)]
            for label, method, kind, _ in order:
                c0, t0 = time.process_time(), time.perf_counter()
                method.generate(pipe, jobs[kind], sampler)
                cpu[label].append((time.process_time() - c0) / args.batch)
                wall[label].append((time.perf_counter() - t0) / args.batch)
            print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    print(f"pipeline {args.pipeline}, {args.size}x{args.size} px, {args.steps} steps, batch {args.batch}, "
          f"{args.repeats} rounds, torch threads {args.threads}")
    print()
    print("| method | CPU s / image | ratio to sd, CPU: fastest [median] | ratio to sd, wall: fastest [median] | target (CPU, fastest) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for label, _, _, target in methods:
        c, w = cpu[label], wall[label]
        rc = min(c) / min(cpu["sd"])
        rc_med = statistics.median(c) / statistics.median(cpu["sd"])
        rw, rw_med = min(w) / min(wall["sd"]), statistics.median(w) / statistics.median(wall["sd"])
        tgt = "" if target is None else f"≤ {target:.2f} {'ok' if rc <= target else 'MISSED'}"
        print(f"| {label} | {min(c):.3f} | {rc:.3f} [{rc_med:.3f}] | {rw:.3f} [{rw_med:.3f}] | {tgt} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
