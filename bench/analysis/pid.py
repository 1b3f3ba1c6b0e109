"""DiffusionPID: pointwise mutual information of prompt terms with an image, via the denoiser.

The estimator's maths (log-SNR sampling and weights, the integrand, the pixel maps) is in
:mod:`.pid_math`; this module runs it through a pipeline's UNet.

Conditioning convention (this project's choice, documented here and in every CSV): a term ``y``
is a word or phrase of the prompt. For two terms y1, y2 of prompt P, the context ``c`` is P with
both terms dropped, and

    i(x; y1)     := i(x; y1 | c)  with  ε̂(·|c)  vs  ε̂(·|P without y2)
    i(x; y2)     := i(x; y2 | c)  with  ε̂(·|c)  vs  ε̂(·|P without y1)
    i(x; y1, y2) := i(x; y1, y2 | c)  with  ε̂(·|c)  vs  ε̂(·|P)

"dropped" = deleted from the text (``mode="remove"``, default, as DiffusionPID conditions on
prompts with and without words) or each token replaced by ``<|endoftext|>`` (``mode="mask"``,
positions kept). All conditions of one estimate share the same x, α samples and noise ε, so a
term whose removal leaves the text embedding unchanged, or a model that ignores the text,
gives exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..errors import UserError
from .pid_math import (
    ESTIMATORS,
    PID,
    MIEstimate,
    logsnr_samples,
    logsnr_to_timestep,
    mi_estimate,
    mi_integrand,
    noisy_latents,
    pid_from_pmi,
)
from .tokens import drop_terms


# -- the pipeline as a denoiser -----------------------------------------------------------------
def _is_sdxl(pipe: Any) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


@dataclass
class Condition:
    """What the UNet needs for one text: ``encoder_hidden_states`` (1, L, D), SDXL extras."""

    text: str
    hidden: torch.Tensor
    pooled: torch.Tensor | None = None


def encode_texts(pipe: Any, texts: Sequence[str]) -> dict[str, Condition]:
    """Encode each distinct text once with the pipeline's own ``encode_prompt`` (no CFG)."""
    out: dict[str, Condition] = {}
    device = pipe.unet.device
    with torch.no_grad():
        for text in dict.fromkeys(texts):
            if _is_sdxl(pipe):
                emb, _, pooled, _ = pipe.encode_prompt(
                    text, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
                )
                out[text] = Condition(text, emb, pooled)
            else:
                emb, _ = pipe.encode_prompt(text, device, 1, False)
                out[text] = Condition(text, emb)
    return out


def _alphas_cumprod(pipe: Any) -> torch.Tensor:
    a = getattr(pipe.scheduler, "alphas_cumprod", None)
    if a is None:
        raise UserError(
            f"scheduler {type(pipe.scheduler).__name__}: no alphas_cumprod; expected a DDPM-family "
            "scheduler (the estimator maps log-SNR to its timesteps)"
        )
    return torch.as_tensor(a).double()


def _pooled(c: Condition) -> torch.Tensor:
    if c.pooled is None:
        raise ValueError(f"condition {c.text!r} has no pooled text embedding (needed by SDXL)")
    return c.pooled


