"""Scorer benchmarks: FID memory vs number of images, and images/s next to torchmetrics used directly.

Run: ``. /work/venv/bin/activate && python benchmarks/bench_metrics.py [--quick]``

1. FID peak memory (max RSS of a fresh process, minus its RSS after imports) while streaming
   N random 2048-d feature vectors through :class:`FrechetDistance` (float64 sums) and computing
   the distance, for N = 1k and 20k; beside it, what keeping the features would take (N·d·8 bytes).
2. Images/s on the same data, ours vs torchmetrics:
   - FID: ``FrechetDistance.update`` vs ``torchmetrics FrechetInceptionDistance(feature=same net)``;
   - CLIP Score: ``t2ibench CLIPScore`` (transformers backend) vs ``torchmetrics CLIPScore`` with
     the same random CLIPModel and processor (torchmetrics needs a 3-line shim on transformers 5:
     ``get_*_features`` return a ModelOutput there).
   Timings: one torch thread, the two implementations alternating, median of repeats of the CPU
   time of this process (wall-clock images/s printed beside it; it is noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fid_memory_child(n: int, d: int) -> None:
    import torch

    from t2ibench.metrics.frechet import FrechetDistance

    class Dummy(torch.nn.Module):
        num_features = d
        name = "random"

    m = FrechetDistance(Dummy())
    g = torch.Generator().manual_seed(0)
    base = _rss_mb()
    t0 = time.perf_counter()
    for real in (True, False):
        for i in range(0, n, 500):
            m.update_features(torch.randn(min(500, n - i), d, generator=g), real=real)
    value = float(m.compute())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "d": d, "base_mb": base, "peak_mb": peak, "seconds": time.perf_counter() - t0, "fid": value}))


def fid_memory(sizes=(1000, 20000), d=2048) -> list[dict]:
    out = []
    for n in sizes:
        res = subprocess.run([sys.executable, __file__, "--fid-memory-child", str(n), str(d)], capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def _median_rate(fn, n_images: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def _interleaved(fns: dict, n_images: int, repeats: int) -> dict[str, float]:
    """Images/s of each implementation: CPU time of this process (robust to other processes on a
    shared machine), the order alternating every repeat, median over repeats; wall-clock too."""
    cpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    names = list(fns)
    for rep in range(repeats):
        for k in (names if rep % 2 == 0 else names[::-1]):
            c0, w0 = time.process_time(), time.perf_counter()
            fns[k]()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    out = {k: n_images / statistics.median(v) for k, v in cpu.items()}
    out.update({f"{k} wall": n_images / statistics.median(v) for k, v in wall.items()})
    return out


def bench_fid(n_images: int, repeats: int) -> dict[str, float]:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    from t2ibench.metrics.frechet import FrechetDistance

    torch.manual_seed(0)

    class ConvFeatures(torch.nn.Module):
        num_features = 256
        name = "random conv net"

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.ReLU(),
                torch.nn.Conv2d(64, 256, 3, 2, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

        @torch.inference_mode()
        def forward(self, x):
            return self.net(x)

    net = ConvFeatures().eval()
    imgs = torch.rand(n_images, 3, 64, 64)
    batches = imgs.split(32)

    def ours():
        m = FrechetDistance(net)
        for b in batches:
            m.update(b, real=True)
            m.update(b, real=False)

    def theirs():
        m = FrechetInceptionDistance(feature=net, normalize=True)
        for b in batches:
            m.update(b, real=True)
            m.update(b, real=False)

    return _interleaved({"t2ibench": ours, "torchmetrics": theirs}, 2 * n_images, repeats)


def bench_clip(n_images: int, repeats: int) -> dict[str, float]:
    import torch
    from torchmetrics.multimodal import CLIPScore as TMCLIPScore
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from t2ibench.metrics.clip_score import CLIPScore, HFClipBackend
    from t2ibench.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    text = CLIPTextConfig(vocab_size=49408, hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                          max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=256)
    vision = CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                              image_size=224, patch_size=32, projection_dim=256)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=256)).eval()
    tok = clip_tokenizer()
    proc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    rng = np.random.default_rng(0)
    from PIL import Image

    arrays = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n_images)]
    pils = [Image.fromarray(a) for a in arrays]
    tensors = [torch.from_numpy(a).permute(2, 0, 1) for a in arrays]
    captions = [f"a photo of {i} red circles and a blue square at night" for i in range(n_images)]
    backend = HFClipBackend(model, tok, proc, "random-clip")

    class Shim(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m, self.config = m, m.config

        def get_image_features(self, *a, **k):
            return self.m.get_image_features(*a, **k).pooler_output

        def get_text_features(self, *a, **k):
            return self.m.get_text_features(*a, **k).pooler_output

    processor = CLIPProcessor(image_processor=proc, tokenizer=tok)
    shim = Shim(model)
    bs = 16

    def ours():
        m = CLIPScore(backend)
        with torch.inference_mode():
            for i in range(0, n_images, bs):
                m.update(pils[i : i + bs], captions[i : i + bs])
        return float(m.compute())

    def theirs():
        m = TMCLIPScore(model_name_or_path=lambda: (shim, processor))
        with torch.inference_mode():
            for i in range(0, n_images, bs):
                m.update(tensors[i : i + bs], captions[i : i + bs])
        return float(m.compute())

    assert abs(ours() - theirs()) < 1e-3 * max(1.0, abs(theirs())), "implementations disagree"
    return _interleaved({"t2ibench": ours, "torchmetrics": theirs}, n_images, repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fid-memory-child", nargs=2, type=int, metavar=("N", "D"))
    args = ap.parse_args()
    if args.fid_memory_child:
        fid_memory_child(*args.fid_memory_child)
        return
    import torch

    torch.set_num_threads(1)  # one thread: stable figures on a shared machine
    print("== FID memory: streaming float64 sums, d = 2048 (fresh process each) ==")
    for r in fid_memory():
        naive = 2 * r["n"] * r["d"] * 8 / 2**20
        print(f"N = {r['n']:>6} per set: peak RSS over baseline {r['peak_mb'] - r['base_mb']:7.1f} MB "
              f"(peak {r['peak_mb']:.0f} MB, baseline {r['base_mb']:.0f} MB); keeping features would need "
              f"{naive:7.1f} MB; {r['seconds']:.1f} s")
    reps = 3 if args.quick else 5
    print("\n== images/s (CPU time, 1 thread), same data, interleaved, median of repeats ==")
    fid = bench_fid(256 if args.quick else 512, reps)
    print(f"FID (random conv net, 64x64, batches of 32):  t2ibench {fid['t2ibench']:8.1f}/s  torchmetrics {fid['torchmetrics']:8.1f}/s  "
          f"ratio {fid['t2ibench'] / fid['torchmetrics']:.3f}   (wall: {fid['t2ibench wall']:.1f}/s vs {fid['torchmetrics wall']:.1f}/s)")
    clip = bench_clip(64 if args.quick else 128, reps)
    print(f"CLIP Score (random CLIP 256-wide, 224px, batches of 16): t2ibench {clip['t2ibench']:8.1f}/s  torchmetrics {clip['torchmetrics']:8.1f}/s  "
          f"ratio {clip['t2ibench'] / clip['torchmetrics']:.3f}   (wall: {clip['t2ibench wall']:.1f}/s vs {clip['torchmetrics wall']:.1f}/s)")


if __name__ == "__main__":
    main()
