"""Stage ``unet``: the UNet2DConditionModel on cached VAE latents; exports the whole pipeline.

The UNet is tied to the VAE encoder and text encoder it starts with: they are frozen as copies in
``WORK/unet/{vae,text_encoder}``, and the latents of the training renders are computed once
(``WORK/unet/latents-<n>-<encoder fingerprint>.pt``). Exported weights are the EMA.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data as D
from ..models import scheduler_kwargs, unet_kwargs
from .captions import varied_caption
from .config import ResolvedConfig
from .export import replace_dir, save_half_precision, staging, training_meta, write_json
from .loop import EMA, load_tensors, log, run_loop, save_tensors, setup
from .tokenizer import load_tokenizer

MIX_TEXT = {"render": "50% object scenes, 50% faces with the documented bias",
            "binding": "30% faces with the documented bias, 40% two-object scenes, 30% object scenes of 1-4 objects"}


def encoder_fingerprint(vae: Any) -> str:
    """A short hash of the VAE encoder's weights (names the latent cache; detects a changed encoder)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(vae.encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


#: training scene mixes: per render index, (family, number of objects or None = the renderer's draw)
#: "render": the renderer's own draw (50 % faces with the documented bias, 50 % object scenes);
#: "binding": 30 % faces (same bias), 40 % two-object scenes, 30 % the renderer's object scenes.
SCENE_MIXES = ("render", "binding")


def scene_kind(mix: str, index: int) -> tuple[str | None, int | None]:
    """(family, n_objects) of training render ``index`` under ``mix`` (deterministic in the index)."""
    if mix == "render":
        return None, None
    if mix != "binding":
        raise ValueError(f"unknown scene mix {mix!r}; expected one of {SCENE_MIXES}")
    u = (index * 0.6180339887498949) % 1.0  # golden-ratio sequence: the shares hold in every chunk
    return ("face", None) if u < 0.3 else ("objects", 2) if u < 0.7 else ("objects", None)


def prepare_latents(cfg: ResolvedConfig, vae: Any) -> dict[str, Any]:
    """Render the UNet's training set once and cache its VAE latents (mean, std), captions and labels."""
    fp = encoder_fingerprint(vae)
    mix = "" if cfg.scene_mix == "render" else f"-{cfg.scene_mix}"
    path = Path(cfg.work) / "unet" / f"latents-{cfg.n_latents}{mix}-{fp}.pt"
    if path.exists():
        return load_tensors(path)
    log.info(f"unet: encoding {cfg.n_latents} training renders with the VAE (once) -> {path}")
    base = D.TRAIN_BASE + D.STAGE_OFFSET["unet"]
    means: list[torch.Tensor] = []
    stds: list[torch.Tensor] = []
    caps: list[list[str]] = []
    fams: list[str] = []
    labels: list[dict[str, Any]] = []
    from tqdm import tqdm

    from ..render import render

    chunk = 256
    for s in tqdm(range(0, cfg.n_latents, chunk), desc="latents", disable=not cfg.progress):
        renders = []
        for i in range(s, min(s + chunk, cfg.n_latents)):
            family, n_objects = scene_kind(cfg.scene_mix, i)
            renders.append(render(base + i, family, n_objects=n_objects))
        imgs = D.to_tensor(np.stack([r.image for r in renders]))
        with torch.no_grad():
            post = vae.encode(imgs.to(cfg.device) * 2 - 1).latent_dist
        means.append(post.mean.half().cpu())
        stds.append(post.std.half().cpu())
        caps.extend(r.captions for r in renders)
        fams.extend(r.labels["family"] for r in renders)
        labels.extend(r.labels for r in renders)
    blob = {"mean": torch.cat(means), "std": torch.cat(stds), "captions": caps, "families": fams,
            "labels": labels, "encoder": fp, "seeds": [base, base + cfg.n_latents], "scene_mix": cfg.scene_mix}
    save_tensors(blob, path)
    return blob


