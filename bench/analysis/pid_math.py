"""DiffusionPID's maths on tensors: the pointwise-MI estimator and the partial information decomposition.

Estimator (Kong et al., ICLR 2024; used by DiffusionPID, Dewan et al. 2024):

    i(x; y | c) = 1/2 ∫ E_ε ‖ε̂(x_α | c) − ε̂(x_α | c, y)‖² dα            ("orthogonal")
    i(x; y | c) = 1/2 ∫ E_ε [‖ε − ε̂(x_α | c)‖² − ‖ε − ε̂(x_α | c, y)‖²] dα ("mmse", noisier)

with ``α`` the log-SNR and ``x_α = sqrt(σ(α)) x + sqrt(σ(−α)) ε`` (σ the logistic sigmoid, so
``σ(α)`` is DDPM's ``ᾱ``). Units: nats, ``x`` being the VAE latent (scaled by the VAE's
``scaling_factor``), summed over latent channels and pixels.

Integration over α: importance sampling from a logistic(loc=1, scale=2) truncated to the
standardised range ``|α − loc| / scale <= clip`` with ``clip=3`` — i.e. α ∈ [−5, 7], the
convention of Kong et al.'s code (``clip`` bounds the standardised variable, not α itself).
Each sample carries the weight ``1 / q(α)`` of the truncated density, so the sample mean of
``w · f(α)`` is an unbiased estimate of ``∫ f dα`` over that range. Quantiles are stratified
(one uniform draw per stratum) unless ``stratified=False``.

Mapping α to the model: ``x_α`` uses the exact σ(±α); the timestep fed to the UNet is the
fractional ``t`` where the scheduler's ``log(ᾱ_t / (1 − ᾱ_t))`` equals α (linear interpolation
over the training timesteps; clamped to [0, T−1]). For SD's scaled-linear schedule the range
[−5, 7] lies inside [−5.4, 7.1]. ``v_prediction`` models are converted to ε.

Pixel level: the per-latent-pixel squared error (summed over channels) instead of the total,
upsampled bilinearly to the image size and rescaled so the map's sum equals the image-level
value (nats per image pixel).

PID of two terms from pointwise mutual information values: DiffusionPID's decomposition
(Williams–Beer lattice with an I_min-style redundancy), applied to pointwise values
``i1 = i(x; y1)``, ``i2 = i(x; y2)``, ``i12 = i(x; y1, y2)``:

    R  = min(i1, i2)                 redundancy
    U1 = i1 - R,  U2 = i2 - R        unique information of each term
    S  = i12 - U1 - U2 - R           synergy

So ``U1 + R = i1``, ``U2 + R = i2`` and ``R + U1 + U2 + S = i12`` hold exactly, and one of U1, U2
is zero. ``U1, U2 >= 0`` always; ``R >= 0`` whenever ``i1, i2 >= 0`` (always true for the
orthogonal estimator, a squared norm); ``S`` has no sign constraint (negative synergy means the
two terms together tell the denoiser less than the sum of what they tell alone). The PID works
elementwise on floats, numpy arrays or torch tensors of one shape (per-pixel maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

ESTIMATORS = ("orthogonal", "mmse")


# -- log-SNR sampling ---------------------------------------------------------------------------
def logsnr_samples(
    n: int,
    loc: float = 1.0,
    scale: float = 2.0,
    clip: float = 3.0,
    generator: torch.Generator | None = None,
    stratified: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` log-SNR values from the truncated logistic and their importance weights (float64).

    ``mean(weights * f(logsnr))`` estimates ``∫ f(α) dα`` over ``[loc − clip·scale, loc + clip·scale]``;
    for ``f = 1`` it is exactly that interval's length up to sampling noise
    (``E[w] = 2·clip·scale``).
    """
    if n < 1:
        raise UserError(f"n_samples: {n}; expected >= 1")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if stratified:
        u = (torch.arange(n, dtype=torch.float64) + u) / n
    lo, hi = torch.sigmoid(torch.tensor(-clip, dtype=torch.float64)), torch.sigmoid(torch.tensor(clip, dtype=torch.float64))
    p = lo + (hi - lo) * u
    z = torch.logit(p)
    logsnr = loc + scale * z
    # truncated logistic density q(α) = σ(z)σ(−z) / (scale · (σ(c) − σ(−c)))
    weights = scale * (hi - lo) / (torch.sigmoid(z) * torch.sigmoid(-z))
    return logsnr, weights


def schedule_logsnr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """``log(ᾱ_t / (1 − ᾱ_t))`` per training timestep (float64, decreasing in t)."""
    a = alphas_cumprod.double()
    return torch.log(a) - torch.log1p(-a)


