"""Fixtures: tiny randomly initialised CLIP models built in code (no download)."""

from __future__ import annotations

import pytest

from _helpers.clip import tiny_random_clip


@pytest.fixture(scope="session")
def tiny_clip():
    return tiny_random_clip()


@pytest.fixture(scope="session")
def clip_tok():
    from t2ibench.tokenizer import clip_tokenizer

    return clip_tokenizer()


@pytest.fixture(scope="session")
def clip_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="session")
def hf_backend(tiny_clip, clip_tok, clip_image_processor):
    from t2ibench.metrics.clip_score import HFClipBackend

    return HFClipBackend(tiny_clip, clip_tok, clip_image_processor, "tiny-random-clip")