def _eps(pipe: Any, x_t: torch.Tensor, t: torch.Tensor, conds: Sequence[Condition], alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε̂ for every condition at the same noisy latents: returns (n_cond, B, C, h, w)."""
    b = x_t.shape[0]
    k = len(conds)
    unet = pipe.unet
    dtype = unet.dtype
    sample = x_t.repeat(k, 1, 1, 1).to(dtype)
    timesteps = t.repeat(k).to(device=unet.device, dtype=torch.float32)
    hidden = torch.cat([c.hidden.expand(b, -1, -1) for c in conds]).to(dtype)
    kwargs: dict[str, Any] = {}
    if _is_sdxl(pipe):
        h, w = x_t.shape[-2:]
        factor = getattr(pipe, "vae_scale_factor", 8)
        hh, ww = h * factor, w * factor
        pooled = torch.cat([_pooled(c).expand(b, -1) for c in conds]).to(dtype)
        time_ids = torch.tensor([[hh, ww, 0, 0, hh, ww]], dtype=dtype, device=unet.device).repeat(b * k, 1)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    out = unet(sample, timesteps, encoder_hidden_states=hidden, return_dict=False, **kwargs)[0].float()
    if getattr(pipe.scheduler.config, "prediction_type", "epsilon") == "v_prediction":
        ab = alpha_bar.repeat(k).view(-1, 1, 1, 1).float().to(out.device)
        out = ab.sqrt() * out + (1 - ab).sqrt() * sample.float()
    elif getattr(pipe.scheduler.config, "prediction_type", "epsilon") != "epsilon":
        raise UserError(f"prediction_type {pipe.scheduler.config.prediction_type!r}: expected 'epsilon' or 'v_prediction'")
    return out.view(k, b, *out.shape[1:])


def pointwise_mi(
    pipe: Any,
    latents: torch.Tensor,
    pairs: Mapping[str, tuple[str, str]],
    *,
    n_samples: int = 64,
    batch: int = 16,
    seed: int = 0,
    estimator: str = "orthogonal",
    loc: float = 1.0,
    scale: float = 2.0,
    clip: float = 3.0,
) -> dict[str, MIEstimate]:
    """``{name: i(x; cond | base)}`` for ``pairs = {name: (base text, cond text)}``.

    ``latents``: (1, C, h, w) VAE latents of the image (scaled by ``scaling_factor``).
    ``n_samples`` log-SNR/noise samples (shared by all pairs), evaluated ``batch`` at a time;
    ``seed`` seeds α and ε (CPU generator).
    """
    if estimator not in ESTIMATORS:
        raise UserError(f"estimator: {estimator!r}; expected one of {ESTIMATORS}")
    if latents.ndim != 4 or latents.shape[0] != 1:
        raise ValueError(f"latents must be (1, C, h, w); got {tuple(latents.shape)}")
    texts = [t for pair in pairs.values() for t in pair]
    conds = encode_texts(pipe, texts)
    order = list(conds)
    index = {t: i for i, t in enumerate(order)}
    gen = torch.Generator("cpu").manual_seed(int(seed))
    logsnr, weights = logsnr_samples(n_samples, loc, scale, clip, generator=gen)
    ac = _alphas_cumprod(pipe)
    timesteps = logsnr_to_timestep(logsnr, ac)
    x0 = latents.detach().float().cpu()
    _, c, h, w = x0.shape
    per_sample = {name: torch.zeros(n_samples, dtype=torch.float64) for name in pairs}
    maps = {name: torch.zeros(h, w, dtype=torch.float64) for name in pairs}
    with torch.no_grad():
        for start in range(0, n_samples, batch):
            sl = slice(start, min(start + batch, n_samples))
            a = logsnr[sl]
            nb = a.shape[0]
            eps = torch.randn(nb, c, h, w, generator=gen)
            ab = torch.sigmoid(a)
            x_t = noisy_latents(x0, a, eps)
            pred = _eps(pipe, x_t.to(pipe.unet.device), timesteps[sl], [conds[t] for t in order], ab).cpu()
            for name, (base, cond) in pairs.items():
                contrib = mi_integrand(pred[index[base]], pred[index[cond]], eps, weights[sl], estimator)
                per_sample[name][sl] = contrib.sum((1, 2))
                maps[name] += contrib.sum(0)
    return {name: mi_estimate(per_sample[name], maps[name], base, cond) for name, (base, cond) in pairs.items()}


# -- images -------------------------------------------------------------------------------------
def generate_latents(
    pipe: Any, prompt: str, seed: int, *, steps: int = 25, guidance: float = 5.0, height: int = 64, width: int = 64
) -> tuple[torch.Tensor, Any]:
    """Generate one image; return its VAE latents (1, C, h, w; scaled) and the decoded PIL image."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    with torch.no_grad():
        lat = pipe(
            prompt=prompt, num_inference_steps=steps, guidance_scale=guidance, height=height, width=width,
            generator=gen, output_type="latent",
        ).images
        image = decode_latents(pipe, lat)
    return lat.detach().float().cpu(), image


def decode_latents(pipe: Any, latents: torch.Tensor) -> Any:
    from ..placement import upcast_vae

    with torch.no_grad(), upcast_vae(pipe.vae) as vae:
        img = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(img.float(), output_type="pil")[0]


def encode_image(pipe: Any, image: Any) -> torch.Tensor:
    """VAE latents (posterior mean, scaled) of a PIL image at its own size."""
    from ..placement import upcast_vae

    with torch.no_grad(), upcast_vae(pipe.vae) as vae:
        x = pipe.image_processor.preprocess(image).to(vae.device, vae.dtype)
        lat = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    return lat.float().cpu()


# -- the PID of two terms -----------------------------------------------------------------------
@dataclass
class PIDEstimate:
    """Image-level PID (floats, nats) and pixel-level PID maps ((H, W) float64, nats/pixel)."""

    prompt: str
    term1: str
    term2: str
    texts: dict[str, str]
    image: PID
    pixel: PID
    stderr: dict[str, float] = field(default_factory=dict)


def pid_texts(tokenizer: Any, prompt: str, term1: str, term2: str, mode: str = "remove") -> dict[str, str]:
    """The four conditioning texts of the module doc: context, +y1, +y2, full."""
    return {
        "context": drop_terms(tokenizer, prompt, [term1, term2], mode).text,
        "with_y1": drop_terms(tokenizer, prompt, [term2], mode).text,
        "with_y2": drop_terms(tokenizer, prompt, [term1], mode).text,
        "full": prompt,
    }


def estimate_pid(
    pipe: Any,
    latents: torch.Tensor,
    prompt: str,
    term1: str,
    term2: str,
    *,
    image_size: tuple[int, int] | None = None,
    mode: str = "remove",
    **kwargs: Any,
) -> PIDEstimate:
    """PID of ``term1``, ``term2`` of ``prompt`` about the image with ``latents`` (see module doc).

    ``kwargs`` go to :func:`pointwise_mi` (``n_samples``, ``batch``, ``seed``, ``estimator``...).
    ``image_size`` (H, W) of the pixel maps; default: latent size × the VAE scale factor.
    """
    texts = pid_texts(pipe.tokenizer, prompt, term1, term2, mode)
    est = pointwise_mi(
        pipe, latents,
        {"i1": (texts["context"], texts["with_y1"]), "i2": (texts["context"], texts["with_y2"]),
         "i12": (texts["context"], texts["full"])},
        **kwargs,
    )
    if image_size is None:
        f = getattr(pipe, "vae_scale_factor", 8)
        image_size = (latents.shape[-2] * f, latents.shape[-1] * f)
    image = pid_from_pmi(est["i1"].value, est["i2"].value, est["i12"].value)
    pixel = pid_from_pmi(*(est[k].pixel_map(image_size) for k in ("i1", "i2", "i12")))
    return PIDEstimate(prompt, term1, term2, texts, image, pixel, {k: v.stderr for k, v in est.items()})


def pid_over_seeds(
    pipe: Any,
    prompt: str,
    term1: str,
    term2: str,
    *,
    image_seeds: Iterable[int] = (0,),
    estimator_seeds: Iterable[int] = (0,),
    steps: int = 25,
    guidance: float = 5.0,
    height: int = 64,
    width: int = 64,
    **kwargs: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Any, PIDEstimate]]]:
    """Generate one image per image seed from ``prompt``, estimate the PID with each estimator
    seed; return CSV rows (one per (image seed, estimator seed)) and ``[(image, PIDEstimate)]``
    (the first estimator seed per image, for figures)."""
    pid_texts(pipe.tokenizer, prompt, term1, term2, kwargs.get("mode", "remove"))  # bad terms fail before any work
    rows: list[dict[str, Any]] = []
    figures = []
    for s_img in image_seeds:
        lat, image = generate_latents(pipe, prompt, s_img, steps=steps, guidance=guidance, height=height, width=width)
        for j, s_est in enumerate(estimator_seeds):
            est = estimate_pid(pipe, lat, prompt, term1, term2, image_size=(height, width), seed=s_est, **kwargs)
            rows.append(pid_row(est, image_seed=s_img, estimator_seed=s_est, **_row_params(kwargs)))
            if j == 0:
                figures.append((image, est))
    return rows, figures


