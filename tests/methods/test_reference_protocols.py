"""Known answers from the reference code (docs/protocols.md): ITI-GEN prompt layout and losses,
FairQueue's amplified token and queued base prompt, and PLMS step windows.

Each expected value is computed here from the reference's definition (ITI-GEN ``iti_gen/model.py``,
FairQueue ``generation_mixing.py``, the CompVis PLMS sampler), not by calling the code under test.
"""

from __future__ import annotations

import itertools

import open_clip
import pytest
import torch
import torch.nn.functional as F

from t2ibench.attention import Amplify
from t2ibench.attention.steps import sampler_steps
from t2ibench.attention.switch import PromptSwitch
from t2ibench.attention.text import PromptEmbeds, encode_ids, reference_padded_ids, token_layout
from t2ibench.baselines.fairqueue import FairQueue
from t2ibench.baselines.iti_gen import iti_gen_losses, prompt_features, train_iti_gen
from t2ibench.tokenizer import clip_tokenizer

from _helpers.methods import SAMPLER, fair_jobs, tiny_clip

BASE = "a headshot of a person"


def reference_ids(text: str) -> list[int]:
    """OpenAI ``clip.tokenize`` ids (open_clip's tokenizer is the same BPE with the same 0 padding)."""
    return open_clip.tokenize([text])[0].tolist()


# --- prompt layout -------------------------------------------------------------------------
def test_reference_layout_ids_positions_and_feature_position():
    ref = reference_ids(BASE)
    eot = ref.index(49407)
    assert eot == 6  # "<start> a headshot of a person <end>" (model.py: last_word_idx = argmax = 6)
    lay = token_layout(clip_tokenizer(), BASE, 3, "reference")
    expected = list(ref)
    expected[6:9] = [265] * 3  # the 3 learned tokens overwrite end-of-text and two `!` pads
    assert lay.input_ids == expected
    assert lay.input_ids[9:] == [0] * 68  # `!` (id 0) padding, as clip.tokenize pads
    assert lay.positions == [6, 7, 8]
    assert lay.feature_position == 9  # model.py:383-384: argmax(ids) + token_length
    # the shifted layout keeps end-of-text after the tokens
    shifted = token_layout(clip_tokenizer(), BASE, 3, "shifted")
    assert shifted.input_ids[:10] == ref[:6] + [265] * 3 + [49407] and shifted.feature_position == 9


def test_queued_base_prompt_is_padded_like_clip_tokenize():
    assert reference_padded_ids(clip_tokenizer(), BASE) == reference_ids(BASE)


def test_learned_vectors_replace_token_plus_position_embedding():
    """ITI-GEN writes the tokens over (token + position) embeddings: the encoder input there is the vector itself."""
    clip = tiny_clip()
    tokens = torch.randn(2, 3, 32)
    seen = {}
    handle = clip.text_model.embeddings.register_forward_hook(lambda m, a, out: seen.setdefault("x", out.detach().clone()))
    try:
        t = prompt_features(clip, clip_tokenizer(), tokens, BASE, "reference")
    finally:
        handle.remove()
    torch.testing.assert_close(seen["x"][:, 6:9], tokens)
    # the reference text feature, built the reference's way: overwrite the embeddings' output, read position 9
    ids = torch.tensor([token_layout(clip_tokenizer(), BASE, 3, "reference").input_ids] * 2)

    def overwrite(module, args, out):
        out = out.clone()
        out[:, 6:9] = tokens
        return out

    handle = clip.text_model.embeddings.register_forward_hook(overwrite)
    try:
        with torch.no_grad():
            hidden = clip.text_model(input_ids=ids).last_hidden_state[:, 9]
    finally:
        handle.remove()
    torch.testing.assert_close(t.detach(), F.normalize(clip.text_projection(hidden), dim=-1))


