"""ImageReward port = the image-reward 1.5 package's own model code, on the same random state_dict."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from PIL import Image

from t2ibench.metrics.common import NotAvailable
from t2ibench.metrics.image_reward import (
    REWARD_MEAN,
    REWARD_STD,
    ImageRewardModel,
    ImageRewardScorer,
    find_checkpoint,
    image_reward,
    preprocess_image,
)

from ._imagereward_reference import load_reference

# Float32 scores: compared with a relative tolerance (a reward near -73 carries float32
# round-off of ~1e-5 absolute; the two implementations agree to ~1e-14 in float64).
RTOL, ATOL = 1e-5, 1e-6

MED_TINY = {
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 40, "model_type": "bert", "num_attention_heads": 4,
    "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 120,
    "encoder_width": 48, "add_cross_attention": True,
}
VIT_TINY = {"patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 4}


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (also LayerNorms and biases, which init to constants)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _reference_tiny(ref, monkeypatch):
    med, vit, ir, _ = ref
    cfg = med.BertConfig(**MED_TINY)
    cfg.chunk_size_feed_forward = 0
    torch.manual_seed(0)
    visual = vit.VisionTransformer(img_size=32, **VIT_TINY)
    text = med.BertModel(config=cfg, add_pooling_layer=False)
    mlp = ir.MLP(MED_TINY["hidden_size"])
    for i, m in enumerate((visual, text, mlp)):
        _randomise(m, i)
    blip = torch.nn.Module()
    blip.visual_encoder, blip.text_encoder = visual, text
    blip.vision_proj, blip.text_proj = torch.nn.Linear(48, 256), torch.nn.Linear(32, 256)
    holder = torch.nn.Module()
    holder.blip, holder.mlp = blip, mlp
    holder.eval()
    return holder, ir


def test_port_equals_package_model_code(monkeypatch):
    ref = load_reference(monkeypatch)
    holder, ir = _reference_tiny(ref, monkeypatch)
    state = holder.state_dict()
    ours = ImageRewardModel(MED_TINY, image_size=32, vit=VIT_TINY).eval()
    ours.load_checkpoint(state)
    torch.manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32)
    ids = torch.randint(1, 120, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0  # padding
    mask[2, 3:] = 0
    # the package's own scoring function, on the package's own modules
    fake_self = types.SimpleNamespace(blip=holder.blip, mlp=holder.mlp, mean=REWARD_MEAN, std=REWARD_STD, device="cpu")
    with torch.no_grad():
        expect = torch.cat([ir.ImageReward.score_gard(fake_self, ids[i : i + 1], mask[i : i + 1], pixels[i : i + 1]) for i in range(3)]).squeeze(-1)
        got = ours(pixels, ids, mask)
    assert expect.abs().max() > 1e-3  # not a degenerate comparison
    assert torch.allclose(got, expect, rtol=RTOL, atol=ATOL), (got, expect)
    # batched through the package's code too
    with torch.no_grad():
        batched = ir.ImageReward.score_gard(fake_self, ids, mask, pixels).squeeze(-1)
    assert torch.allclose(got, batched, rtol=RTOL, atol=ATOL)


def test_preprocessing_equals_package_transform(monkeypatch):
    _, _, ir, _ = load_reference(monkeypatch)
    rng = np.random.default_rng(0)
    for shape in ((64, 64, 3), (300, 200, 3)):
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        assert torch.allclose(preprocess_image(img, 224), ir._transform(224)(img), atol=1e-6)


@pytest.mark.slow
def test_full_size_package_class_end_to_end(monkeypatch, tmp_path):
    """The package's ImageReward class (ViT-L, its score()) vs the port: text + image preprocessing included."""
    from transformers import BertTokenizer

    med, vit, ir, bp = load_reference(monkeypatch)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "blue", "square", "at", "night", "the", "of"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")

    def init_tokenizer():
        tok = BertTokenizer(str(tmp_path / "vocab.txt"))
        tok.add_special_tokens({"bos_token": "[DEC]"})
        tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        return tok

    monkeypatch.setattr(bp, "init_tokenizer", init_tokenizer)
    med_cfg = {**MED_TINY, "hidden_size": 768, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 12,
               "vocab_size": 30524}
    med_cfg.pop("encoder_width")
    (tmp_path / "med_config.json").write_text(json.dumps(med_cfg))
    monkeypatch.setattr(med.BertConfig, "chunk_size_feed_forward", 0, raising=False)
    torch.manual_seed(0)
    reference = ir.ImageReward(med_config=str(tmp_path / "med_config.json")).eval()
    _randomise(reference.mlp, 3)
    ours = ImageRewardModel(med_cfg).eval()
    ours.load_checkpoint(reference.state_dict())
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        expect = reference.score("a red circle at night", img)
    got = float(image_reward(ours, reference.blip.tokenizer, [img], ["a red circle at night"])[0])
    assert got == pytest.approx(expect, rel=RTOL, abs=ATOL)


def test_no_checkpoint_is_not_available(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("T2IBENCH_IMAGEREWARD", raising=False)
    with pytest.raises(NotAvailable, match="ImageReward-v1.0 checkpoint not found"):
        find_checkpoint(str(tmp_path / "nowhere"))
    with pytest.raises(NotAvailable):
        ImageRewardScorer(checkpoint=str(tmp_path / "nowhere")).check_available()
