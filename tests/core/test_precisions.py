"""Every shipped method through ``t2ibench generate`` on tiny SD and SDXL pipelines that were saved
with ``save_pretrained`` and are loaded back through the suite's ``model: DIR`` (the real
``from_pretrained`` path), in fp32, bf16 and fp16 on the CPU (``--device cpu --precision P``).

This is what a GPU user runs (with ``--device cuda``): at fp16 every module, the SDXL VAE
included, must be in the latents' dtype, or ``vae.decode`` crashes on fp16 latents. 32 px,
2 steps, one batch per method.
"""

from __future__ import annotations

import contextlib
import json
import logging
import textwrap
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from t2ibench.world import pipeline_available

from _helpers.cli import run_cli

METHODS = ["sd", "hard-prompt", "structured-diffusion", "iti-gen", "fairqueue", "attention-modulation"]
FAIR = {
    "id": "Colour", "prompt": "a headshot of a person", "tsa": "Colour", "categories": ["red", "blue"],
    "base_prompt": "a headshot of a person",
    "hard_prompts": ["a headshot of a person in red", "a headshot of a person in blue"],
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{"sd"|"sdxl": pipeline folder}, a tokens folder and a fairness prompt file."""
    from t2ibench.baselines.iti_gen import InclusiveTokens
    from t2ibench.tiny_models import save_tiny_pipeline

    root = tmp_path_factory.mktemp("saved")
    models = {kind: save_tiny_pipeline(kind, root / kind) for kind in ("sd", "sdxl")}
    g = torch.Generator().manual_seed(0)
    InclusiveTokens("Colour", ["red", "blue"], FAIR["base_prompt"], {"tokens": torch.randn(2, 3, 32, generator=g)}).save(root / "tokens")
    (root / "fair.jsonl").write_text(json.dumps(FAIR) + "\n")
    return models, root / "tokens", root / "fair.jsonl"


def suite_text(model, tokens, fair_file) -> str:
    methods = "\n".join(
        f"  - {{name: {m}, prompt_sets: [{'fair' if m in ('hard-prompt', 'iti-gen', 'fairqueue') else 'align'}]"
        + (f", params: {{tokens_dir: '{tokens}'}}" if m in ("iti-gen", "fairqueue") else "") + "}"
        for m in METHODS
    )
    return textwrap.dedent(f"""\
        name: precisions
        model: '{model}'
        seed: 0
        batch_size: 2
        sampler: {{scheduler: default, steps: 2, guidance: 5.0, height: 32, width: 32}}
        prompt_sets:
          - {{name: align, dataset: prompts, params: {{prompts: [a red cat and a blue dog]}}}}
          - {{name: fair, dataset: file, params: {{path: '{fair_file}'}}, images_per_prompt: 2}}
        methods:
        """) + methods + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_every_method_generates_from_a_saved_pipeline(kind, precision, saved, tmp_path):
    models, tokens, fair_file = saved
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text(models[kind], tokens, fair_file))
    run = tmp_path / "run"
    assert run_cli("generate", suite, "--out", run, "--device", "cpu", "--precision", precision, "--quiet") == 0
    pngs = sorted((run / "images").rglob("*.png"))
    assert len(pngs) == 3 + 3 * 2  # align: sd, structured-diffusion, attention-modulation; fair: 3 methods x 2
    for png in pngs:
        pixels = np.asarray(Image.open(png))
        assert pixels.shape == (32, 32, 3)
        assert pixels.std() > 0, f"{png} is one flat colour (NaN latents decode to black)"


def test_fp16_sdxl_keeps_its_vae_in_fp16_and_asks_the_pipeline_to_upcast(saved):
    """diffusers' mechanism: the SDXL pipeline upcasts an fp16 VAE with ``force_upcast`` for the decode."""
    from t2ibench.models import load_pipeline

    models, _, _ = saved
    pipe = load_pipeline(str(models["sdxl"]), device="cpu", precision="fp16")
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype, pipe.text_encoder_2.dtype} == {torch.float16}
    assert pipe.vae.config.force_upcast