# --- training ------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 4])
def test_iti_gen_losses_equal_reference_formulas(K):
    clip = tiny_clip()
    g = torch.Generator().manual_seed(K)
    tokens = torch.randn(K, 3, 32, generator=g)
    means = F.normalize(torch.randn(K, 32, generator=g), dim=-1) * 0.7
    lam = 0.99  # high enough that the semantic term is active on random tokens
    with torch.no_grad():
        d, s, t = iti_gen_losses(clip, clip_tokenizer(), tokens, means, BASE, lam)
        base_ids = clip_tokenizer()([BASE], padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
        t0 = F.normalize(clip.get_text_features(input_ids=base_ids).pooler_output, dim=-1)[0]
    # model.py iti_gen_loss: per pair (1 − cos of normalised deltas) and ReLU(λ − mean(cos_i, cos_j)),
    # summed over C(K,2) pairs and divided by 2·C(K,2)/K = K − 1
    pairs = list(itertools.combinations(range(K), 2))
    dd = sum(1 - F.cosine_similarity(means[i] - means[j], t[i] - t[j], dim=0) for i, j in pairs) / (2 * len(pairs) / K)
    ss = sum(F.relu(lam - (t[i] @ t0 + t[j] @ t0) / 2) for i, j in pairs) / (2 * len(pairs) / K)
    assert float(ss) > 0
    torch.testing.assert_close(d, dd)
    torch.testing.assert_close(s, ss)
    # the earlier t2ibench variant differs for K > 2 (named choice objective="project")
    dp, sp, _ = iti_gen_losses(clip, clip_tokenizer(), tokens, means, BASE, lam, objective="project")
    torch.testing.assert_close(sp, F.relu(lam - t @ t0).sum())
    if K > 2:
        assert not torch.isclose(dp, d)


def test_training_starts_from_zeros_falls_back_to_cosine_and_halves_lr_at_epoch_10():
    from _helpers.methods import reference_tensors

    res = train_iti_gen(tiny_clip(), reference_tensors(), None, epochs=11, steps_per_epoch=2)
    h = res.history
    # zero tokens: every category's prompt is the same, the direction loss is NaN, the cosine loss is used
    assert h[0]["cosine_fallback"] and h[0]["direction"] != h[0]["direction"]
    assert not h[-1]["cosine_fallback"]
    assert [x["lr"] for x in h] == [0.01] * 20 + [0.005] * 2  # MultiStepLR([10], 0.5), stepped per epoch
    assert res.tokens.meta["layout"] == "reference" and res.tokens.layout == "reference"


# --- FairQueue's amplified token -----------------------------------------------------------
def test_fairqueue_amplifies_the_token_after_the_learned_ones(sd_pipe, trained_tokens):
    out = trained_tokens[0]
    jobs = fair_jobs(2)
    m = FairQueue.build({"tokens_dir": str(out)})
    m.pipeline_kwargs(sd_pipe, jobs, ["x", "x"], SAMPLER)
    (amp,) = m.controls(sd_pipe, jobs, SAMPLER)
    assert amp.positions == [[9], [9]]  # generation_mixing.py: --st default [9]
    w = amp.weights
    assert float(w[0, 9]) == 10.0 and float(w[0].sum()) == 76 + 10.0
    m2 = FairQueue.build({"tokens_dir": str(out), "amplify_tokens": "learned"})
    m2.pipeline_kwargs(sd_pipe, jobs, ["x", "x"], SAMPLER)
    assert m2.controls(sd_pipe, jobs, SAMPLER)[0].positions == [[6, 7, 8]] * 2


def test_amplify_without_renormalisation_scales_only_the_chosen_probabilities():
    amp = Amplify([[1]], 10.0, renormalize=False)
    probs = torch.tensor([[[[0.5, 0.02, 0.48]]]])

    class Call:
        n_key = 3
        device = None  # LayerCall.device: None = where the weights are

    assert amp.needs_probs and amp.logit_bias(Call()) is None
    torch.testing.assert_close(amp.edit_probs(Call(), probs), torch.tensor([[[[0.5, 0.2, 0.48]]]]))
    renorm = Amplify([[1]], 10.0)
    bias = renorm.logit_bias(Call())
    torch.testing.assert_close((probs.log() + bias).softmax(-1), torch.tensor([[[[0.5, 0.2, 0.48]]]]) / 1.18)


# --- PLMS step windows ---------------------------------------------------------------------
def sd14_pndm():
    from diffusers import PNDMScheduler

    s = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                      steps_offset=1, set_alpha_to_one=False)
    s.set_timesteps(50)
    return s


def test_pndm_calls_map_to_the_reference_plms_steps():
    ts = [int(t) for t in sd14_pndm().timesteps]
    assert ts[:4] == [981, 961, 961, 941] and len(ts) == 51
    # CompVis PLMS (ddim_discretize="uniform"): step i is at timestep 981 − 20 i, i = 0 … 49; its
    # first step evaluates the model twice (at 981 and at 961), every later step once
    steps = sampler_steps(ts)
    assert steps[:3] == [0, 0, 1] and steps[-1] == 49
    for call, t in enumerate(ts):
        if call != 1:
            assert t == 981 - 20 * steps[call]


