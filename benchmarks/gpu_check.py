"""One command for a CUDA machine: real-size SD-1.5 and SDXL through t2ibench, every shipped method.

    python benchmarks/gpu_check.py                      # CUDA, full size (about 8 min on one H100/H200)
    python benchmarks/gpu_check.py --device cpu --small # the same code on the tiny pipelines (CI)

What it does, per model (SD-1.5 at 512 px fp16; SDXL at 1024 px bf16 and fp16; ``--small``: the
tiny SD/SDXL pipelines at 32 px, 2 steps, in fp32):

1. builds a random-init pipeline from the published configs written below (no download; full
   size is built on the device), saves it with ``save_pretrained`` and loads it back through
   t2ibench's loader (``model: DIR``);
2. runs every method of the shipped ``tinyworld-smoke`` suite (the shipped methods and their
   ablations) through ``t2ibench.runner.generate``: one warm-up batch per method (not timed;
   profiled with ``torch.profiler`` to count host-device synchronisations), then ``--batches``
   timed batches; the same timed batches through a bare diffusers loop (``pipe(...)`` then
   ``PIL.Image.save``), per prompt set;
3. prints per method: img/s, the ratio to the bare loop, the ratio to ``sd``, peak memory, and
   the host syncs per denoising step inside the UNet (attention layer) and in the whole call.

Then the tinyworld smoke suite with ``t2ibench check`` against its reference (full mode; with
``--small`` only when ``--smoke`` is given, since ``.ci/run`` already runs it), and the three
analyses (``analyze maps``, ``switch``, ``pid``) on SD-1.5 (tiny SD with ``--small``).

Host syncs: on CUDA, the CUDA runtime's ``cudaStreamSynchronize``/``cudaDeviceSynchronize``
calls; on the CPU (no such calls), the ops that would sync on CUDA (``aten::_local_scalar_dense``,
i.e. ``.item()``/``bool(tensor)``, and ``aten::nonzero``, i.e. boolean-mask indexing). "in UNet"
counts only those inside UNet calls (where the attention processors run), per denoising step.

Exit status: 0 when every part ran, 1 when any raised (each error is printed with its traceback).
Targets (control must cost little beside sampling): sd, hard-prompt, iti-gen >= 0.95 x bare; the attention-control methods
>= 0.85 x sd; 0 syncs per step in UNet. They are printed, not enforced (timings vary by machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

# -- published configs (diffusers/transformers config.json of the public checkpoints) ----------
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, act_fn="silu", norm_num_groups=32,
    norm_eps=1e-5, block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8, cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1,
)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, act_fn="silu", norm_num_groups=32,
    norm_eps=1e-5, block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, flip_sin_to_cos=True, freq_shift=0,
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, act_fn="silu",
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
              bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
                 bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                    set_alpha_to_one=False, steps_offset=1)
SDXL_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading",
                      steps_offset=1)

ALIGN_PROMPTS = [
    "a red cat and a blue dog", "a green ball on a wooden table", "a yellow car next to a black bicycle",
    "a white horse and a brown cow", "a small bird on a large tree", "a purple cup beside a silver spoon",
    "an orange book under a grey lamp", "a pink flower in a glass vase",
]
FAIR = {"id": "Colour", "prompt": "a headshot of a person", "tsa": "Colour", "categories": ["red", "blue"],
        "base_prompt": "a headshot of a person",
        "hard_prompts": ["a headshot of a person in red", "a headshot of a person in blue"]}
SYNC_RUNTIME = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"}
SYNC_OPS = {"aten::_local_scalar_dense", "aten::nonzero"}


# -- models -------------------------------------------------------------------------------------
def build_full(kind: str, device: str):
    """A random-init SD-1.5 ("sd") or SDXL ("sdxl") pipeline from the configs above, built on ``device``."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from t2ibench.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    with torch.device(device):  # the weights are initialised on the device (fast); schedulers stay outside
        if kind == "sd":
            parts = dict(vae=AutoencoderKL(**SD_VAE, sample_size=512, scaling_factor=0.18215),
                         text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)), unet=UNet2DConditionModel(**SD15_UNET))
        else:
            parts = dict(vae=AutoencoderKL(**SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
                         text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)),
                         text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG)),
                         unet=UNet2DConditionModel(**SDXL_UNET))
    if kind == "sd":
        return StableDiffusionPipeline(
            **parts, tokenizer=clip_tokenizer(), scheduler=PNDMScheduler(**SD_SCHEDULER),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    return StableDiffusionXLPipeline(
        **parts, tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(pad_token="!"),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER), force_zeros_for_empty_prompt=True,
    )


