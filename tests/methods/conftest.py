"""Fixtures for tests/methods: tiny SD/SDXL pipelines and ITI-GEN tokens learned with a tiny CLIP."""

from __future__ import annotations

import pytest
import torch

from _helpers.methods import reference_tensors, tiny_clip

torch.set_num_threads(1)  # the CPU is shared; one thread is faster under contention


@pytest.fixture(scope="session")
def sd_pipe():
    from t2ibench.tiny_models import tiny_sd_pipeline

    return tiny_sd_pipeline()


@pytest.fixture(scope="session")
def sdxl_pipe():
    from t2ibench.tiny_models import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline()


@pytest.fixture(params=["sd", "sdxl"])
def pipe(request, sd_pipe, sdxl_pipe):
    return sd_pipe if request.param == "sd" else sdxl_pipe


@pytest.fixture(scope="session")
def trained_tokens(tmp_path_factory):
    """ITI-GEN tokens for the "Colour" tSA (red vs blue references), learned with the tiny CLIP."""
    from t2ibench.baselines.iti_gen import train_iti_gen

    out = tmp_path_factory.mktemp("tokens")
    clip = tiny_clip()
    refs = reference_tensors()
    result = train_iti_gen(clip, refs, out, tsa="Colour", epochs=10, steps_per_epoch=5, batch_size=16)
    return out, result, refs, clip
