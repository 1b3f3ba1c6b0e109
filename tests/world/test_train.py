"""Every training stage runs a few steps from scratch (tiny configs), resumes, and the result
loads as a StableDiffusionPipeline / evaluator / CLIP offline."""

import json

import pytest
import torch

from t2ibench.world.train import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tw")
    work, out = root / "work", root / "out"
    kw = dict(work=str(work), out=str(out), batch=4, size="tiny", ckpt_every=1, log_every=1, progress=False,
              threads=1, device="cpu")
    info = {}
    for stage in ("tokenizer", "clip", "vae", "evaluator"):
        info[stage] = train(TrainConfig(stage=stage, steps=2, **kw))
    info["unet"] = train(TrainConfig(stage="unet", steps=2, n_latents=8, lr_decay_steps=1, **kw))
    info["itigen"] = train(TrainConfig(stage="itigen", steps=5, **kw))
    return work, out, kw, info


@pytest.mark.slow
def test_stages_write_weights_and_logs(trained):
    work, out, _, info = trained
    for stage in ("clip", "vae", "evaluator", "unet"):
        assert info[stage]["step"] == 2
        assert (work / stage / "ckpt.pt").is_file()
        assert "step 2/2" in (work / stage / "log.txt").read_text()
    for f in ("pipeline/model_index.json", "pipeline/unet/diffusion_pytorch_model.safetensors",
              "pipeline/vae/diffusion_pytorch_model.safetensors", "pipeline/text_encoder/model.safetensors",
              "pipeline/tokenizer/vocab.json", "pipeline/scheduler/scheduler_config.json",
              "clip/model.safetensors", "clip/preprocessor_config.json", "evaluator/model.safetensors",
              "evaluator/config.json"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "training.json").read_text())
    assert meta["unet"]["steps"] == 2 and "wall_time_s" in meta["unet"]
    assert "linear decay to 0 over the last 1 steps" in meta["unet"]["lr_schedule"]


@pytest.mark.slow
def test_itigen_stage_learns_tokens_per_face_tsa(trained):
    from t2ibench.baselines.iti_gen import InclusiveTokens, tokens_path
    from t2ibench.world.evaluator import TSAS

    work, out, _, info = trained
    assert info["itigen"]["step"] == 5
    width = json.loads((out / "pipeline" / "text_encoder" / "config.json").read_text())["hidden_size"]
    for tsa, spec in TSAS.items():
        tok = InclusiveTokens.load(tokens_path(out / "itigen", tsa))
        assert tok.categories == spec["names"] and tok.base_prompt == "a headshot of a person"
        assert tok.tokens["tokens"].shape == (len(spec["names"]), 3, width)
        assert tok.meta["n_reference"] == {name: 200 for name in spec["names"]}
    meta = json.loads((out / "training.json").read_text())["itigen"]
    assert set(meta["loss"]) == set(TSAS) and "itigen: wrote 4 token files" in (work / "itigen" / "log.txt").read_text()


@pytest.mark.slow
def test_resume_continues_from_checkpoint(trained):
    work, out, kw, _ = trained
    info = train(TrainConfig(stage="vae", steps=3, **kw))
    assert info["step"] == 3
    log = (work / "vae" / "log.txt").read_text()
    assert "resumed at step 2" in log and "step 3/3" in log
    # the UNet keeps the VAE encoder and text encoder it started with
    info = train(TrainConfig(stage="unet", steps=3, n_latents=8, **kw))
    assert info["step"] == 3 and "resumed at step 2" in (work / "unet" / "log.txt").read_text()