def save_model(kind: str, small: bool, device: str, root: Path) -> Path:
    out = root / f"{kind}-model"
    if small:
        from t2ibench.tiny_models import save_tiny_pipeline

        save_tiny_pipeline(kind, out)
        return out
    pipe = build_full(kind, device)
    pipe.to(torch.float16).save_pretrained(str(out), safe_serialization=True)
    del pipe
    _empty_cache()
    return out


def save_tokens(pipe_dir: Path, root: Path) -> Path:
    """Random ITI-GEN tokens ("Colour": red/blue) of the widths of the pipeline's text encoders."""
    from t2ibench.baselines.iti_gen import InclusiveTokens

    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name in ("text_encoder", "text_encoder_2"):
        cfg = pipe_dir / name / "config.json"
        if cfg.is_file():
            width = json.loads(cfg.read_text())["hidden_size"]
            tensors[name] = torch.randn(2, 3, width, generator=g) * 0.01
    if len(tensors) == 1:
        tensors = {"tokens": tensors["text_encoder"]}
    out = root / f"tokens-{pipe_dir.name}"
    InclusiveTokens("Colour", FAIR["categories"], FAIR["base_prompt"], tensors).save(out)
    return out


# -- suites ---------------------------------------------------------------------------------
def method_specs(tokens: Path) -> list[dict]:
    """Every method (and ablation) of the shipped tinyworld-smoke suite, on our tokens."""
    from t2ibench.suite import resolve_suite

    specs = []
    for m in resolve_suite("tinyworld-smoke").methods:
        d = m.model_dump(mode="json", exclude_none=True)
        if d.get("params", {}).get("tokens_dir") == "@tinyworld":
            d["params"]["tokens_dir"] = str(tokens)
        # one prompt set per timing (a method on every set, e.g. sd, is timed on each)
        specs.extend({**d, "prompt_sets": [ps]} for ps in (d.get("prompt_sets") or ["align", "fair"]))
    return specs


def make_suite(model: Path, spec: dict, fair_file: Path, *, images: int, batch: int, steps: int, size: int, seed: int):
    from t2ibench.suite import parse_suite

    return parse_suite({
        "name": "gpu-check", "model": str(model), "seed": seed, "batch_size": batch,
        "sampler": {"scheduler": "default", "steps": steps, "guidance": 5.0, "height": size, "width": size},
        "prompt_sets": [
            {"name": "align", "dataset": "prompts", "params": {"prompts": (ALIGN_PROMPTS * images)[:images]}},
            {"name": "fair", "dataset": "file", "params": {"path": str(fair_file)}, "images_per_prompt": images},
        ],
        "methods": [spec],
    }, "gpu_check")


# -- measuring ------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB RSS (process)"


class unet_marked:
    """Wrap ``pipe.unet.forward`` in a profiler range so syncs inside UNet calls can be told apart."""

    NAME = "gpu_check::unet"

    def __init__(self, pipe: Any) -> None:
        self.unet = pipe.unet

    def __enter__(self) -> None:
        forward = self.unet.forward

        def marked(*a, **k):
            with torch.profiler.record_function(self.NAME):
                return forward(*a, **k)

        self.unet.forward = marked

    def __exit__(self, *exc) -> None:
        del self.unet.forward


def count_syncs(prof: Any, device: str) -> tuple[int, int, int]:
    """(syncs inside UNet calls, syncs in total, number of UNet calls) from a profiler trace."""
    names = SYNC_RUNTIME if device.startswith("cuda") else SYNC_OPS
    events = list(prof.events())
    ranges = [(e.thread, e.time_range.start, e.time_range.end) for e in events if e.name == unet_marked.NAME]
    syncs = [e for e in events if e.name in names]
    inside = sum(1 for e in syncs if any(t == e.thread and a <= e.time_range.start <= b for t, a, b in ranges))
    return inside, len(syncs), len(ranges)


def bare_loop(pipe: Any, suite: Any, out: Path, device: str) -> tuple[float, int]:
    """The suite's batches through ``pipe(...)`` and ``PIL.Image.save``: (seconds, images)."""
    from t2ibench.runner import plan

    s = suite.sampler
    n = 0
    _sync(device)
    start = time.perf_counter()
    for batch in plan(suite).batches:
        images = pipe(
            prompt=[j.prompt.text for j in batch.jobs], num_inference_steps=s.steps, guidance_scale=s.guidance,
            height=s.height, width=s.width, generator=[torch.Generator("cpu").manual_seed(j.seed) for j in batch.jobs],
        ).images
        for job, image in zip(batch.jobs, images, strict=True):
            image.save(out / f"{job.prompt.id}-{job.index}.png")
            n += 1
    _sync(device)
    return time.perf_counter() - start, n


