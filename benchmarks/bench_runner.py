"""Runner overhead: `t2ibench generate` against a bare diffusers loop, same pipeline and batches.

Both sides use the same tiny SD pipeline (built once, in this process), the same prompts,
seeds, batch size and steps, and both write PNG files; the runner also derives seeds, checks
for finished images, hashes, writes sidecars atomically and fsyncs. Rounds alternate between
the two so machine noise hits both; the figure is the ratio of images/s (median over rounds).

    python benchmarks/bench_runner.py [--images 48] [--batch 8] [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from t2ibench.runner import generate, plan
from t2ibench.suite import parse_suite
from t2ibench.tiny_models import tiny_sd_pipeline


def make_suite(n_images: int, batch: int, steps: int):
    prompts = [f"a red circle and {i} blue squares" for i in range(n_images)]
    return parse_suite(
        {
            "name": "bench",
            "model": "tiny-sd",
            "images_per_prompt": 1,
            "batch_size": batch,
            "sampler": {"scheduler": "default", "steps": steps, "guidance": 5.0, "height": 64, "width": 64},
            "prompt_sets": [{"name": "p", "dataset": "prompts", "params": {"prompts": prompts}}],
            "methods": [{"name": "sd"}],
        },
        "bench",
    )


def bare_loop(pipe, suite, out: Path) -> float:
    """The same batches through `pipe(...)`, images saved with PIL; returns seconds."""
    the_plan = plan(suite)
    s = suite.sampler
    start = time.perf_counter()
    for batch in the_plan.batches:
        images = pipe(
            prompt=[j.prompt.text for j in batch.jobs],
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            height=s.height,
            width=s.width,
            generator=[torch.Generator("cpu").manual_seed(j.seed) for j in batch.jobs],
        ).images
        for job, image in zip(batch.jobs, images, strict=True):
            image.save(out / f"{job.prompt.id}-{job.index}.png")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pipe = tiny_sd_pipeline()
    suite = make_suite(args.images, args.batch, args.steps)
    bare, runner = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(pipe, suite, Path(tmp))  # warm-up
        for r in range(args.rounds):
            d = Path(tmp) / f"bare{r}"
            d.mkdir()
            bare.append(args.images / bare_loop(pipe, suite, d))
            summary = generate(suite, Path(tmp) / f"run{r}", pipe=pipe, progress=False)
            runner.append(summary.written / summary.seconds)
    print(f"tiny SD pipeline, {args.images} images of 64x64, batch {args.batch}, {args.steps} steps, {args.rounds} rounds, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare diffusers loop : {statistics.median(bare):7.2f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"t2ibench generate   : {statistics.median(runner):7.2f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in runner)})")
    ratio = statistics.median(runner) / statistics.median(bare)
    print(f"runner / bare       : {ratio:.3f}  (overhead {100 * (1 - ratio):.1f} %; target <= 5 %)")


if __name__ == "__main__":
    main()