def test_suite_vae_key_replaces_the_vae(saved, tmp_path):
    from diffusers import AutoencoderKL

    from t2ibench.models import load_pipeline
    from t2ibench.suite import load_suite

    models, tokens, fair_file = saved
    vae_dir = tmp_path / "vae"
    vae = AutoencoderKL.from_pretrained(str(models["sdxl"] / "vae"))
    vae.register_to_config(force_upcast=False)  # as an fp16-safe VAE says
    vae.save_pretrained(str(vae_dir))
    pipe = load_pipeline(str(models["sdxl"]), device="cpu", precision="fp16", vae=str(vae_dir))
    assert pipe.vae.dtype == torch.float16 and not pipe.vae.config.force_upcast
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text(models["sdxl"], tokens, fair_file).replace("seed: 0\n", f"vae: '{vae_dir}'\nseed: 0\n"))
    assert load_suite(suite).vae == str(vae_dir)
    assert run_cli("generate", suite, "--out", tmp_path / "run", "--device", "cpu", "--precision", "fp16",
                   "--methods", "sd", "--quiet") == 0
    suite.write_text(suite.read_text().replace(str(vae_dir), str(tmp_path / "missing")))
    assert run_cli("generate", suite, "--out", tmp_path / "r3", "--device", "cpu", "--quiet") == 2
    assert not (tmp_path / "r3").exists()  # reported before anything is written


def test_suite_precision_key_chooses_the_dtype_and_the_flag_overrides_it(tmp_path, monkeypatch):
    """``precision`` in the suite (fairness-sd14: fp32, as the references' ``--precision full``)
    reaches the pipeline loader; ``generate --precision`` overrides it; ``auto`` leaves the
    suite's hash as it was without the key."""
    import t2ibench.models as models
    from t2ibench.runner import generate
    from t2ibench.suite import parse_suite

    seen: list[str] = []
    real = models.load_pipeline

    def spy(name, device=None, precision="auto", vae=None):
        seen.append(precision)
        return real(name, device=device, precision=precision, vae=vae)

    monkeypatch.setattr(models, "load_pipeline", spy)
    data = {"name": "p", "model": "tiny-sd", "sampler": {"steps": 1, "height": 32, "width": 32},
            "prompt_sets": [{"name": "a", "dataset": "prompts", "params": {"prompts": ["a red cat"]}}],
            "methods": [{"name": "sd"}]}
    suite = parse_suite({**data, "precision": "bf16"}, "suite")
    generate(suite, tmp_path / "a", device="cpu", progress=False)
    generate(suite, tmp_path / "b", device="cpu", precision="fp32", progress=False)
    assert seen == ["bf16", "fp32"]
    assert parse_suite({**data, "precision": "auto"}, "suite").hash == parse_suite(data, "suite").hash != suite.hash
    with pytest.raises(Exception, match="precision"):
        parse_suite({**data, "precision": "fp8"}, "suite")


@contextlib.contextmanager
def _diffusers_messages() -> Iterator[list[str]]:
    """Every message diffusers logs while the block runs (its loggers do not propagate to root)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    diffusers_logger = logging.getLogger("diffusers")
    diffusers_logger.addHandler(handler)
    try:
        yield messages
    finally:
        diffusers_logger.removeHandler(handler)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_saved_pipeline_loads_in_its_dtype_without_a_cast(saved, precision, dtype):
    """from_pretrained loads every module in the dtype; a second cast with to() would make diffusers
    warn ("Casting directly with `to()`") on every run."""
    from t2ibench.models import load_pipeline

    with _diffusers_messages() as messages:
        pipe = load_pipeline(str(saved[0]["sd"]), device="cpu", precision=precision)
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {dtype}
    assert not [m for m in messages if "Casting directly" in m]


@pytest.mark.skipif(not pipeline_available(), reason="tinyworld pipeline weights not shipped")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_shipped_tinyworld_pipeline_loads_without_the_float32_cast_warning(precision):
    """The shipped tinyworld suite's pipeline, loaded as ``t2ibench run`` loads it (the suite's
    model, precision and vae through ``runner``'s call of ``load_pipeline``), logs no diffusers
    "should be kept in float32 ... Casting directly with `to()`" warning."""
    from t2ibench.models import load_pipeline
    from t2ibench.suite import resolve_suite

    suite = resolve_suite("tinyworld")
    with _diffusers_messages() as messages:
        pipe = load_pipeline(suite.model, device="cpu", precision=precision if precision != "auto" else suite.precision,
                             vae=suite.vae)
    assert not [m for m in messages if "kept in float32" in m or "Casting directly" in m], messages
    expected = torch.float16 if precision == "fp16" else torch.float32
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {expected}
