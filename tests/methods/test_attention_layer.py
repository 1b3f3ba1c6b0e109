"""The attention-control layer: selection, byte identity when off, amplification, masking, τ, capture."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from t2ibench.attention import (
    Amplify,
    AttentionController,
    CrossAttentionMaps,
    LayerSelector,
    ObjectFocusMask,
    StepWindow,
    Temperature,
    TokenReweight,
    attention_layers,
)
from t2ibench.attention.steps import sampler_steps
from t2ibench.method import installed_processors

from _helpers.methods import cross_layer, run_plain

TEXT = "a red cat and a blue dog"


def test_layer_selection(sd_pipe, sdxl_pipe):
    for pipe in (sd_pipe, sdxl_pipe):
        infos = attention_layers(pipe.unet)
        assert {i.kind for i in infos} == {"self", "cross"}
        cross = LayerSelector.of("cross").select(pipe.unet)
        assert cross and all(i.name.endswith("attn2.processor") for i in cross)
        up0 = LayerSelector.of({"kind": "self", "blocks": ["up"], "levels": [min(i.level for i in infos)]}).select(pipe.unet)
        assert up0 and all(i.block == "up" and i.kind == "self" for i in up0)
    # SD tiny: down_blocks.0 and up_blocks.1 at level 0, mid at level 1
    levels = {i.name.split(".")[0] + i.name.split(".")[1]: i.level for i in attention_layers(sd_pipe.unet) if "blocks" in i.name}
    assert levels["down_blocks0"] == 0 and levels["up_blocks1"] == 0


def test_inactive_controls_are_byte_identical(pipe):
    plain = run_plain(pipe, [TEXT])
    ctl = AttentionController(pipe, [
        Temperature(0.5, steps=StepWindow.indices(100, 200)),
        Amplify([[2, 3]], 10.0, steps=StepWindow.indices(100, 200)),
        CrossAttentionMaps(layers="cross", steps=StepWindow.indices(100, 200)),
    ])
    out = ctl(prompt=[TEXT], num_inference_steps=5, guidance_scale=5.0, height=64, width=64,
              generator=[torch.Generator().manual_seed(3)], output_type="np").images
    assert out.tobytes() == plain.tobytes()
    # and the processors were restored
    assert all(type(p) is AttnProcessor2_0 for p in pipe.unet.attn_processors.values())


def _layer_inputs(pipe, n_cond=1, seed=0):
    name, attn = cross_layer(pipe)
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(n_cond, 64, attn.to_q.in_features, generator=g)
    ehs = torch.randn(n_cond, 77, attn.to_k.in_features, generator=g)
    return name, attn, hs, ehs


def _manual_probs(attn, hs, ehs):
    q, k = attn.to_q(hs), attn.to_k(ehs)
    h = attn.heads
    q = q.view(q.shape[0], -1, h, q.shape[-1] // h).transpose(1, 2)
    k = k.view(k.shape[0], -1, h, k.shape[-1] // h).transpose(1, 2)
    return (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)


def _run_layer(pipe, name, attn, hs, ehs, controls):
    ctl = AttentionController(pipe, controls)
    ctl.begin(10, 64, 64, cfg=False)
    with ctl.installed():
        with torch.no_grad():
            return attn(hs, encoder_hidden_states=ehs)


@torch.no_grad()
def test_amplification_multiplies_mass_by_c_then_renormalises(pipe):
    name, attn, hs, ehs = _layer_inputs(pipe)
    chosen, c = [5, 6, 7], 10.0
    p = _manual_probs(attn, hs, ehs)
    maps = CrossAttentionMaps(layers=[name], keep_layers=True)
    _run_layer(pipe, name, attn, hs, ehs, [Amplify([chosen], c, layers=[name]), maps])
    got = maps.per_layer[(0, name)]  # (1, T, h, w) summed over heads -> compare per head via a second capture
    expected = p.clone()
    expected[..., chosen] *= c
    expected = expected / expected.sum(-1, keepdim=True)
    exp_map = expected.sum(1).transpose(1, 2).reshape(got.shape)
    torch.testing.assert_close(got, exp_map, rtol=1e-5, atol=1e-6)
    # mass of the chosen tokens: c·m / (c·m + 1 − m) per head and patch
    m = p[..., chosen].sum(-1)
    torch.testing.assert_close(expected[..., chosen].sum(-1), c * m / (c * m + 1 - m), rtol=1e-5, atol=1e-6)
    # and the SDPA path (no capture) gives the same output as the eager one
    out_sdpa = _run_layer(pipe, name, attn, hs, ehs, [Amplify([chosen], c, layers=[name])])
    v = attn.to_v(ehs)
    v = v.view(1, -1, attn.heads, v.shape[-1] // attn.heads).transpose(1, 2)
    manual = (expected @ v).transpose(1, 2).reshape(1, 64, -1)
    manual = attn.to_out[0](manual)
    torch.testing.assert_close(out_sdpa, manual, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_neutral_controls_match_plain_processor(pipe):
    name, attn, hs, ehs = _layer_inputs(pipe)
    plain = attn(hs, encoder_hidden_states=ehs)
    out = _run_layer(pipe, name, attn, hs, ehs, [Temperature(1.0, layers=[name]), TokenReweight(torch.ones(1, 77), layers=[name])])
    torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_masked_tokens_get_zero_attention_from_masked_patches(pipe):
    name, attn, hs, ehs = _layer_inputs(pipe, n_cond=2, seed=1)
    groups = [[[2, 3], [6, 7]], [[1], [3, 4], [9]]]
    mask = ObjectFocusMask(groups, layers=[name])
    maps = CrossAttentionMaps(layers=[name], keep_layers=True)
    p = _manual_probs(attn, hs, ehs)
    _run_layer(pipe, name, attn, hs, ehs, [mask, maps])
    assign = mask.last_assignment  # (2, N)
    got = maps.per_layer[(0, name)].flatten(2).transpose(1, 2)  # (2, N, T) summed over heads
    for r, row in enumerate(groups):
        mass = torch.stack([p[r].mean(0)[:, g].sum(-1) for g in row], -1)  # (N, G)
        assert torch.equal(assign[r], mass.argmax(-1))
        for n in range(got.shape[1]):
            own = assign[r, n].item()
            others = [t for gi, g in enumerate(row) if gi != own for t in g]
            assert torch.all(got[r, n, others] == 0)
            assert torch.all(got[r, n, row[own]] > 0)
            assert got[r, n, 0] > 0 and got[r, n, 20] > 0  # global tokens kept
        assert len(set(assign[r].tolist())) >= 1
    torch.testing.assert_close(got.sum(-1), torch.full_like(got.sum(-1), float(attn.heads)))


class _Recorder:
    """Wraps a layer's processor; records whether its output differs from AttnProcessor2_0's."""

    def __init__(self, inner, name, state, log):
        self.inner, self.name, self.state, self.log = inner, name, state, log

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
        out = self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kw)
        ref = AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask)
        self.log[(self.state.call, self.name)] = (self.state.step, not torch.equal(out, ref))
        return out


def test_temperature_changes_only_chosen_layers_and_steps(pipe):
    level = min(i.level for i in attention_layers(pipe.unet))
    chosen = {"kind": "self", "blocks": ["up"], "levels": [level]}
    temp = Temperature(0.5, layers=chosen, steps=StepWindow.indices(1, 3))
    ctl = AttentionController(pipe, [temp])
    ctl.begin(5, 64, 64)
    procs = ctl.processors()
    assert set(procs) == set(temp.layer_names(pipe.unet))
    log = {}
    current = pipe.unet.attn_processors
    wrapped = {n: _Recorder(procs.get(n, current[n]), n, ctl.state, log) for n in current}
    with installed_processors(pipe, wrapped):
        run_plain(pipe, [TEXT], callback=ctl.callback)
    names = set(temp.layer_names(pipe.unet))
    calls = {c for c, _ in log}
    assert calls == set(range(len(pipe.scheduler.timesteps)))  # PLMS runs one extra call ...
    steps_of_call = sampler_steps(pipe.scheduler.timesteps)
    assert {s for s, _ in log.values()} == set(range(5))  # ... which belongs to step 0 (sampler steps)
    for (call, name), (step, changed) in log.items():
        assert step == steps_of_call[call]
        assert changed == (name in names and step in (1, 2)), (call, step, name)


def test_temperature_steps_on_euler(sdxl_pipe):
    temp = Temperature(0.5, layers="self", steps=(0.0, 0.4))
    ctl = AttentionController(sdxl_pipe, [temp])
    ctl.begin(5, 64, 64)
    log = {}
    current = sdxl_pipe.unet.attn_processors
    procs = ctl.processors()
    wrapped = {n: _Recorder(procs.get(n, current[n]), n, ctl.state, log) for n in current}
    with installed_processors(sdxl_pipe, wrapped):
        run_plain(sdxl_pipe, [TEXT], callback=ctl.callback)
    changed_steps = {s for (_, n), (s, c) in log.items() if c}
    assert changed_steps == {0, 1}
    assert not any(c for (_, n), (s, c) in log.items() if n.endswith("attn2.processor"))


@pytest.mark.slow
def test_map_capture_only_on_chosen_layers(pipe):
    level = min(i.level for i in attention_layers(pipe.unet))
    sel = {"kind": "cross", "levels": [level]}
    maps = CrossAttentionMaps(pipe, layers=sel, keep_layers=True)
    seen = {}

    def spy(p, step, t, kw):
        seen[step] = {n: type(proc).__name__ for n, proc in pipe.unet.attn_processors.items()}
        return kw

    plain = run_plain(pipe, [TEXT, "a green ball"])
    out = maps.run(prompt=[TEXT, "a green ball"], num_inference_steps=5, guidance_scale=5.0, height=64, width=64,
                   generator=[torch.Generator().manual_seed(3 + i) for i in range(2)], output_type="np",
                   callback_on_step_end=spy).images
    assert abs(out - plain).max() < 1e-3  # eager on captured rows = SDPA up to rounding
    chosen = set(maps.layer_names(pipe.unet))
    for kinds in seen.values():
        assert {n for n, k in kinds.items() if k == "ControlledAttnProcessor"} == chosen
    agg = maps.aggregate()
    assert agg.shape == (2, 77, 32, 32)  # conditional rows only, latent grid
    assert sorted(maps.per_step) == sorted({s for s, _ in maps.per_layer})
    for (_, name), m in maps.per_layer.items():
        heads = pipe.unet.get_submodule(name.rsplit(".processor", 1)[0]).heads
        torch.testing.assert_close(m.sum(1), torch.full_like(m.sum(1), float(heads)), rtol=1e-4, atol=1e-4)
    early = maps.aggregate(steps=[0, 1])  # DAAM: mean over heads, layers and steps
    n_maps = maps.map_counts[0] + maps.map_counts[1]
    torch.testing.assert_close(early, (maps.per_step[0] + maps.per_step[1]) / n_maps)
    hm = maps.heatmaps(size=(64, 64))
    assert hm.shape == (2, 77, 64, 64) and float(hm.max()) <= 1.0 and float(hm.min()) >= 0.0
