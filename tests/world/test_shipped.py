"""The weights shipped in the package: load offline, generate, read renders correctly."""

import json

import pytest
import torch

from t2ibench.world import clip_dir, evaluator_dir, pipeline_available, pipeline_dir, weights_dir


def _size_mb(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def test_shipped_weights_within_budget():
    if not weights_dir().is_dir():
        pytest.skip(f"no shipped weights in {weights_dir()}")
    files = [f for f in weights_dir().rglob("*") if f.is_file()]
    assert _size_mb(weights_dir()) <= 40
    assert all(f.stat().st_size <= 20 * 2**20 for f in files)


@pytest.mark.slow
@pytest.mark.skipif(not pipeline_available(), reason=f"tinyworld pipeline weights not shipped yet in {pipeline_dir()}")
def test_shipped_pipeline_loads_offline_and_generates(monkeypatch):
    from diffusers import StableDiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline_dir()))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(["a red circle", "a headshot of a person"], num_inference_steps=3, height=64, width=64,
               guidance_scale=5.0, generator=[torch.Generator().manual_seed(i) for i in range(2)],
               output_type="np").images
    assert out.shape == (2, 64, 64, 3)
    assert (pipeline_dir() / "README.md").is_file()


@pytest.mark.skipif(not (evaluator_dir() / "model.safetensors").is_file(),
                    reason=f"tinyworld evaluator weights not shipped yet in {evaluator_dir()}")
def test_shipped_evaluator_reads_renders():
    from t2ibench.world.evaluator import load_evaluator
    from t2ibench.world.sets import heldout

    ev = load_evaluator()
    imgs, _, labels = heldout(64)
    pred = ev.predict(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    fam = sum(p == lab["family"] for p, lab in zip(pred["family"], labels, strict=True)) / len(labels)
    assert fam > 0.9


@pytest.mark.skipif(not (clip_dir() / "model.safetensors").is_file(),
                    reason=f"tiny CLIP weights not shipped yet in {clip_dir()}")
def test_shipped_clip_loads():
    from t2ibench.world.clip import load_clip

    model, tok = load_clip()
    ids = tok(["a red circle"], return_tensors="pt").input_ids
    emb = model.get_text_features(input_ids=ids)
    emb = getattr(emb, "pooler_output", emb)
    assert emb.shape[-1] == model.config.projection_dim


@pytest.mark.skipif(not pipeline_available(), reason=f"tinyworld pipeline weights not shipped yet in {pipeline_dir()}")
def test_shipped_itigen_tokens_match_the_pipeline_and_the_prompt_set():
    from t2ibench.baselines.iti_gen import SHIPPED_TINYWORLD, InclusiveTokens, tokens_path
    from t2ibench.world.evaluator import TSAS
    from t2ibench.world.prompts import fairness_meta

    width = json.loads((pipeline_dir() / "text_encoder" / "config.json").read_text())["hidden_size"]
    for tsa in TSAS:
        tok = InclusiveTokens.load(tokens_path(SHIPPED_TINYWORLD, tsa))
        assert tok.categories == fairness_meta(tsa)["categories"]
        assert tok.for_encoder("text_encoder", width).shape[-1] == width