def test_prompt_queue_switches_at_the_reference_timestep():
    """--ts 40: the first 10 PLMS steps use the base prompt; step 10 (timestep 781) is the first with ITI-GEN's."""
    sched = sd14_pndm()
    ts = [int(t) for t in sched.timesteps]

    class Pipe:
        scheduler = sched

    new = PromptEmbeds(torch.ones(1, 77, 4))
    switch = PromptSwitch(10, new)
    seen = []
    kw = {"prompt_embeds": torch.zeros(2, 77, 4)}
    for call, t in enumerate(ts):
        seen.append(float(kw["prompt_embeds"][1].mean()))
        kw = switch(Pipe(), call, torch.tensor(t), kw)
    first = seen.index(1.0)
    assert ts[first] == 781 and first == 11
    assert ts[first - 1] == 801 and all(v == 0.0 for v in seen[:first])


def test_encode_ids_matches_pipeline_encoding(pipe):
    """The reference layout's direct encoding equals the pipeline's encode_prompt for ordinary ids."""
    from t2ibench.attention.text import encode_prompts, text_encoders

    text = "a red cube"
    ids = {}
    for name in text_encoders(pipe):
        tok = pipe.tokenizer_2 if name == "text_encoder_2" else pipe.tokenizer
        ids[name] = tok([text], padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
    a, b = encode_ids(pipe, ids), encode_prompts(pipe, [text])
    torch.testing.assert_close(a.prompt_embeds, b.prompt_embeds)
    if b.pooled is not None:
        torch.testing.assert_close(a.pooled, b.pooled)


# --- Structured Diffusion ------------------------------------------------------------------
def test_structured_diffusion_preprocesses_and_keeps_multi_word_phrases_only():
    from t2ibench.baselines.structured_diffusion import phrase_spans, preprocess_prompt

    # txt2img_demo.py preprocess_prompts: lower().strip().strip(".").strip()
    assert preprocess_prompt("  A Red car and a white sheep. ") == "a red car and a white sheep"
    text = "dogs chase a red ball"
    assert [text[a:b] for a, b in phrase_spans(text)] == ["a red ball"]  # "dogs": one leaf, dropped
    assert [text[a:b] for a, b in phrase_spans(text, min_words=1)] == ["dogs", "a red ball"]


@torch.no_grad()
def _reference_single_align(main_seq, seqs, spans, dim=1):
    """Transcription of Structured-Diffusion-Guidance ``scripts/txt2img_demo.py:148-156``: writes
    into ``main_seq`` through a transposed view (in place)."""
    main_seq = main_seq.transpose(0, dim)
    for seq, span in zip(seqs, spans, strict=True):
        seq = seq.transpose(0, dim)
        start, end = span[0] + 1, span[1] + 1
        main_seq[start:end] = seq[1 : 1 + end - start]
    return main_seq.transpose(0, dim)


def _reference_multi_align(main_seq, seq, span, dim=1):
    """Transcription of ``txt2img_demo.py:159-167``."""
    seq = seq.transpose(0, dim)
    main_seq = main_seq.transpose(0, dim)
    start, end = span[0] + 1, span[1] + 1
    main_seq[start:end] = seq[1 : 1 + end - start]
    return main_seq.transpose(0, dim)


def _reference_align_sequence(main_seq, seqs, spans, dim=1, single=False):
    """Transcription of ``txt2img_demo.py:170-177``."""
    if single:
        return [_reference_single_align(main_seq, seqs, spans, dim=dim)]
    return [_reference_multi_align(main_seq.clone(), seq, span, dim=dim) for seq, span in zip(seqs, spans, strict=True)]


def test_reference_conjunction_first_key_is_the_single_aligned_sequence():
    """On toy tensors, the reference's ``k_c = [c[0]] + align_sequence(...)`` followed by
    ``v_c = align_sequence(..., single=True)`` (``txt2img_demo.py:446-450``) leaves k_c[0] equal to
    v_c[0]: the in-place write reaches the tensor k_c already holds."""
    c = [torch.zeros(1, 6, 2), torch.ones(1, 6, 2), 2 * torch.ones(1, 6, 2)]
    spans = [(0, 2), (3, 4)]
    k_c = [c[0]] + _reference_align_sequence(c[0], c[1:], spans)
    v_c = _reference_align_sequence(c[0], c[1:], spans, single=True)
    assert torch.equal(k_c[0], v_c[0]) and k_c[0].tolist()[0] == [[0, 0], [1, 1], [1, 1], [0, 0], [2, 2], [0, 0]]
    assert k_c[1].tolist()[0] == [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0], [0, 0]]  # clones: one phrase each
    assert k_c[2].tolist()[0] == [[0, 0], [0, 0], [0, 0], [0, 0], [2, 2], [0, 0]]


