"""CLIP Score against torchmetrics' own CLIPScore on the same tiny random CLIPModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.multimodal import CLIPScore as TMCLIPScore

from t2ibench.metrics.clip_score import CLIPScore, CLIPScoreScorer, clip_cosines, clip_score, reduce_clip_score

from _helpers.clip import random_images

CAPTIONS = ["a red circle", "two blue squares at night", "a striped star left of a white circle",
            "a headshot of a person", "a green triangle", "a photo"]


class _TensorFeatures(torch.nn.Module):
    """transformers-5 compatibility shim for torchmetrics: get_*_features return tensors (as in 4.x)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *a, **k):
        return self.model.get_image_features(*a, **k).pooler_output

    def get_text_features(self, *a, **k):
        return self.model.get_text_features(*a, **k).pooler_output


def _torchmetrics_clip_score(model, tokenizer, image_processor, images, texts):
    from transformers import CLIPProcessor

    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    m = TMCLIPScore(model_name_or_path=lambda: (_TensorFeatures(model), processor))
    tensors = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]
    m.update(tensors, list(texts))
    return float(m.compute())


def test_equals_torchmetrics_on_same_model(tiny_clip, clip_tok, clip_image_processor, hf_backend):
    images = random_images(len(CAPTIONS))
    ref = _torchmetrics_clip_score(tiny_clip, clip_tok, clip_image_processor, images, CAPTIONS)
    assert clip_score(images, CAPTIONS, hf_backend) == pytest.approx(ref, rel=1e-5, abs=1e-4)
    metric = CLIPScore(hf_backend)
    metric.update(images[:4], CAPTIONS[:4])
    metric.update(images[4:], CAPTIONS[4:])
    assert float(metric.compute()) == pytest.approx(ref, rel=1e-5, abs=1e-4)


def test_formula_hand_computed(hf_backend, tiny_clip, clip_image_processor, clip_tok):
    images = random_images(3, seed=5)
    cos, _ = clip_cosines(hf_backend, images, CAPTIONS[:3])
    px = clip_image_processor(images=images, return_tensors="pt")["pixel_values"]
    enc = clip_tok(CAPTIONS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = tiny_clip(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
    i = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    t = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    expect = (i * t).sum(-1).double()
    assert torch.allclose(cos, expect, atol=1e-6)
    assert reduce_clip_score([0.3, -0.1]) == pytest.approx(10.0)
    assert reduce_clip_score([0.3, -0.1], "per-image") == pytest.approx(15.0)
    assert reduce_clip_score([-0.3, 0.1]) == 0.0


def test_long_captions_truncated_and_counted(hf_backend):
    long = "a " + "very " * 100 + "red circle"
    images = random_images(2)
    cos, truncated = clip_cosines(hf_backend, images, [long, "a red circle"])
    assert truncated == [True, False]
    # truncated to 77 tokens, end-of-text kept: equals the score of the explicitly cut caption
    ids = hf_backend.tokenizer(long)["input_ids"][:76] + [49407]
    cut = hf_backend.tokenizer.decode(ids[1:-1])
    cos_cut, trunc_cut = clip_cosines(hf_backend, images[:1], [cut])
    assert trunc_cut == [False]
    assert float(cos[0]) == pytest.approx(float(cos_cut[0]), abs=1e-6)
    m = CLIPScore(hf_backend)
    m.update(images, [long, "a red circle"])
    assert int(m.n_truncated) == 1


def test_merged_states_equal_single(hf_backend):
    images = random_images(6, seed=2)
    single = CLIPScore(hf_backend, clamp="per-image")
    single.update(images, CAPTIONS)
    a, b = CLIPScore(hf_backend, clamp="per-image"), CLIPScore(hf_backend, clamp="per-image")
    a.update(images[:2], CAPTIONS[:2])
    b.update(images[2:], CAPTIONS[2:])
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(single.compute()), rel=1e-12)


def test_scorer_values_and_aggregate(hf_backend):
    images = random_images(4, seed=3)
    metas = [{"prompt": c} for c in CAPTIONS[:4]]
    s = CLIPScoreScorer(_backend=hf_backend)
    values = s.score(images, metas)
    agg = s.aggregate(values, metas)["clip_score"]
    assert agg["n"] == 4 and agg["n_truncated"] == 0
    assert agg["value"] == pytest.approx(clip_score(images, CAPTIONS[:4], hf_backend), rel=1e-9)


def test_open_clip_backend_matches_direct_computation():
    import open_clip

    from t2ibench.metrics.clip_score import OpenClipBackend

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=32, patch_size=8, image_size=32, head_width=16),
        text_cfg=open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
    ).eval()
    from open_clip.transform import image_transform

    preprocess = image_transform(32, is_train=False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    backend = OpenClipBackend(model, preprocess, tokenizer, "open_clip:tiny")
    images = random_images(3, seed=4)
    cos, truncated = clip_cosines(backend, images, CAPTIONS[:3])
    with torch.no_grad():
        i = model.encode_image(torch.stack([preprocess(im) for im in images]), normalize=True)
        t = model.encode_text(tokenizer(CAPTIONS[:3]), normalize=True)
    assert torch.allclose(cos, (i * t).sum(-1).double(), atol=1e-6)
    assert truncated == [False] * 3
    assert backend._count_truncated(["a " * 100]) == [True]
