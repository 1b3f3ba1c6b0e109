"""Every registered method runs on the tiny SD and SDXL pipelines through the Python API; CLI hook."""

from __future__ import annotations

import argparse

import pytest

from t2ibench.errors import UserError
from t2ibench.registry import METHODS

from _helpers.methods import SAMPLER, fair_jobs, reference_tensors, text_jobs, tiny_clip

ALIGN = ["a red cat and a blue dog", "a green ball on a wooden table"]


@pytest.mark.parametrize("name", ["sd", "hard-prompt", "structured-diffusion", "iti-gen", "fairqueue", "attention-modulation"])
def test_method_runs(name, pipe, trained_tokens):
    out, _, _, _ = trained_tokens
    cls = METHODS.get(name)
    fair = name in ("hard-prompt", "iti-gen", "fairqueue")
    params = {"tokens_dir": str(out)} if name in ("iti-gen", "fairqueue") else {}
    jobs = fair_jobs(2, name) if fair else text_jobs(ALIGN, name)
    before = dict(pipe.unet.attn_processors)
    images = cls.build(params).generate(pipe, jobs, SAMPLER)
    assert len(images) == 2 and images[0].image.size == (64, 64)
    assert pipe.unet.attn_processors == before  # left as found
    if fair:
        assert [im.meta["category"] for im in images] == ["red", "blue"]
        assert [im.meta["category_index"] for im in images] == [0, 1]


def test_hard_prompt_texts():
    m = METHODS.get("hard-prompt").build({})
    assert [m.prompt_text(j) for j in fair_jobs(3)] == [
        "a headshot of a person in red", "a headshot of a person in blue", "a headshot of a person in red"]
    with pytest.raises(UserError):
        m.prompt_text(text_jobs(["a cat"])[0])


def test_bad_parameters_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        METHODS.get("fairqueue").build({"switch": 2.0})
    with pytest.raises(UserError):
        METHODS.get("attention-modulation").build({"tau": 0})
    with pytest.raises(UserError):
        METHODS.get("iti-gen").build({"tokens_dir": str(tmp_path)}).tokens_for(fair_jobs(1)[0])


def test_itigen_train_cli(tmp_path):
    from PIL import Image

    from t2ibench.baselines.iti_gen import InclusiveTokens, add_commands

    clip_dir = tmp_path / "clip"
    tiny_clip().save_pretrained(str(clip_dir))
    args = []
    for name, x in reference_tensors(4).items():
        folder = tmp_path / name
        folder.mkdir()
        for i in range(4):
            arr = ((x[i] * 0.27 + 0.46).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(folder / f"{i}.png")
        args += ["--category", f"{name}={folder}"]
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["itigen", "train", "--clip", str(clip_dir), "--tsa", "Colour", "--out", str(tmp_path / "tok"),
                            "--epochs", "1", "--steps-per-epoch", "2", *args])
    assert ns.func(ns) == 0
    tok = InclusiveTokens.load(tmp_path / "tok" / "Colour.safetensors")
    assert tok.categories == ["red", "blue"] and tok.tokens["tokens"].shape == (2, 3, 32)