def test_conjunction_mode_keys_and_values_as_the_reference_computes_them(sd_pipe):
    """Keys and values from the transcribed reference operations on the pipeline's own encodings of
    the full prompt and of each noun phrase; then ``attention.py`` ``multi_qkv`` with 3 keys and 1
    value: out = sum_k softmax(q k_kᵀ) · v / 3."""
    from t2ibench.attention import AttentionController
    from t2ibench.baselines.structured_diffusion import StructuredDiffusion

    from _helpers.methods import cross_layer, text_jobs

    text = "a red car and a white sheep"
    m = StructuredDiffusion.build({"mode": "conjunction"})
    m.pipeline_kwargs(sd_pipe, text_jobs([text]), [text], SAMPLER)

    def encode(prompt: str) -> torch.Tensor:
        ids = sd_pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return sd_pipe.text_encoder(ids)[0]

    c = [encode(p) for p in (text, "a red car", "a white sheep")]
    spans = [(0, 3), (4, 7)]  # word spans of the two noun phrases (one token per word here)
    k_c = [c[0]] + _reference_align_sequence(c[0], c[1:], spans)
    v_c = _reference_align_sequence(c[0], c[1:], spans, single=True)
    assert len(m._keys) == 3
    for mine, ref in zip(m._keys, k_c, strict=True):
        torch.testing.assert_close(mine[0], ref[0])
    torch.testing.assert_close(m._values[0], v_c[0][0])
    assert not torch.allclose(m._keys[0][0], encode(text)[0])  # the first key is not the full prompt
    name, attn = cross_layer(sd_pipe)
    controls = [c for c in m.controls(sd_pipe, text_jobs([text]), SAMPLER)]
    for ctl_ in controls:
        ctl_.layers_spec, ctl_.selector = [name], None
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(2, 64, attn.to_q.in_features, generator=g)
    ehs = torch.cat([torch.randn(1, 77, attn.to_k.in_features, generator=g), encode(text)])
    ctl = AttentionController(sd_pipe, controls)
    ctl.begin(10, 64, 64, cfg=True)
    with ctl.installed():
        out = attn(hs, encoder_hidden_states=ehs)
    h = attn.heads
    d = attn.to_q.out_features // h

    def heads(x):
        return x.view(1, -1, h, d).transpose(1, 2)

    q = heads(attn.to_q(hs[1:]))
    v = heads(attn.to_v(v_c[0]))
    p = [(q @ heads(attn.to_k(k)).transpose(-1, -2) * attn.scale).softmax(-1) for k in k_c]
    expected = attn.to_out[0]((sum(pk @ v for pk in p) / (len(k_c) * len(v_c))).transpose(1, 2).reshape(1, 64, -1))
    torch.testing.assert_close(out[1:], expected, rtol=1e-4, atol=1e-5)


# --- attention maps as DAAM aggregates them ------------------------------------------------
@torch.no_grad()
def test_daam_aggregation_skips_8x8_upsamples_bicubic_clamps_and_averages():
    """daam/trace.py: factor = sqrt(latent_hw / n_query); factor 8 skipped; bicubic, clamp(min=0), mean."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from t2ibench.attention import CrossAttentionMaps

    g = torch.Generator().manual_seed(0)

    def call(n_query, level, step=0):
        info = SimpleNamespace(name=f"l{n_query}", level=level)
        return SimpleNamespace(hw=(int(n_query ** 0.5),) * 2, latent_hw=(16, 16), step=step, layer=info)

    p4 = torch.rand(1, 2, 16, 5, generator=g).softmax(-1)  # 4x4 layer (factor 4), 2 heads
    p2 = torch.rand(1, 2, 4, 5, generator=g).softmax(-1)  # 2x2 layer (factor 8): skipped
    maps = CrossAttentionMaps(layers=["x"])
    maps.observe(call(16, 2), p4)
    maps.observe(call(4, 3), p2)

    def ref(p, n):
        per_head = p[0].transpose(1, 2).reshape(2, 5, n, n)
        return F.interpolate(per_head, size=(16, 16), mode="bicubic").clamp(min=0).mean(0)

    torch.testing.assert_close(maps.aggregate()[0], ref(p4, 4))
    old = CrossAttentionMaps(layers=["x"], aggregation="sum")
    old.observe(call(16, 2), p4)
    old.observe(call(4, 3), p2)
    bil = lambda p, n: F.interpolate(p[0].sum(0).T.reshape(1, 5, n, n), size=(16, 16), mode="bilinear")[0]  # noqa: E731
    torch.testing.assert_close(old.aggregate()[0], bil(p4, 4) + bil(p2, 2))
