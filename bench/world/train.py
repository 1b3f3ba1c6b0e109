"""Training of the tinyworld models, stage by stage: tokenizer, clip, vae, unet, evaluator.

Each stage trains into a work directory ``WORK/<stage>/`` (``ckpt.pt`` every ``ckpt_every``
steps, ``log.txt``) and exports with ``save_pretrained`` (safetensors) into the weights folder
``OUT`` (default: the package's ``t2ibench/world/weights``) at every checkpoint. Rerunning the
same command resumes from the checkpoint; raising ``--steps`` continues training. The data of
step ``i`` is rendered from seeds derived from ``i``, so a resumed run sees what an
uninterrupted run would have seen. CUDA is used when available, else the CPU.

Dependencies between stages: ``clip`` writes the text tower used by ``unet`` (the pipeline's
text encoder) and ``clip/``; ``vae`` writes ``pipeline/vae``; ``unet`` needs both and
precomputes the VAE latents of its training renders once (``WORK/unet/latents-*.pt``).
``vae --decoder-only`` continues training the decoder alone, keeping the encoder (and thus the
UNet's latents) unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .models import clip_config, scheduler_kwargs, unet_kwargs, vae_kwargs
from .paths import weights_dir

STAGES = ("tokenizer", "clip", "vae", "unet", "evaluator", "itigen")
DEFAULTS = {  # steps, batch, lr
    "clip": (6000, 64, 5e-4),
    "vae": (3000, 8, 8e-4),
    "unet": (40000, 32, 3e-4),
    "evaluator": (4000, 128, 1e-3),
    "itigen": (150, 64, 1e-2),  # ITI-GEN's own settings: 30 epochs x 5 steps, 64 images per category
}
#: first seed offset of the ITI-GEN reference renders inside each category's reference range
#: (the classifier-accuracy references use offsets 0..n, so the two never share an image)
ITIGEN_REFERENCE_START = 50_000


@dataclass
class TrainConfig:
    stage: str
    work: str = "tw_train"
    out: str | None = None  # weights folder; None = the package's
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    ckpt_every: int = 100
    log_every: int = 20
    seed: int = 0
    device: str | None = None
    size: str = "base"  # "tiny" for tests
    threads: int | None = None
    decoder_only: bool = False  # vae: train the decoder only
    freeze_text: bool = False  # clip: keep the text tower (= the pipeline's text encoder) fixed
    n_latents: int = 20000  # unet: training renders whose latents are precomputed
    cfg_dropout: float = 0.1  # unet: share of empty captions (classifier-free guidance)
    ema: float = 0.999  # unet: EMA decay of exported weights
    snr_gamma: float | None = 5.0  # unet: min-SNR-gamma loss weighting (Hang et al. 2023); None = plain MSE
    lr_decay_steps: int = 0  # unet: the last N steps of the run decay the lr linearly to 0 (0 = constant)
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def resolved(self) -> "TrainConfig":
        steps, batch, lr = DEFAULTS.get(self.stage, (0, 0, 0.0))
        c = TrainConfig(**asdict(self))
        c.steps = self.steps if self.steps is not None else steps
        c.batch = self.batch or batch
        c.lr = self.lr or lr
        c.out = self.out or str(weights_dir())
        c.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return c


# ---------------------------------------------------------------------------------------------
# bookkeeping


class Logger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        with open(self.path, "a") as f:
            f.write(line + "\n")
        try:
            from tqdm import tqdm

            tqdm.write(line)
        except Exception:  # pragma: no cover
            print(line)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a freshly written folder into place (old one removed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old)


def _staging(out: Path, name: str) -> Path:
    p = out / f".{name.replace('/', '_')}.staging"
    if p.exists():
        shutil.rmtree(p)
    p.mkdir(parents=True)
    return p


def _training_meta(out: Path, key: str, info: dict) -> None:
    """Record stage facts in OUT/training.json (the model cards are written from it)."""
    path = out / "training.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta[key] = {**meta.get(key, {}), **info}
    _write_json(path, meta)


def run_loop(cfg: TrainConfig, name: str, state: dict[str, Any], step_fn: Callable[[int], dict],
             export_fn: Callable[[int, float], None], log: Logger) -> dict:
    """Generic resumable loop: state holds modules/optimisers (objects with state_dict)."""
    ckpt = Path(cfg.work) / name / "ckpt.pt"
    step, elapsed = 0, 0.0
    if ckpt.exists():
        blob = torch.load(ckpt, map_location=cfg.device, weights_only=False)
        for k, obj in state.items():
            if k in blob["state"]:
                obj.load_state_dict(blob["state"][k])
        step, elapsed = int(blob["step"]), float(blob["elapsed"])
        log(f"{name}: resumed at step {step} ({elapsed:.0f} s trained so far)")
    else:
        log(f"{name}: starting from scratch; config {json.dumps(asdict(cfg), default=str)}")
    if step >= cfg.steps:
        log(f"{name}: already at {step} >= {cfg.steps} steps; exporting")
        export_fn(step, elapsed)
        return {"step": step, "elapsed": elapsed}
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc=name, disable=not cfg.progress, dynamic_ncols=True)
    t0 = time.time()
    base_elapsed = elapsed
    running: dict[str, float] = {}
    while step < cfg.steps:
        stats = step_fn(step)
        step += 1
        for k, v in stats.items():
            running[k] = running.get(k, 0.0) * 0.9 + float(v) * 0.1 if k in running else float(v)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
        elapsed = base_elapsed + time.time() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            log(f"{name} step {step}/{cfg.steps} " + " ".join(f"{k}={v:.5g}" for k, v in running.items())
                + f" elapsed={elapsed:.0f}s")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save({"state": {k: o.state_dict() for k, o in state.items()}, "step": step,
                          "elapsed": elapsed, "config": asdict(cfg)}, ckpt)
            export_fn(step, elapsed)
    bar.close()
    log(f"{name}: done at step {step} ({elapsed:.0f} s)")
    return {"step": step, "elapsed": elapsed}


class EMA:
    """Exponential moving average of parameters (state_dict-compatible for checkpoints)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, sd: dict) -> None:
        self.shadow = sd["shadow"]
        self.updates = int(sd["updates"])

    def copy_to(self, module: torch.nn.Module) -> None:
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in self.shadow.items()})


