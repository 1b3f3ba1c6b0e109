import open_clip
import torch

from t2ibench.tokenizer import clip_tokenizer


def test_token_ids_match_open_clip():
    texts = ["a headshot of a smiling person with eyeglasses", "Two green triangles at night!", "a striped yellow star"]
    ours = clip_tokenizer()(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ref = open_clip.tokenize(texts)
    for a, b in zip(ours, ref, strict=True):
        n = int((b != 0).sum())
        assert torch.equal(a[:n], b[:n])
    assert clip_tokenizer().model_max_length == 77