def logsnr_to_timestep(logsnr: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Fractional training timestep whose schedule log-SNR equals ``logsnr`` (clamped to range)."""
    table = schedule_logsnr(alphas_cumprod)  # decreasing
    rev = table.flip(0)  # increasing, index j <-> t = T-1-j
    x = logsnr.double().clamp(rev[0].item(), rev[-1].item())
    j = torch.searchsorted(rev, x).clamp(1, len(rev) - 1)
    x0, x1 = rev[j - 1], rev[j]
    frac = (x - x0) / (x1 - x0).clamp_min(1e-12)
    jf = (j - 1).double() + frac
    return (len(rev) - 1) - jf


# -- the pointwise-MI integrand and estimate ----------------------------------------------------
def noisy_latents(x0: torch.Tensor, logsnr: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``x_α = sqrt(σ(α)) x + sqrt(σ(−α)) ε`` per log-SNR sample: x0 (1, C, h, w), logsnr (B,) float64,
    eps (B, C, h, w) → (B, C, h, w) float32."""
    return torch.sigmoid(logsnr).sqrt().float().view(-1, 1, 1, 1) * x0 + torch.sigmoid(-logsnr).sqrt().float().view(-1, 1, 1, 1) * eps


def mi_integrand(eps_base: torch.Tensor, eps_cond: torch.Tensor, eps: torch.Tensor, weights: torch.Tensor,
                 estimator: str = "orthogonal") -> torch.Tensor:
    """Importance-weighted integrand per sample and latent pixel, (B, h, w) float64 nats:
    ``1/2 · w · ‖ε̂(·|base) − ε̂(·|cond)‖²`` ("orthogonal") or ``1/2 · w · (‖ε − ε̂(·|base)‖² −
    ‖ε − ε̂(·|cond)‖²)`` ("mmse"), squared norms over channels. Inputs (B, C, h, w); weights (B,)."""
    eb, ec = eps_base.double(), eps_cond.double()
    if estimator == "orthogonal":
        err = ((eb - ec) ** 2).sum(1)
    else:
        e = eps.double()
        err = ((e - eb) ** 2).sum(1) - ((e - ec) ** 2).sum(1)
    return 0.5 * weights.view(-1, 1, 1) * err


@dataclass
class MIEstimate:
    """One pointwise-MI estimate: ``value`` (nats), its Monte-Carlo standard error, and the
    per-latent-pixel map ``(h, w)`` (nats; sums to ``value``)."""

    value: float
    stderr: float
    latent_map: torch.Tensor
    base: str
    cond: str

    def pixel_map(self, size: tuple[int, int]) -> torch.Tensor:
        return upsample_mass(self.latent_map, size)


def upsample_mass(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of a (h, w) density that keeps its sum (float64)."""
    h, w = m.shape
    up = F.interpolate(m.double()[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    s = up.sum()
    return up * (m.sum() / s) if s.abs() > 0 else up


def mi_estimate(per_sample: torch.Tensor, map_sum: torch.Tensor, base: str, cond: str) -> MIEstimate:
    """The estimate from the integrand's per-sample totals (n,) and its map summed over samples (h, w):
    the sample mean, its standard error (NaN for one sample) and the mean map."""
    n = len(per_sample)
    se = float(per_sample.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return MIEstimate(float(per_sample.mean()), se, map_sum / n, base, cond)


# -- the PID of two terms ----------------------------------------------------------------------


@dataclass
class PID:
    """The four PID atoms plus the three inputs; each a float or an array of one shape."""

    redundancy: Any
    unique1: Any
    unique2: Any
    synergy: Any
    i1: Any
    i2: Any
    i12: Any

    def as_dict(self) -> dict[str, Any]:
        return dict(
            redundancy=self.redundancy, unique1=self.unique1, unique2=self.unique2,
            synergy=self.synergy, i1=self.i1, i2=self.i2, i12=self.i12,
        )


def _minimum(a: Any, b: Any) -> Any:
    if hasattr(a, "detach") or hasattr(b, "detach"):
        import torch

        return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
    out = np.minimum(a, b)
    return float(out) if np.ndim(out) == 0 else out


def pid_from_pmi(i1: Any, i2: Any, i12: Any) -> PID:
    """The PID atoms from pointwise MI of each term and of both (see module doc)."""
    r = _minimum(i1, i2)
    u1 = i1 - r
    u2 = i2 - r
    s = i12 - u1 - u2 - r
    return PID(redundancy=r, unique1=u1, unique2=u2, synergy=s, i1=i1, i2=i2, i12=i12)