def check_model(kind: str, precision: str, args: Any, root: Path, report: list[str]) -> None:
    from t2ibench.models import load_pipeline
    from t2ibench.runner import generate

    small = args.small
    size = 32 if small else (512 if kind == "sd" else 1024)
    steps = args.steps or (2 if small else (20 if kind == "sd" else 10))
    batch = args.batch or (2 if small else (8 if kind == "sd" else 4))
    n_timed = batch * args.batches
    t0 = time.perf_counter()
    model = MODELS.get(kind) or save_model(kind, small, args.device, root)
    MODELS[kind] = model
    tokens = save_tokens(model, root)
    fair_file = root / "fair.jsonl"
    fair_file.write_text(json.dumps(FAIR) + "\n")
    pipe = load_pipeline(str(model), device=args.device, precision=precision)
    head = f"{kind} {'tiny' if small else 'full'} {precision} {size}px, {steps} steps, batch {batch}, {args.batches} timed batches"
    print(f"\n== {head} (built+saved+loaded in {time.perf_counter() - t0:.1f} s)", flush=True)
    common = dict(batch=batch, steps=steps, size=size)
    bare: dict[str, float] = {}
    for ps in ("align", "fair"):
        spec = {"name": "sd", "prompt_sets": [ps]}
        bare_loop(pipe, make_suite(model, spec, fair_file, images=batch, seed=1, **common), root, args.device)  # warm-up
        secs, n = bare_loop(pipe, make_suite(model, spec, fair_file, images=n_timed, seed=0, **common), root, args.device)
        bare[ps] = n / secs
    rows = []
    sd_rate: dict[str, float] = {}
    print(f"{'method':22s} {'set':5s} {'img/s':>7s} {'x bare':>7s} {'x sd':>6s} {'syncs/step UNet':>16s} {'total':>6s}  peak memory")
    for spec in method_specs(tokens):
        label = spec.get("label") or spec["name"]
        ps = spec["prompt_sets"][0]
        warm = make_suite(model, spec, fair_file, images=batch, seed=1, **common)
        timed = make_suite(model, spec, fair_file, images=n_timed, seed=0, **common)
        run_root = Path(tempfile.mkdtemp(dir=root))
        activities = [torch.profiler.ProfilerActivity.CPU]
        if args.device.startswith("cuda"):
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with unet_marked(pipe), torch.profiler.profile(activities=activities) as prof:
            generate(warm, run_root / "warm", pipe=pipe, progress=False)
        inside, total, calls = count_syncs(prof, args.device)
        _reset_peak(args.device)
        _sync(args.device)
        summary = generate(timed, run_root / "timed", pipe=pipe, progress=False)
        rate = summary.written / summary.seconds
        if spec["name"] == "sd":
            sd_rate[ps] = rate
        rel_sd = rate / sd_rate[ps] if ps in sd_rate else float("nan")
        per_step = inside / steps
        line = (f"{label:22s} {ps:5s} {rate:7.2f} {rate / bare[ps]:7.2f} {rel_sd:6.2f} {per_step:16.1f} "
                f"{total / steps:6.1f}  {_peak(args.device)}")
        print(line, flush=True)
        rows.append(line)
    report.append(f"{head}: bare loop {bare['align']:.2f} img/s (align), {bare['fair']:.2f} img/s (fair)")
    report.extend(rows)
    del pipe
    _empty_cache()


MODELS: dict[str, Path] = {}


def run_cli(*argv: Any) -> int:
    from t2ibench.cli import main

    code = main([str(a) for a in argv])
    if code:
        raise RuntimeError(f"`t2ibench {' '.join(map(str, argv))}` exited {code}")
    return code


def check_smoke(args: Any, root: Path) -> None:
    out = root / "tinyworld-smoke"
    t0 = time.perf_counter()
    run_cli("run", "tinyworld-smoke", "--out", out, "--device", args.device, "--precision", args.smoke_precision, "--quiet")
    run_cli("check", out, "--against", REPO / "tests/reference/tinyworld-smoke.json",
            "--tolerance", REPO / "tests/reference/tinyworld-smoke.tolerance.yaml")
    print(f"tinyworld smoke + check: passed in {time.perf_counter() - t0:.1f} s", flush=True)


