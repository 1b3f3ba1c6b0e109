"""Structured Diffusion's value sequences and Attention Modulation's parsing, curves, identity."""

from __future__ import annotations

import pytest
import torch

from t2ibench.attention import AttentionController, ValueMix
from t2ibench.attention.text import encode_prompts
from t2ibench.baselines.attention_modulation import AttentionModulation, prompt_groups
from t2ibench.baselines.sd import PlainPipeline
from t2ibench.baselines.structured_diffusion import StructuredDiffusion

from _helpers.methods import SAMPLER, cross_layer, text_jobs

TEXT = "a red cat and a blue dog"


def test_value_sequences_align_to_token_spans(pipe):
    m = StructuredDiffusion.build({})
    m.pipeline_kwargs(pipe, text_jobs([TEXT]), [TEXT], SAMPLER)
    full = encode_prompts(pipe, [TEXT]).prompt_embeds[0]
    seqs = m.last_value_sequences[0]
    assert len(seqs) == 3  # full prompt + "a red cat" + "a blue dog"
    torch.testing.assert_close(seqs[0], full)
    # tokens: 0 <sot>, 1 a, 2 red, 3 cat, 4 and, 5 a, 6 blue, 7 dog, 8 <eot>
    for seq, phrase, span in ((seqs[1], "a red cat", (1, 4)), (seqs[2], "a blue dog", (5, 8))):
        alone = encode_prompts(pipe, [phrase]).prompt_embeds[0]
        a, b = span
        torch.testing.assert_close(seq[a:b], alone[1 : 1 + b - a])
        outside = torch.ones(seq.shape[0], dtype=torch.bool)
        outside[a:b] = False
        torch.testing.assert_close(seq[outside], full[outside])
        if a > 1:  # a phrase at the start is a prefix: the causal encoder gives it the same embeddings
            assert not torch.allclose(seq[a:b], full[a:b])


@torch.no_grad()
def test_value_mix_is_mean_of_outputs_over_value_sequences(pipe):
    name, attn = cross_layer(pipe)
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(4, 64, attn.to_q.in_features, generator=g)  # CFG batch: 2 uncond + 2 cond
    ehs = torch.randn(4, 77, attn.to_k.in_features, generator=g)
    seqs = [ehs[2:], torch.randn(2, 77, ehs.shape[-1], generator=g), torch.randn(2, 77, ehs.shape[-1], generator=g)]
    ctl = AttentionController(pipe, [ValueMix(torch.stack(seqs).mean(0), layers=[name])])
    ctl.begin(10, 64, 64, cfg=True)
    with ctl.installed():
        out = attn(hs, encoder_hidden_states=ehs)
    plain = attn(hs, encoder_hidden_states=ehs)
    torch.testing.assert_close(out[:2], plain[:2])  # unconditional rows untouched

    def manual(values_from):
        h = attn.heads
        q = attn.to_q(hs[2:]).view(2, -1, h, attn.to_q.out_features // h).transpose(1, 2)
        k = attn.to_k(ehs[2:]).view(2, -1, h, q.shape[-1]).transpose(1, 2)
        v = attn.to_v(values_from).view(2, -1, h, q.shape[-1]).transpose(1, 2)
        p = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
        return (p @ v).transpose(1, 2).reshape(2, 64, -1)

    expected = attn.to_out[0](torch.stack([manual(s) for s in seqs]).mean(0))
    torch.testing.assert_close(out[2:], expected, rtol=1e-4, atol=1e-5)


def test_structured_diffusion_changes_images(sd_pipe):
    jobs = text_jobs([TEXT])
    a = PlainPipeline.build({}).generate(sd_pipe, jobs, SAMPLER)
    b = StructuredDiffusion.build({}).generate(sd_pipe, jobs, SAMPLER)
    assert b[0].meta["noun_phrases"] == ["a red cat", "a blue dog"]
    assert a[0].image.tobytes() != b[0].image.tobytes()


def test_entity_groups_and_global_tokens(sd_pipe):
    groups, words = prompt_groups(sd_pipe.tokenizer, "a red cat sitting on the wooden table")
    # 1 a, 2 red, 3 cat, 4 sitting, 5 on, 6 the, 7 wooden, 8 table
    assert groups == [[2, 3], [7, 8]]
    assert words == [1, 4, 5, 6]


def test_reweighting_curves(sd_pipe):
    m = AttentionModulation.build({"temperature": False, "masking": False})
    (rw,) = m.controls(sd_pipe, text_jobs([TEXT]), SAMPLER)

    class Call:
        def __init__(self, step):
            self.step, self.num_steps = step, 5

    w0, w_end = rw.weights(Call(0)), rw.weights(Call(4))
    # 2 red 3 cat / 6 blue 7 dog are instance tokens; 1 a, 4 and, 5 a global; 0 and 8.. stay 1
    assert torch.allclose(w0[0, [1, 4, 5]], torch.tensor(1.5)) and torch.allclose(w_end[0, [1, 4, 5]], torch.tensor(1.0))
    assert torch.allclose(w0[0, [2, 3, 6, 7]], torch.tensor(1.0)) and torch.allclose(w_end[0, [2, 3, 6, 7]], torch.tensor(1.5))
    assert torch.all(w0[0, [0, 8, 9, 76]] == 1) and torch.all(w_end[0, [0, 8, 9, 76]] == 1)
    mid = rw.weights(Call(2))[0, 1]
    assert 1.0 < float(mid) < 1.5


@pytest.mark.slow
def test_all_controls_off_is_plain_pipeline_byte_for_byte(pipe):
    jobs = text_jobs([TEXT, "a green ball on a table"])
    plain = PlainPipeline.build({}).generate(pipe, jobs, SAMPLER)
    off = AttentionModulation.build({"temperature": False, "masking": False, "reweighting": False}).generate(pipe, jobs, SAMPLER)
    assert [x.image.tobytes() for x in plain] == [x.image.tobytes() for x in off]
    on = AttentionModulation.build({}).generate(pipe, jobs, SAMPLER)
    assert on[0].image.tobytes() != plain[0].image.tobytes()
