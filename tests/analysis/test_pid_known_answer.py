"""The estimator on a synthetic denoiser whose answer is known in closed form.

The fake UNet predicts ε̂(x_t | y) = 0.1·x_t + v(y)·M, with M a fixed spatial mask (all channels)
and v(y) = 1 when the text contains "red", else 0. So ε̂(·|c, red) − ε̂(·|c) = M at every
log-SNR, and the orthogonal estimator's integral is exact:
    i(x; red | c) = ½ · ∫ ‖M‖² dα = ½ · (α_max − α_min) · ‖M‖²  = ½ · 12 · 4·|M|   (α ∈ [−5, 7]).
"circle" changes nothing, so i(x; circle) = 0, i(x; red, circle) = i(x; red): R = 0, U_red = i,
U_circle = 0, S = 0. Pixel level: zero outside the mask.
"""

from types import SimpleNamespace

import pytest
import torch

from t2ibench.analysis.pid import estimate_pid, pointwise_mi
from t2ibench.tokenizer import clip_tokenizer

H = W = 8


class FakeUNet(torch.nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.anchor.device

    @property
    def dtype(self):
        return self.anchor.dtype

    def forward(self, sample, timesteps, encoder_hidden_states, return_dict=False):
        v = encoder_hidden_states[:, 0, 0].view(-1, 1, 1, 1)
        return (0.1 * sample + v * self.mask,)


class FakePipe:
    def __init__(self, mask):
        self.unet = FakeUNet(mask)
        self.tokenizer = clip_tokenizer()
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        self.scheduler = SimpleNamespace(alphas_cumprod=torch.cumprod(1 - betas, 0), config=SimpleNamespace(prediction_type="epsilon"))
        self.vae_scale_factor = 4

    def encode_prompt(self, text, device, n, cfg):
        e = torch.zeros(1, 77, 4)
        e[0, 0, 0] = 1.0 if "red" in text.split() else 0.0
        return e, None


@pytest.fixture
def fake():
    mask = torch.zeros(1, 1, H, W)
    mask[..., 2:5, 3:7] = 1.0  # 12 pixels
    return FakePipe(mask)


def test_orthogonal_estimate_matches_closed_form(fake):
    lat = torch.randn(1, 4, H, W, generator=torch.Generator().manual_seed(0))
    est = pointwise_mi(fake, lat, {"red": ("a circle", "a red circle")}, n_samples=256, batch=64)["red"]
    expected = 0.5 * 12.0 * 4 * 12  # ½ · interval length · channels · mask pixels
    assert est.value == pytest.approx(expected, rel=0.02)
    m = est.latent_map
    assert float(m[2:5, 3:7].sum()) == pytest.approx(est.value)
    outside = m.clone()
    outside[2:5, 3:7] = 0
    assert float(outside.abs().max()) == 0.0


def test_pid_of_a_used_and_an_ignored_word(fake):
    lat = torch.randn(1, 4, H, W, generator=torch.Generator().manual_seed(1))
    est = estimate_pid(fake, lat, "a red circle", "red", "circle", n_samples=64, batch=64)
    im = est.image
    assert im.i2 == 0.0 and im.redundancy == 0.0 and im.unique2 == 0.0
    assert im.i12 == pytest.approx(im.i1) and im.unique1 == pytest.approx(im.i1)
    assert im.synergy == pytest.approx(0.0, abs=1e-9)
    assert est.pixel.i1.shape == (H * 4, W * 4)
    assert float(est.pixel.i1.sum()) == pytest.approx(im.i1)