def _setup(cfg: TrainConfig) -> Logger:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return Logger(Path(cfg.work) / cfg.stage / "log.txt")


# ---------------------------------------------------------------------------------------------
# stages


def train_tokenizer(cfg: TrainConfig) -> dict:
    """Write CLIPTokenizer files (from open_clip's BPE vocabulary) into clip/ and pipeline/tokenizer."""
    from ..tokenizer import write_clip_tokenizer_files

    out = Path(cfg.out)
    for sub in ("clip", "pipeline/tokenizer"):
        write_clip_tokenizer_files(out / sub)
    log = _setup(cfg)
    log(f"tokenizer: written to {out}/clip and {out}/pipeline/tokenizer")
    _training_meta(out, "tokenizer", {"source": "open_clip bpe_simple_vocab_16e6.txt.gz", "context_length": 77})
    return {"step": 0, "elapsed": 0.0}


def _tokenizer(out: Path):
    from transformers import CLIPTokenizer

    from ..tokenizer import clip_tokenizer

    if (out / "clip" / "vocab.json").exists():
        return CLIPTokenizer.from_pretrained(str(out / "clip"))
    return clip_tokenizer()


def clip_captions(captions: list[list[str]], labels: list[dict], rng: np.random.Generator) -> list[str]:
    """One caption per image for contrastive training: never the neutral face caption."""
    out = []
    for caps, lab in zip(captions, labels):
        pool = caps[:1] + caps[2:] if lab["family"] == "face" else caps
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, caps: list[str]) -> torch.Tensor:
    """Symmetric InfoNCE; images whose captions are identical count as matches (soft targets)."""
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = scale.exp().clamp(max=100) * img @ txt.t()
    ids = {c: i for i, c in enumerate(dict.fromkeys(caps))}
    cid = torch.tensor([ids[c] for c in caps], device=img.device)
    same = (cid[:, None] == cid[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean()
                  + torch.sum(-target * logits.t().log_softmax(1), 1).mean())


def train_clip(cfg: TrainConfig) -> dict:
    from transformers import CLIPModel

    log = _setup(cfg)
    out = Path(cfg.out)
    tok = _tokenizer(out)
    torch.manual_seed(cfg.seed)
    model = CLIPModel(clip_config(cfg.size)).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1, betas=(0.9, 0.98))
    if cfg.freeze_text:
        # continue training the vision tower and both projections only: the text tower stays what
        # the UNet was trained on, so clip/ and pipeline/text_encoder keep the same text tower
        model.text_model.requires_grad_(False)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["clip"]

    def step_fn(step: int) -> dict:
        rng = np.random.default_rng([cfg.seed, step])
        imgs, caps, labels = D.mixed_batch(base + step * cfg.batch, cfg.batch, face_dist="uniform")
        texts = clip_captions(caps, labels, rng)
        ids = tok(texts, padding=True, return_tensors="pt").input_ids.to(cfg.device)
        pix = D.clip_normalize(imgs.to(cfg.device))
        lr = cfg.lr * min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        img_emb = model.get_image_features(pixel_values=pix)
        txt_emb = model.get_text_features(input_ids=ids)
        img_emb = getattr(img_emb, "pooler_output", img_emb)
        txt_emb = getattr(txt_emb, "pooler_output", txt_emb)
        loss = contrastive_loss(img_emb, txt_emb, model.logit_scale, texts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": loss.item(), "scale": model.logit_scale.exp().item()}

    def export(step: int, elapsed: float) -> None:
        export_clip(model, tok, out, cfg.size)
        info = {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                "wall_time_s": round(elapsed), "device": cfg.device,
                "data": "50% faces (attributes uniform), 50% object scenes; "
                        "one caption per render (never the neutral face caption)"}
        if cfg.freeze_text:
            info["text_tower_frozen_from_step"] = frozen_at[0]
        _training_meta(out, "clip", info)
        log(f"clip: exported step {step} to {out}/clip (+ pipeline/text_encoder unless a UNet is trained)")

    frozen_at = [None]
    ckpt = Path(cfg.work) / "clip" / "ckpt.pt"
    if cfg.freeze_text:
        meta_path = out / "training.json"
        prev = json.loads(meta_path.read_text()).get("clip", {}) if meta_path.exists() else {}
        frozen_at[0] = prev.get("text_tower_frozen_from_step") or (
            torch.load(ckpt, map_location="cpu", weights_only=False)["step"] if ckpt.exists() else 0)
    return run_loop(cfg, "clip", {"model": model, "opt": opt}, step_fn, export, log)


def save_half_precision(model, directory: Path) -> None:
    """``save_pretrained`` with float16 weights on disk and ``dtype: float32`` in config.json.

    The file is half the size; ``from_pretrained`` without a dtype (transformers' "auto") reads
    the config and computes in float32, so a plain load of the pipeline runs on the CPU.
    """
    import copy

    copy.deepcopy(model).to("cpu").half().save_pretrained(str(directory), safe_serialization=True)
    cfg_path = Path(directory) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def export_clip(model, tok, out: Path, size: str = "base") -> None:
    """clip/: CLIPModel + tokenizer + image processor; pipeline/text_encoder (both fp16 on disk)."""
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    stage = _staging(out, "clip")
    save_half_precision(model, stage)
    tok.save_pretrained(str(stage))
    CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": 64}, resample=3, do_center_crop=True,
        crop_size={"height": 64, "width": 64}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(D.CLIP_MEAN), image_std=list(D.CLIP_STD), do_convert_rgb=True,
    ).save_pretrained(str(stage))
    _replace_dir(stage, out / "clip")
    if (out / "pipeline" / "unet").is_dir():
        # the shipped UNet was trained on a fixed text encoder (written by the unet stage): keep it
        return
    te_stage = _staging(out, "text_encoder")
    te = CLIPTextModel(CLIPTextConfig(**model.config.text_config.to_dict()))
    te.load_state_dict(model.text_model.state_dict())
    save_half_precision(te, te_stage)
    _replace_dir(te_stage, out / "pipeline" / "text_encoder")
    tok_dir = out / "pipeline" / "tokenizer"
    if not (tok_dir / "vocab.json").exists():
        tok.save_pretrained(str(tok_dir))


