"""tinyworld figures on demand: renderer throughput, evaluator/pipeline speed on this machine.

    python benchmarks/bench_world.py [--renders 2000] [--pipeline]

Prints renders/s (single process), evaluator images/s, and with --pipeline the seconds per
batch of 8 images at 25 PNDM steps with guidance 5 (shipped weights).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--renders", type=int, default=2000)
    ap.add_argument("--pipeline", action="store_true")
    args = ap.parse_args()
    from t2ibench.world.render import render

    t = time.perf_counter()
    for s in range(args.renders):
        render(s)
    dt = time.perf_counter() - t
    print(f"renderer: {args.renders / dt:.0f} renders/s ({args.renders} renders, 1 process)")
    try:
        from t2ibench.world.evaluator import load_evaluator
        from t2ibench.world.sets import heldout

        ev = load_evaluator()
        imgs, _, _ = heldout(512)
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
        t = time.perf_counter()
        ev.predict(x)
        print(f"evaluator: {512 / (time.perf_counter() - t):.0f} images/s")
    except FileNotFoundError as exc:
        print(f"evaluator: {exc}")
    if args.pipeline:
        from t2ibench.models import load_pipeline
        from t2ibench.world import pipeline_available, pipeline_dir
        from t2ibench.world.evaluate import sample_images

        if not pipeline_available():
            print(f"pipeline: not available: no weights in {pipeline_dir()}")
            return
        pipe = load_pipeline(str(pipeline_dir()), device="cpu", precision="fp32")
        t = time.perf_counter()
        sample_images(pipe, ["a red circle"] * 8, list(range(8)), 25, 5.0)
        print(f"pipeline: {time.perf_counter() - t:.2f} s per 8 images (25 steps, guidance 5)")


if __name__ == "__main__":
    main()