def check_analyses(args: Any, root: Path) -> None:
    model = MODELS.get("sd") or save_model("sd", args.small, args.device, root)
    MODELS["sd"] = model
    tokens = save_tokens(model, root) / "Colour.safetensors"
    size, steps = (32, 2) if args.small else (512, 20)
    common = ["--model", model, "--device", args.device, "--steps", steps, "--size", size]
    for name, extra in (
        ("maps", ["--prompt", "a red cube and a blue ball"]),
        ("switch", ["--iti-gen", tokens, "--category", "0", "--tsa-word", "red", "--switch-step", steps // 2]),
        ("pid", ["--prompt", "a red cube and a blue ball", "--term1", "red", "--term2", "blue", "--seeds", "0",
                 "--samples", 8 if args.small else 32]),
    ):
        t0 = time.perf_counter()
        _reset_peak(args.device)
        run_cli("analyze", name, *common, "--out", root / f"analysis-{name}", *extra)
        print(f"analyze {name}: ok in {time.perf_counter() - t0:.1f} s, peak {_peak(args.device)}", flush=True)


def use_noun_chunk_stand_in() -> bool:
    """Without spaCy's English model, a crude noun-chunk stand-in (for timing only) is patched in."""
    try:
        from t2ibench.attention.text import spacy_pipeline

        spacy_pipeline()
        return False
    except Exception:
        pass
    import re

    import t2ibench.attention.text as text
    import t2ibench.baselines.attention_modulation as am
    import t2ibench.baselines.structured_diffusion as sdg

    def chunks(t: str) -> list[tuple[int, int]]:
        return [(m.start(2), m.end(2)) for m in re.finditer(r"\b(a|an|the)\s+((?:\w+\s+)?\w+)", t)]

    for module, name in ((text, "noun_phrases"), (text, "entity_groups"), (am, "entity_groups"), (sdg, "noun_phrases")):
        setattr(module, name, chunks)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny pipelines (CPU, CI)")
    ap.add_argument("--batches", type=int, default=3, help="timed batches per method (default 3)")
    ap.add_argument("--batch", type=int, help="images per batch (default: 8 SD-1.5, 4 SDXL, 2 tiny)")
    ap.add_argument("--steps", type=int, help="denoising steps (default: 20 SD-1.5, 10 SDXL, 2 tiny)")
    ap.add_argument("--smoke", action="store_true", help="with --small: also the tinyworld smoke suite + check")
    ap.add_argument("--smoke-precision", default="auto", help="precision of the smoke run (default auto)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: sd,sdxl,sdxl-fp16,smoke,analyses")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device; use --device cpu --small", file=sys.stderr)
        return 2
    if args.small:
        torch.set_num_threads(1)  # on a small shared CPU, more threads spin against each other (17x slower measured)
    skip = set(filter(None, args.skip.split(",")))
    import diffusers
    import transformers

    for lib in (diffusers, transformers):  # no loading bars or cast notices between the result lines
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    print(f"gpu_check: torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
          + (", tiny pipelines" if args.small else ", full-size random-init SD-1.5 and SDXL"))
    if use_noun_chunk_stand_in():
        print("gpu_check: spaCy model absent: noun chunks from a regex STAND-IN (timing only; not the methods' parser)")
    # full size: the precisions users run on a GPU; --small: fp32 (the CPU's fast path; the fp16 and
    # bf16 paths on the CPU are covered by tests/core/test_precisions.py)
    parts = [("sd", lambda r, rep: check_model("sd", "fp32" if args.small else "fp16", args, r, rep)),
             ("sdxl", lambda r, rep: check_model("sdxl", "fp32" if args.small else "bf16", args, r, rep))]
    if not args.small:
        parts.append(("sdxl-fp16", lambda r, rep: check_model("sdxl", "fp16", args, r, rep)))
    if not args.small or args.smoke:
        parts.append(("smoke", lambda r, rep: check_smoke(args, r)))
    parts.append(("analyses", lambda r, rep: check_analyses(args, r)))
    failed, report = [], []
    with tempfile.TemporaryDirectory(prefix="t2ibench-gpu-check-") as tmp:
        for name, part in parts:
            if name in skip:
                print(f"\n== {name}: skipped (--skip)")
                continue
            try:
                part(Path(tmp), report)
            except Exception:
                failed.append(name)
                print(f"\n== {name}: FAILED", flush=True)
                traceback.print_exc()
    print(f"\ngpu_check: {time.perf_counter() - start:.0f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all parts passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