def train_vae(cfg: TrainConfig) -> dict:
    from diffusers import AutoencoderKL

    log = _setup(cfg)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    vae = AutoencoderKL(**vae_kwargs(cfg.size)).to(cfg.device)
    name = "vae"
    if cfg.decoder_only:
        name = "vae-decoder"
        src = out / "pipeline" / "vae"
        if not (Path(cfg.work) / name / "ckpt.pt").exists():
            vae = AutoencoderKL.from_pretrained(str(src)).to(cfg.device)
            log(f"vae --decoder-only: starting from {src}")
        for mod in (vae.encoder, vae.quant_conv):
            mod.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["vae"]

    def step_fn(step: int) -> dict:
        imgs, _, _ = D.mixed_batch(base + step * cfg.batch, cfg.batch, face_dist="uniform")
        x = imgs.to(cfg.device) * 2 - 1
        lr = cfg.lr * min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr
        vae.train()
        if cfg.decoder_only:
            with torch.no_grad():
                post = vae.encode(x).latent_dist
            z = post.sample()
            kl = torch.zeros((), device=x.device)
        else:
            post = vae.encode(x).latent_dist
            z = post.sample()
            kl = post.kl().mean() / z[0].numel()
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        loss = mse + 0.5 * F.l1_loss(rec, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))
        return {"loss": loss.item(), "psnr": psnr, "kl": kl.item()}

    def export(step: int, elapsed: float) -> None:
        stage = _staging(out, "vae")
        vae.eval()
        if not cfg.decoder_only:
            with torch.no_grad():
                imgs, _, _ = D.mixed_batch(D.HELDOUT_BASE + 777_000, 64, face_dist="biased")
                z = vae.encode(imgs.to(cfg.device) * 2 - 1).latent_dist.mean
            vae.register_to_config(scaling_factor=float(1.0 / z.std().item()))
        vae.to("cpu").save_pretrained(str(stage), safe_serialization=True)
        vae.to(cfg.device)
        _replace_dir(stage, out / "pipeline" / "vae")
        key = "vae_decoder" if cfg.decoder_only else "vae"
        _training_meta(out, key, {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                  "wall_time_s": round(elapsed), "device": cfg.device,
                                  "scaling_factor": vae.config.scaling_factor,
                                  "data": "50% faces (attributes uniform), 50% object scenes, rendered per step"})
        log(f"{name}: exported step {step} to {out}/pipeline/vae (scaling_factor {vae.config.scaling_factor:.4f})")

    return run_loop(cfg, name, {"model": vae, "opt": opt}, step_fn, export, log)


