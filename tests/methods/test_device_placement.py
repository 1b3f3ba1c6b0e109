"""Device placement without a GPU: every shipped method on a pipeline whose weights live on ``meta``.

A meta tensor has a device and a shape but no data, so on ``meta``:

- any host-device synchronisation (``.item()``, ``bool(tensor)``, boolean-mask indexing, which
  needs ``nonzero``) raises, as reading a CUDA tensor from the host would stall the GPU;
- any op mixing a meta tensor with a CPU tensor raises, as mixing CUDA and CPU tensors does; and
  the one kind of mix that meta lets through (writing CPU values into a meta tensor by index,
  which CUDA refuses) is caught by ``MixedDevices`` (``_helpers.devices``), a dispatch mode that
  records every op whose tensor arguments live on two devices (explicit moves excepted).

So a method that builds a token vector, mask or bias on the CPU and hands it to a model on the
GPU fails here, on a CPU-only machine. The scheduler's arithmetic and the PIL conversion have
no meta kernels; they are replaced by device-neutral stand-ins (identity step), which is all the
methods' code paths need (text encoding, attention processors, step callbacks, VAE decode).
"""

from __future__ import annotations

import pytest
import torch

from t2ibench.baselines.iti_gen import InclusiveTokens
from t2ibench.registry import METHODS
from t2ibench.types import ImageJob, PromptItem, SamplerConfig

from _helpers.devices import MixedDevices

SHIPPED = ["sd", "hard-prompt", "structured-diffusion", "iti-gen", "fairqueue", "attention-modulation"]
FAIR = PromptItem(
    id="Colour", text="a headshot of a person",
    meta={"tsa": "Colour", "categories": ["red", "blue"], "base_prompt": "a headshot of a person",
          "hard_prompts": ["a headshot of a person in red", "a headshot of a person in blue"]},
)
ALIGN = PromptItem(id="a", text="a red cat and a blue dog")
SAMPLER = SamplerConfig(steps=2, guidance=5.0, height=32, width=32)


def on_meta(pipe):
    """The pipeline's modules on ``meta``; scheduler and image conversion as device-neutral stand-ins."""
    pipe.to("meta")
    sched = pipe.scheduler
    set_timesteps = sched.set_timesteps

    def timesteps_on(n, device=None, **kw):
        set_timesteps(n, device="cpu", **kw)
        sched.timesteps = sched.timesteps.to(device)

    sched.set_timesteps = timesteps_on
    sched.scale_model_input = lambda sample, *a, **k: sample
    sched.step = lambda model_output, t, sample, *a, **k: (sample + 0 * model_output,)
    pipe.image_processor.postprocess = lambda image, output_type="pil", do_denormalize=None: list(image)
    return pipe


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    g = torch.Generator().manual_seed(0)
    InclusiveTokens("Colour", ["red", "blue"], "a headshot of a person", {"tokens": torch.randn(2, 3, 32, generator=g)}).save(out)
    return out


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def meta_pipe(request):
    from t2ibench.tiny_models import tiny_sd_pipeline, tiny_sdxl_pipeline

    return on_meta((tiny_sd_pipeline if request.param == "sd" else tiny_sdxl_pipeline)())


@pytest.mark.parametrize("name", SHIPPED)
def test_method_runs_on_meta_without_syncs_or_mixed_devices(name, meta_pipe, tokens_dir):
    fair = name in ("hard-prompt", "iti-gen", "fairqueue")
    jobs = [ImageJob(name, "fair", FAIR, i, i) for i in range(2)] if fair else [ImageJob(name, "align", ALIGN, 0, 1)]
    params = {"tokens_dir": str(tokens_dir)} if name in ("iti-gen", "fairqueue") else {}
    check = MixedDevices()
    with check:
        out = METHODS.get(name).build(params).generate(meta_pipe, jobs, SAMPLER)
    assert [im.image.device.type for im in out] == ["meta"] * len(jobs)
    assert not check.mixed, check.mixed[:5]


def test_injected_vectors_from_the_cpu_land_on_the_encoder_device():
    """Learned tokens loaded on the CPU, encoder elsewhere: no op mixes the two devices."""
    from t2ibench.attention.text import PLACEHOLDER_ID, injected_tokens

    emb = torch.nn.Embedding(300, 8).to("meta")
    ids = torch.full((2, 6), 5, device="meta")
    check = MixedDevices()
    with check, injected_tokens({"e": emb}, [[1, 2], [3]], {"e": [torch.ones(2, 8), torch.ones(1, 8)]}, PLACEHOLDER_ID):
        out = emb(ids)
    assert out.device.type == "meta" and not check.mixed, check.mixed
