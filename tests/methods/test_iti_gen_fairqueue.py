"""ITI-GEN training and injection; FairQueue prompt queuing and amplification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from t2ibench.attention import Amplify
from t2ibench.attention.steps import sampler_steps
from t2ibench.baselines.fairqueue import FairQueue, switch_step
from t2ibench.baselines.iti_gen import InclusiveTokens, ItiGen, encode_base, iti_gen_losses
from t2ibench.registry import METHODS
from t2ibench.tokenizer import clip_tokenizer

from _helpers.methods import SAMPLER, fair_jobs, unet_inputs_recorder


def test_iti_gen_loss_decreases_and_tokens_separate_categories(trained_tokens):
    out, result, refs, clip = trained_tokens
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 50
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    tokens = result.tokens.tokens["tokens"]
    with torch.no_grad():
        img = {c: F.normalize(clip.get_image_features(pixel_values=x).pooler_output, dim=-1) for c, x in refs.items()}
        means = torch.stack([img["red"].mean(0), img["blue"].mean(0)])
        direction, semantic, t = iti_gen_losses(clip, clip_tokenizer(), tokens, means, "a headshot of a person")
        # the learned prompt directions align with the image directions ...
        assert float(direction) < 0.2
        # ... and rank every red reference above every blue one along t_red − t_blue (AUC = 1)
        axis = t[0] - t[1]
        red, blue = img["red"] @ axis, img["blue"] @ axis
        assert float(red.min()) > float(blue.max())
        # untrained (random) tokens do not do that
        rand = torch.randn_like(tokens) * tokens.std()
        d0, _, _ = iti_gen_losses(clip, clip_tokenizer(), rand, means, "a headshot of a person")
        assert float(d0) > float(direction) + 0.3


def test_tokens_save_load_roundtrip(trained_tokens):
    out, result, _, _ = trained_tokens
    loaded = InclusiveTokens.load(out / "Colour.safetensors")
    assert loaded.categories == ["red", "blue"] and loaded.n_tokens == 3
    assert loaded.base_prompt == "a headshot of a person"
    torch.testing.assert_close(loaded.tokens["tokens"], result.tokens.tokens["tokens"])
    assert (out / "Colour.json").is_file()


def test_inclusive_tokens_sit_at_end_of_text(pipe, trained_tokens):
    out, _, _, _ = trained_tokens
    m = ItiGen.build({"tokens_dir": str(out)})
    jobs = fair_jobs(2)
    embeds, positions = m.inclusive_embeds(pipe, jobs)
    base = encode_base(pipe, ["a headshot of a person"], "reference").prompt_embeds[0]
    eos = len(pipe.tokenizer("a headshot of a person")["input_ids"]) - 1
    assert positions == [[eos, eos + 1, eos + 2]] * 2
    # causal text encoder: everything before the inserted tokens is the base prompt's
    for row in embeds.prompt_embeds:
        torch.testing.assert_close(row[:eos], base[:eos])
    # the two categories differ from the inserted tokens on
    assert not torch.allclose(embeds.prompt_embeds[0, eos:], embeds.prompt_embeds[1, eos:])
    if embeds.pooled is not None:
        assert not torch.allclose(embeds.pooled[0], embeds.pooled[1])


def test_prompt_queuing_switches_at_the_configured_step(pipe, trained_tokens):
    out, _, _, _ = trained_tokens
    m = METHODS.get("fairqueue").build({"tokens_dir": str(out), "switch": 0.4, "amplify": False})
    jobs = fair_jobs(2)
    s = switch_step(0.4, SAMPLER.steps)
    assert s == 2
    inclusive, _ = m.inclusive_embeds(pipe, jobs)
    base = encode_base(pipe, ["a headshot of a person"] * 2, "reference")
    calls, handle = unet_inputs_recorder(pipe)
    try:
        m.generate(pipe, jobs, SAMPLER)
    finally:
        handle.remove()
    assert len(calls) >= SAMPLER.steps
    steps_of_call = sampler_steps(pipe.scheduler.timesteps)  # PNDM: two calls in step 0
    assert len(steps_of_call) == len(calls)
    for call, (ehs, text_embeds) in enumerate(calls):
        step = steps_of_call[call]
        cond = ehs[2:]  # CFG batch: [uncond; cond]
        expected = base if step < s else inclusive
        torch.testing.assert_close(cond, expected.prompt_embeds)
        if text_embeds is not None:
            torch.testing.assert_close(text_embeds[2:], expected.pooled)


def test_amplification_only_while_inclusive_prompt_active(sd_pipe, trained_tokens):
    out, _, _, _ = trained_tokens
    m = FairQueue.build({"tokens_dir": str(out), "switch": 0.4, "factor": 7.0})
    jobs = fair_jobs(2)
    m.pipeline_kwargs(sd_pipe, jobs, ["x", "x"], SAMPLER)
    (amp,) = m.controls(sd_pipe, jobs, SAMPLER)
    assert isinstance(amp, Amplify) and amp.factor == 7.0
    eos = len(sd_pipe.tokenizer("a headshot of a person")["input_ids"]) - 1
    assert amp.positions == [[eos + 3]] * 2  # the reference's --st [9]: the position after the tokens
    assert [s for s in range(6) if amp.window.contains(s, 5)] == [2, 3, 4, 5]
    m2 = FairQueue.build({"tokens_dir": str(out), "queue": False})
    m2.pipeline_kwargs(sd_pipe, jobs, ["x", "x"], SAMPLER)
    (amp2,) = m2.controls(sd_pipe, jobs, SAMPLER)
    assert amp2.window.contains(0, 5)


@pytest.mark.slow
def test_fairqueue_with_both_off_is_iti_gen(pipe, trained_tokens):
    out, _, _, _ = trained_tokens
    jobs = fair_jobs(2)
    a = ItiGen.build({"tokens_dir": str(out)}).generate(pipe, jobs, SAMPLER)
    b = FairQueue.build({"tokens_dir": str(out), "queue": False, "amplify": False}).generate(pipe, jobs, SAMPLER)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]
    assert [x.meta["category"] for x in a] == ["red", "blue"]
    c = FairQueue.build({"tokens_dir": str(out)}).generate(pipe, jobs, SAMPLER)
    assert c[0].image.tobytes() != a[0].image.tobytes()