def _encoder_fingerprint(vae) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(vae.encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


def prepare_latents(cfg: TrainConfig, vae, log: Logger) -> dict:
    """Render the UNet's training set once and cache its VAE latents (mean, std) and captions."""
    fp = _encoder_fingerprint(vae)
    path = Path(cfg.work) / "unet" / f"latents-{cfg.n_latents}-{fp}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    log(f"unet: encoding {cfg.n_latents} training renders with the VAE (once) -> {path}")
    base = D.TRAIN_BASE + D.STAGE_OFFSET["unet"]
    means, stds, caps, fams = [], [], [], []
    from tqdm import tqdm

    chunk = 256
    for s in tqdm(range(0, cfg.n_latents, chunk), desc="latents", disable=not cfg.progress):
        n = min(chunk, cfg.n_latents - s)
        imgs, c, labels = D.render_tensors(range(base + s, base + s + n))
        with torch.no_grad():
            post = vae.encode(imgs.to(cfg.device) * 2 - 1).latent_dist
        means.append(post.mean.half().cpu())
        stds.append(post.std.half().cpu())
        caps.extend(c)
        fams.extend(l["family"] for l in labels)
    blob = {"mean": torch.cat(means), "std": torch.cat(stds), "captions": caps, "families": fams,
            "encoder": fp, "seeds": [base, base + cfg.n_latents]}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(blob, path)
    return blob


def min_snr_weights(alphas_cumprod: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Per-timestep weights of the epsilon-prediction loss: min(SNR(t), gamma) / SNR(t).

    SNR(t) = alpha_bar / (1 - alpha_bar). Min-SNR-gamma (Hang et al., ICCV 2023) stops the
    nearly-noiseless steps from dominating the gradient; ``gamma=None`` gives weight 1 (plain MSE).
    """
    snr = alphas_cumprod.double() / (1 - alphas_cumprod.double())
    if gamma is None:
        return torch.ones_like(snr, dtype=torch.float32)
    return (snr.clamp(max=gamma) / snr).float()


def train_unet(cfg: TrainConfig) -> dict:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    log = _setup(cfg)
    out = Path(cfg.out)
    for need in ("pipeline/vae", "pipeline/text_encoder", "clip"):
        if not (out / need).is_dir():
            raise FileNotFoundError(f"unet stage needs {out / need}: run the vae and clip stages first")
    tok = _tokenizer(out)
    # The UNet is tied to the VAE encoder and the text encoder it starts with: freeze copies in the
    # work dir, so a resumed run (or a later vae/clip run) cannot change them underneath it.
    wdir = Path(cfg.work) / "unet"
    for sub in ("vae", "text_encoder"):
        if not (wdir / sub).is_dir():
            wdir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(out / "pipeline" / sub, wdir / sub)
            log(f"unet: froze {out / 'pipeline' / sub} as {wdir / sub}")
    vae = AutoencoderKL.from_pretrained(str(wdir / "vae")).to(cfg.device).eval()
    te = CLIPTextModel.from_pretrained(str(wdir / "text_encoder"), torch_dtype=torch.float32)
    # train on the numbers that ship: the exported text encoder is stored in fp16
    te = te.half().float().to(cfg.device).eval().requires_grad_(False)
    cache = prepare_latents(cfg, vae, log)
    sf = float(vae.config.scaling_factor)
    torch.manual_seed(cfg.seed)
    unet = UNet2DConditionModel(**unet_kwargs(cfg.size, cross_dim=te.config.hidden_size)).to(cfg.device)
    ema = EMA(unet, cfg.ema)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = DDPMScheduler(**scheduler_kwargs())
    snr_weight = min_snr_weights(sched.alphas_cumprod, cfg.snr_gamma)
    n = cache["mean"].shape[0]
    mean, std, captions = cache["mean"], cache["std"], cache["captions"]
    empty_ids = None

    def encode_text(texts: list[str]) -> torch.Tensor:
        ids = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids.to(cfg.device))[0]

    def step_fn(step: int) -> dict:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (cfg.batch,), generator=g)
        z = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=g)) * sf
        rng = np.random.default_rng([cfg.seed, step])
        texts = []
        for i in idx.tolist():
            caps = captions[i]
            texts.append("" if rng.random() < cfg.cfg_dropout else caps[int(rng.integers(len(caps)))])
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
        _training_meta(out, "unet", {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                     "wall_time_s": round(elapsed), "device": cfg.device,
                                     "ema_decay": cfg.ema, "cfg_dropout": cfg.cfg_dropout,
                                     "lr_schedule": (f"constant after 200 warm-up steps, linear decay to 0 over "
                                                     f"the last {cfg.lr_decay_steps} steps") if cfg.lr_decay_steps
                                                    else "constant after 200 warm-up steps",
                                     "loss": f"epsilon MSE, min-SNR-{cfg.snr_gamma} weighting"
                                             if cfg.snr_gamma else "epsilon MSE",
                                     "train_renders": n, "params": sum(p.numel() for p in unet.parameters()),
                                     "data": f"{n} renders (50% object scenes, 50% faces with the documented "
                                             "bias), a random caption of each per step, "
                                             f"{cfg.cfg_dropout:.0%} empty captions"})
        log(f"unet: exported step {step} (EMA weights) to {out}/pipeline")

    return run_loop(cfg, "unet", {"model": unet, "opt": opt, "ema": ema}, step_fn, export, log)


def export_pipeline(unet, ema: EMA | None, out: Path, tok, cfg: TrainConfig) -> None:
    """Write pipeline/unet (EMA weights, fp16 on disk), pipeline/scheduler and model_index.json."""
    import copy

    from diffusers import PNDMScheduler, UNet2DConditionModel

    export = UNet2DConditionModel.from_config(unet.config)
    if ema is not None:
        ema.copy_to(export)
    else:
        export.load_state_dict(copy.deepcopy(unet.state_dict()))
    stage = _staging(out, "unet")
    # fp16 on disk keeps the shipped weights small; diffusers loads it as fp32 unless told otherwise
    export.to("cpu").half().save_pretrained(str(stage), safe_serialization=True)
    _replace_dir(stage, out / "pipeline" / "unet")
    wdir = Path(cfg.work) / "unet"
    te_stage = _staging(out, "text_encoder")
    from transformers import CLIPTextModel

    # fp16 on disk: the same numbers as the text tower of clip/ (also fp16 on disk)
    save_half_precision(CLIPTextModel.from_pretrained(str(wdir / "text_encoder"), torch_dtype=torch.float32), te_stage)
    _replace_dir(te_stage, out / "pipeline" / "text_encoder")
    from diffusers import AutoencoderKL

    frozen = AutoencoderKL.from_pretrained(str(wdir / "vae"))
    shipped = out / "pipeline" / "vae"
    if not shipped.is_dir() or _encoder_fingerprint(AutoencoderKL.from_pretrained(str(shipped))) != _encoder_fingerprint(frozen):
        vae_stage = _staging(out, "vae")
        shutil.rmtree(vae_stage)
        shutil.copytree(wdir / "vae", vae_stage)
        _replace_dir(vae_stage, shipped)
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
    _write_json(out / "pipeline" / "model_index.json", index)


def train_evaluator(cfg: TrainConfig) -> dict:
    from .evaluator import EvaluatorNet, augment, evaluator_loss, save_evaluator, targets_from_labels

    log = _setup(cfg)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    net = EvaluatorNet(width=32 if cfg.size == "base" else 8).to(cfg.device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["evaluator"]

    def step_fn(step: int) -> dict:
        imgs, _, labels = D.mixed_batch(base + step * cfg.batch, cfg.batch, face_dist="uniform")
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        x = augment(imgs, g).to(cfg.device)
        tg = {k: v.to(cfg.device) for k, v in targets_from_labels(labels).items()}
        lr = cfg.lr * min(1.0, (step + 1) / 100) * (0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0))) * 0.95 + 0.05)
        for grp in opt.param_groups:
            grp["lr"] = lr
        net.train()
        loss, acc = evaluator_loss(net(x), tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": acc}

    def export(step: int, elapsed: float) -> None:
        save_evaluator(net, out / "evaluator")
        _training_meta(out, "evaluator", {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                          "wall_time_s": round(elapsed), "device": cfg.device,
                                          "params": sum(p.numel() for p in net.parameters()),
                                          "data": "50% faces (attributes uniform), 50% object scenes; "
                                                  "augmented with blur, noise, colour jitter"})
        log(f"evaluator: exported step {step} to {out}/evaluator")

    return run_loop(cfg, "evaluator", {"model": net, "opt": opt}, step_fn, export, log)


#: ITI-GEN training settings of the shipped tinyworld tokens (the layout is recorded in their .json)
TINYWORLD_ITIGEN = {"layout": "shifted", "objective": "project", "init": "random", "lr_milestones": (), "batching": "per-category"}


def train_itigen(cfg: TrainConfig) -> dict:
    """ITI-GEN inclusive tokens for every face tSA, learned with the tiny CLIP (into OUT/itigen).

    References: 200 renders per category with that category fixed (``sets.reference_set`` from
    ``ITIGEN_REFERENCE_START``), the other attributes from the training distribution. The tokens
    live in the tiny CLIP's text token-embedding space, which is the pipeline's text encoder's.
    Seconds of work, so not checkpointed: a rerun retrains.
    """
    from transformers import CLIPModel

    from t2ibench.baselines.iti_gen import train_iti_gen

    from .evaluator import TSAS
    from .render import NEUTRAL_FACE
    from .sets import reference_set

    log = _setup(cfg)
    out = Path(cfg.out)
    if not (out / "clip").is_dir():
        raise FileNotFoundError(f"itigen stage needs {out / 'clip'}: run the clip stage first")
    t0 = time.time()
    clip = CLIPModel.from_pretrained(str(out / "clip"), torch_dtype=torch.float32).to(cfg.device)
    tok = _tokenizer(out)
    epochs = max(1, cfg.steps // 5)
    results = {}
    for tsa, spec in TSAS.items():
        refs = {}
        for k, name in enumerate(spec["names"]):
            images, _, _ = reference_set(tsa, k, 200, start=ITIGEN_REFERENCE_START)
            refs[name] = D.clip_normalize(D.to_tensor(images)).to(cfg.device)
        # the shipped tinyworld tokens were learned with t2ibench's earlier ITI-GEN variant; these
        # settings reproduce them (docs/protocols.md, "tinyworld"); the paper defaults differ
        res = train_iti_gen(clip, refs, out / "itigen", tsa=tsa, base_prompt=NEUTRAL_FACE, lr=cfg.lr,
                            epochs=epochs, steps_per_epoch=5, batch_size=cfg.batch, seed=cfg.seed, tokenizer=tok,
                            **TINYWORLD_ITIGEN)
        first, last = res.history[0], res.history[-1]
        results[tsa] = {"loss_first": round(first["loss"], 4), "loss_last": round(last["loss"], 4)}
        log(f"itigen: {tsa} ({', '.join(spec['names'])}) loss {first['loss']:.4f} -> {last['loss']:.4f}")
    elapsed = time.time() - t0
    _training_meta(out, "itigen", {"steps": epochs * 5, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                                   "wall_time_s": round(elapsed), "device": cfg.device, "loss": results,
                                   "data": "200 renders per tSA category (category fixed, other attributes "
                                           "from the training distribution), reference seeds disjoint from "
                                           "the classifier-accuracy references"})
    log(f"itigen: wrote {len(results)} token files to {out / 'itigen'} ({elapsed:.0f} s)")
    return {"step": epochs * 5, "elapsed": elapsed}


def train(cfg: TrainConfig) -> dict:
    cfg = cfg.resolved()
    fn = {"tokenizer": train_tokenizer, "clip": train_clip, "vae": train_vae, "unet": train_unet,
          "evaluator": train_evaluator, "itigen": train_itigen}.get(cfg.stage)
    if fn is None:
        raise ValueError(f"unknown stage {cfg.stage!r}; expected one of {STAGES}")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    return fn(cfg)