@pytest.mark.slow
def test_fine_tunes_start_from_the_given_models_and_replace_the_text_encoder(trained, tmp_path):
    """clip --init-from --token-loss --replace-text-encoder, then unet --init-from with the
    binding scene mix and varied captions: each starts from the given weights, and the UNet stage
    freezes the new text encoder."""
    from safetensors.torch import load_file

    _, out, kw, _ = trained
    kw = {**kw, "work": str(tmp_path / "work")}
    before = json.loads((out / "training.json").read_text())
    te_file = out / "pipeline" / "text_encoder" / "model.safetensors"
    old_te = load_file(str(te_file))
    info = train(TrainConfig(stage="clip", steps=1, lr=1e-9, init_from=str(out / "clip"), token_loss=1.0,
                             token_batch=16, replace_text_encoder=True, **kw))
    assert info["step"] == 1
    new_te = load_file(str(te_file))
    # a fine-tune at lr ~0 keeps the starting weights: fp16 round trip of the same numbers
    assert all(torch.equal(old_te[k], new_te[k]) for k in old_te)
    meta = json.loads((out / "training.json").read_text())
    assert meta["clip"] == before["clip"]  # the training from scratch keeps its record
    meta = meta["clip_fine_tune"]
    assert meta["fine_tuned_from"] == str(out / "clip") and "token_objective" in meta
    assert "tok_own=" in (tmp_path / "work" / "clip" / "log.txt").read_text()
    old_unet = load_file(str(out / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"))
    info = train(TrainConfig(stage="unet", steps=1, lr=1e-9, n_latents=10, init_from=str(out / "pipeline" / "unet"),
                             scene_mix="binding", varied_captions=1.0, **kw))
    assert info["step"] == 1
    new_unet = load_file(str(out / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.allclose(old_unet[k].float(), new_unet[k].float(), atol=1e-3) for k in old_unet)
    cache = next((tmp_path / "work" / "unet").glob("latents-10-binding-*.pt"))
    blob = torch.load(cache, weights_only=True)
    families = blob["families"]
    assert families.count("face") == 3 and sum(len(lab.get("objects", [])) == 2 for lab in blob["labels"]) >= 4
    meta = json.loads((out / "training.json").read_text())
    assert meta["unet"] == before["unet"]
    meta = meta["unet_fine_tune"]
    assert "40% two-object scenes" in meta["data"] and "shuffled order" in meta["data"]


@pytest.mark.slow
def test_pipeline_loads_offline_and_generates(trained, monkeypatch):
    from diffusers import StableDiffusionPipeline

    _, out, _, _ = trained
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = StableDiffusionPipeline.from_pretrained(str(out / "pipeline"))
    pipe.set_progress_bar_config(disable=True)
    img = pipe("a red circle", num_inference_steps=2, height=64, width=64, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert img.shape == (1, 64, 64, 3)
    # half the bytes on disk, float32 in memory with no dtype given (the CPU cannot run fp16 well)
    assert pipe.unet.dtype == torch.float32 and pipe.text_encoder.dtype == torch.float32


@pytest.mark.slow
def test_shipped_text_encoder_is_the_tiny_clip_text_tower(trained):
    """Both are stored in fp16, so the pipeline's text encoder and clip/'s text tower (which the
    ITI-GEN tokens were learned with) give the same embeddings."""
    from safetensors import safe_open
    from transformers import CLIPModel, CLIPTextModel

    _, out, _, _ = trained
    for f in ("pipeline/text_encoder/model.safetensors", "pipeline/unet/diffusion_pytorch_model.safetensors"):
        with safe_open(str(out / f), "pt") as fh:
            assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float16}, f
    te = CLIPTextModel.from_pretrained(str(out / "pipeline" / "text_encoder"))
    clip = CLIPModel.from_pretrained(str(out / "clip"), dtype=torch.float32)
    ids = torch.tensor([[49406, 320, 736, 7117, 49407]])
    with torch.no_grad():
        assert torch.equal(te(ids)[0], clip.text_model(ids)[0])


def test_min_snr_weights():
    from diffusers import DDPMScheduler

    from t2ibench.world.models import scheduler_kwargs
    from t2ibench.world.train import min_snr_weights

    a = DDPMScheduler(**scheduler_kwargs()).alphas_cumprod
    snr = a.double() / (1 - a.double())
    w = min_snr_weights(a, 5.0)
    assert torch.allclose(w[snr <= 5].double(), torch.ones(int((snr <= 5).sum()), dtype=torch.float64))
    assert torch.allclose(w[snr > 5].double(), 5 / snr[snr > 5], rtol=1e-6)
    assert w[0] < 0.01 and (w[1:] >= w[:-1]).all()  # the nearly clean steps weigh least
    assert torch.equal(min_snr_weights(a, None), torch.ones(1000))


@pytest.mark.slow
def test_evaluator_and_clip_load(trained):
    from t2ibench.world.clip import load_clip
    from t2ibench.world.evaluator import load_evaluator
    from t2ibench.world.render import render

    _, out, _, _ = trained
    ev = load_evaluator(out / "evaluator")
    pred = ev.predict([render(0).pil(), render(1).pil()])
    assert len(pred["family"]) == 2 and pred["probs"]["cell_shape"].shape == (2, 9, 5)
    assert len(ev.unbatch(pred)) == 2
    model, tok = load_clip(out / "clip")
    assert model.dtype == torch.float32
    assert tok("a red circle").input_ids[0] == 49406


def test_missing_weights_say_not_available(tmp_path):
    from t2ibench.world.evaluator import load_evaluator

    with pytest.raises(FileNotFoundError, match="^not available"):
        load_evaluator(tmp_path)


class _RunsCode:
    """Unpickling this runs code: it creates the file named ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_work_folder_checkpoint_with_a_pickled_object_is_refused_unexecuted(tmp_path, capsys):
    """A ckpt.pt planted in --work is read with weights_only=True: a clear error, no code run."""
    from t2ibench.cli import main

    marker = tmp_path / "marker"
    ckpt = tmp_path / "work" / "evaluator" / "ckpt.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state": {}, "step": 1, "elapsed": 0.0, "payload": _RunsCode(marker)}, ckpt)
    code = main(["world", "train", "--stage", "evaluator", "--work", str(tmp_path / "work"), "--out",
                 str(tmp_path / "out"), "--size", "tiny", "--steps", "2", "--batch", "2", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not marker.exists()
    assert err[-1].startswith("t2ibench: error: ") and str(ckpt) in err[-1] and "weights_only" in err[-1]