def _row_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("n_samples", "estimator", "mode")
    return {k: kwargs[k] for k in keep if k in kwargs}


def pid_row(est: PIDEstimate, **extra: Any) -> dict[str, Any]:
    d = est.image.as_dict()
    return {
        "prompt": est.prompt, "term1": est.term1, "term2": est.term2,
        **{k: float(v) for k, v in d.items()},
        **{f"stderr_{k}": v for k, v in est.stderr.items()},
        "context_text": est.texts["context"], **extra,
    }


def summarise(rows: Sequence[Mapping[str, Any]], by: Sequence[str] = ("prompt", "term1", "term2")) -> list[dict[str, Any]]:
    """Mean, standard deviation and count of the PID terms over rows grouped by ``by``."""
    import pandas as pd

    if not rows:
        return []
    df = pd.DataFrame(rows)
    cols = ["redundancy", "unique1", "unique2", "synergy", "i1", "i2", "i12"]
    g = df.groupby(list(by), sort=False)[cols]
    mean, std, n = g.mean(), g.std(ddof=1), g.size()
    out = []
    for key in mean.index:
        key_t = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key_t, strict=True))
        row["n"] = int(n.loc[key])
        for c in cols:
            row[f"{c}_mean"] = float(mean.loc[key, c])
            row[f"{c}_std"] = float(std.loc[key, c]) if row["n"] > 1 else float("nan")
        out.append(row)
    return out


def bias_probe(
    pipe: Any,
    subject: str,
    prompts: Mapping[str, str],
    *,
    image_seeds: Iterable[int] = (0,),
    estimator_seeds: Iterable[int] = (0,),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Redundancy between a neutral subject word and each category word of a sensitive attribute.

    ``prompts``: ``{category word: prompt containing subject and that word}`` — e.g. the hard
    prompts of a fairness prompt set, ``{"smiling": "a headshot of a person smiling", ...}``.
    For each category the image is generated from its prompt (each image seed) and the PID of
    (subject, category word) estimated. A higher redundancy R for one category means the model
    already reads that category into the subject: the bias DiffusionPID's probe looks for.
    Returns rows (per category, image seed, estimator seed) with a ``category`` column.
    """
    rows = []
    seeds_img, seeds_est = list(image_seeds), list(estimator_seeds)
    for category, prompt in prompts.items():
        r, _ = pid_over_seeds(pipe, prompt, subject, category, image_seeds=seeds_img, estimator_seeds=seeds_est, **kwargs)
        for row in r:
            row["category"] = category
        rows.extend(r)
    return rows