def training_caption(captions: list[str], labels: dict[str, Any], rng: np.random.Generator, varied: float) -> str:
    """One of the render's captions, or (object scenes, with probability ``varied``) a varied one."""
    if labels["family"] == "objects" and rng.random() < varied:
        return varied_caption(labels, rng).text
    return captions[int(rng.integers(len(captions)))]


def min_snr_weights(alphas_cumprod: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Per-timestep weights of the epsilon-prediction loss: min(SNR(t), gamma) / SNR(t).

    SNR(t) = alpha_bar / (1 - alpha_bar). Min-SNR-gamma (Hang et al., ICCV 2023) stops the
    nearly-noiseless steps from dominating the gradient; ``gamma=None`` gives weight 1 (plain MSE).
    """
    snr = alphas_cumprod.double() / (1 - alphas_cumprod.double())
    if gamma is None:
        return torch.ones_like(snr, dtype=torch.float32)
    return (snr.clamp(max=gamma) / snr).float()


def train_unet(cfg: ResolvedConfig) -> dict[str, Any]:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    setup(cfg)
    out = Path(cfg.out)
    for need in ("pipeline/vae", "pipeline/text_encoder", "clip"):
        if not (out / need).is_dir():
            raise FileNotFoundError(f"unet stage needs {out / need}: run the vae and clip stages first")
    tok = load_tokenizer(out)
    # The UNet is tied to the VAE encoder and the text encoder it starts with: freeze copies in the
    # work dir, so a resumed run (or a later vae/clip run) cannot change them underneath it.
    wdir = Path(cfg.work) / "unet"
    for sub in ("vae", "text_encoder"):
        if not (wdir / sub).is_dir():
            wdir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(out / "pipeline" / sub, wdir / sub)
            log.info(f"unet: froze {out / 'pipeline' / sub} as {wdir / sub}")
    vae = AutoencoderKL.from_pretrained(str(wdir / "vae")).to(cfg.device).eval()
    te = CLIPTextModel.from_pretrained(str(wdir / "text_encoder"), torch_dtype=torch.float32)
    # train on the numbers that ship: the exported text encoder is stored in fp16
    te = te.half().float().to(cfg.device).eval().requires_grad_(False)
    cache = prepare_latents(cfg, vae)
    sf = float(vae.config.scaling_factor)
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        # a fine-tune: start from a trained UNet (the checkpoint, once written, takes over on resume)
        unet = UNet2DConditionModel.from_pretrained(cfg.init_from, torch_dtype=torch.float32).to(cfg.device)
    else:
        unet = UNet2DConditionModel(**unet_kwargs(cfg.size, cross_dim=te.config.hidden_size)).to(cfg.device)
    ema = EMA(unet, cfg.ema)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = DDPMScheduler(**scheduler_kwargs())
    snr_weight = min_snr_weights(sched.alphas_cumprod, cfg.snr_gamma)
    n = cache["mean"].shape[0]
    mean, std, captions = cache["mean"], cache["std"], cache["captions"]
    scene_labels = cache.get("labels")
    if cfg.varied_captions and scene_labels is None:
        raise ValueError(f"unet: --varied-captions needs scene labels in the latent cache; delete the old cache in "
                         f"{wdir} to re-encode")

    def encode_text(texts: list[str]) -> torch.Tensor:
        ids = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids.to(cfg.device))[0]

    def step_fn(step: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (cfg.batch,), generator=g)
        z = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=g)) * sf
        rng = np.random.default_rng([cfg.seed, step])
        texts = []
        for i in idx.tolist():
            if rng.random() < cfg.cfg_dropout:
                texts.append("")
            elif cfg.varied_captions and scene_labels is not None:
                texts.append(training_caption(captions[i], scene_labels[i], rng, cfg.varied_captions))
            else:
                texts.append(captions[i][int(rng.integers(len(captions[i])))])
        emb = encode_text(texts)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch,), generator=g)
        zt = sched.add_noise(z, noise, t)
        lr = cfg.lr * min(1.0, (step + 1) / 200)
        if cfg.lr_decay_steps:
            lr *= min(1.0, (cfg.steps - step) / cfg.lr_decay_steps)
        for grp in opt.param_groups:
            grp["lr"] = lr
        unet.train()
        pred = unet(zt.to(cfg.device), t.to(cfg.device), emb).sample
        per_sample = (pred - noise.to(cfg.device)).pow(2).mean(dim=(1, 2, 3))
        loss = (per_sample * snr_weight[t].to(cfg.device)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update(unet)
        return {"loss": loss.item()}

    def export(step: int, elapsed: float) -> None:
        export_pipeline(unet, ema, out, tok, cfg)
        training_meta(out, "unet_fine_tune" if cfg.init_from else "unet", {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                     "wall_time_s": round(elapsed), "device": cfg.device,
                                     "ema_decay": cfg.ema, "cfg_dropout": cfg.cfg_dropout,
                                     "lr_schedule": (f"constant after 200 warm-up steps, linear decay to 0 over "
                                                     f"the last {cfg.lr_decay_steps} steps") if cfg.lr_decay_steps
                                                    else "constant after 200 warm-up steps",
                                     "loss": f"epsilon MSE, min-SNR-{cfg.snr_gamma} weighting"
                                             if cfg.snr_gamma else "epsilon MSE",
                                     "train_renders": n, "params": sum(p.numel() for p in unet.parameters()),
                                     "data": f"{n} renders ({MIX_TEXT[cfg.scene_mix]}), a random caption of "
                                             f"each per step, {cfg.cfg_dropout:.0%} empty captions"
                                             + (f", {cfg.varied_captions:.0%} of object scenes captioned in "
                                                "shuffled order with varied joins" if cfg.varied_captions else ""),
                                     **({"fine_tuned_from": cfg.init_from} if cfg.init_from else {})})
        log.info(f"unet: exported step {step} (EMA weights) to {out}/pipeline")

    return run_loop(cfg, "unet", {"model": unet, "opt": opt, "ema": ema}, step_fn, export)


def export_pipeline(unet, ema: EMA | None, out: Path, tok, cfg: ResolvedConfig) -> None:
    """Write pipeline/unet (EMA weights, fp16 on disk), pipeline/scheduler and model_index.json."""
    import copy

    from diffusers import PNDMScheduler, UNet2DConditionModel

    export = UNet2DConditionModel.from_config(unet.config)
    if ema is not None:
        ema.copy_to(export)
    else:
        export.load_state_dict(copy.deepcopy(unet.state_dict()))
    stage = staging(out, "unet")
    # fp16 on disk keeps the shipped weights small; diffusers loads it as fp32 unless told otherwise
    export.to("cpu").half().save_pretrained(str(stage), safe_serialization=True)
    replace_dir(stage, out / "pipeline" / "unet")
    wdir = Path(cfg.work) / "unet"
    te_stage = staging(out, "text_encoder")
    from transformers import CLIPTextModel

    # fp16 on disk: the same numbers as the text tower of clip/ (also fp16 on disk)
    save_half_precision(CLIPTextModel.from_pretrained(str(wdir / "text_encoder"), torch_dtype=torch.float32), te_stage)
    replace_dir(te_stage, out / "pipeline" / "text_encoder")
    from diffusers import AutoencoderKL

    frozen = AutoencoderKL.from_pretrained(str(wdir / "vae"))
    shipped = out / "pipeline" / "vae"
    if not shipped.is_dir() or encoder_fingerprint(AutoencoderKL.from_pretrained(str(shipped))) != encoder_fingerprint(frozen):
        vae_stage = staging(out, "vae")
        shutil.rmtree(vae_stage)
        shutil.copytree(wdir / "vae", vae_stage)
        replace_dir(vae_stage, shipped)
    sched = PNDMScheduler(**scheduler_kwargs(), skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    sched.save_pretrained(str(out / "pipeline" / "scheduler"))
    tok_dir = out / "pipeline" / "tokenizer"
    if not (tok_dir / "vocab.json").exists():
        tok.save_pretrained(str(tok_dir))
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": __import__("diffusers").__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    write_json(out / "pipeline" / "model_index.json", index)
