"""The text tower's token-level objective and its measurement: varied captions know each object's
words, the leak penalty is the R² the probe measures, and the probe reads a causal encoder right."""

import numpy as np
import pytest
import torch

from t2ibench.world.render import COLORS, SHAPES, sample_objects
from t2ibench.world.text_probe import heldout_r2, probe_captions, text_selectivity
from t2ibench.world.train.captions import token_positions, varied_caption
from t2ibench.world.train.token_loss import TokenHeads, between_share, object_caption_batch, token_loss


@pytest.fixture(scope="module")
def tokenizer():
    from t2ibench.tokenizer import clip_tokenizer

    return clip_tokenizer()


def test_varied_caption_spans_name_each_objects_own_words(tokenizer):
    rng = np.random.default_rng(0)
    orders, joins = set(), set()
    for _ in range(300):
        labels = sample_objects(rng, n_objects=int(rng.integers(1, 5)))
        cap = varied_caption(labels, rng)
        kinds = {(o["shape"], o["color"]) for o in labels["objects"]}
        assert len(cap.objects) == len({(o["shape"], o["color"], o["texture"]) for o in labels["objects"]})
        for obj in cap.objects:
            assert cap.words[obj.noun].startswith(SHAPES[obj.shape])
            if obj.adj is not None:
                assert cap.words[obj.adj] == COLORS[obj.color]
                assert (SHAPES[obj.shape], COLORS[obj.color]) in kinds
        # word-by-word token positions are the positions of the full caption's tokenization
        ids = tokenizer(cap.text).input_ids
        for word, pos in zip(cap.words, token_positions(tokenizer, cap.words), strict=True):
            assert ids[pos] == tokenizer(word, add_special_tokens=False).input_ids[-1]
        assert ids[token_positions(tokenizer, cap.words)[-1] + 1] == tokenizer.eos_token_id
        if len(cap.objects) == 2:
            orders.add(cap.objects[0].shape == SHAPES.index(labels["objects"][0]["shape"]))
            joins.add(cap.words[cap.objects[0].noun + 1])
    assert orders == {True, False}  # both orders occur
    assert {"and", ",", "with", "next"} <= joins


def test_varied_caption_relations_hold_on_the_grid():
    from t2ibench.world.render import relation

    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(400):
        labels = sample_objects(rng, n_objects=2)
        a, b = labels["objects"]
        if a["shape"] == b["shape"]:
            continue  # the first phrase's shape names its object
        cap = varied_caption(labels, rng)
        first, second = (a, b) if cap.objects[0].shape == SHAPES.index(a["shape"]) else (b, a)
        for rel in ("to the left of", "to the right of", "above", "below"):
            if f" {rel} " in cap.text:
                assert rel in relation(first, second), cap.text
                seen += 1
    assert seen > 20


def test_between_share_is_the_in_sample_r2_of_a_one_hot_fit():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 6, size=200)
    states = rng.normal(size=(200, 8)) + np.eye(6)[groups] @ rng.normal(size=(6, 8))
    design = np.concatenate([np.ones((200, 1)), np.eye(6)[groups][:, 1:]], axis=1)
    coef, *_ = np.linalg.lstsq(design, states, rcond=None)
    r2 = 1 - ((states - design @ coef) ** 2).sum() / ((states - states.mean(0)) ** 2).sum()
    got = between_share(torch.tensor(states), torch.tensor(groups))
    assert float(got) == pytest.approx(r2, rel=1e-9)


def test_heldout_r2_of_a_known_signal_and_of_an_unrelated_label():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=2000)
    signal = np.eye(6)[labels] @ rng.normal(size=(6, 4))
    noise = rng.normal(size=(2000, 4)) * signal.std(0)  # as much noise variance as signal: R² = 0.5
    assert heldout_r2(signal + noise, labels, 6) == pytest.approx(0.5, abs=0.03)
    assert abs(heldout_r2(signal + noise, rng.integers(0, 6, size=2000), 6)) < 0.02  # about -(6 - 1) / 1000


def test_probe_on_the_shipped_causal_encoder():
    """A causal text tower: the first adjective's state is a function of its colour alone (share
    1), and the first object's words cannot see the second colour (share about 0)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from t2ibench.world.paths import pipeline_dir

    te = CLIPTextModel.from_pretrained(str(pipeline_dir() / "text_encoder"), dtype=torch.float32).eval()
    res = text_selectivity(te, CLIPTokenizer.from_pretrained(str(pipeline_dir() / "tokenizer")))
    assert res["captions"] == len(probe_captions()) == 360
    assert res["share"]["colour 1"]["adj 1"] == pytest.approx(1.0, abs=1e-6)
    assert abs(res["share"]["colour 2"]["adj 1"]) < 0.05 and abs(res["share"]["colour 2"]["noun 1"]) < 0.05
    assert res["own_vs_other"]["noun 1"]["met"] == (res["share"]["colour 2"]["noun 1"] <= 0.1)


def test_token_loss_leak_terms_fall_when_trained_on():
    """A few optimiser steps on the leak penalty alone lower the measured leak of a tiny tower."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2ibench.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    tok = clip_tokenizer()
    model = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=77))
    heads = TokenHeads(16)
    opt = torch.optim.Adam(list(model.parameters()) + list(heads.parameters()), lr=3e-3)
    caps = object_caption_batch(128, np.random.default_rng(0))
    _, first = token_loss(model, heads, tok, caps)
    for _ in range(30):
        loss, stats = token_loss(model, heads, tok, caps, leak_weight=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = token_loss(model, heads, tok, caps)
    assert last["leak_noun_color"] < first["leak_noun_color"] and last["leak_adj_color"] < first["leak_adj_color"]
    assert last["tok_own"] < first["tok_own"]
