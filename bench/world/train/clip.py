"""Stage ``clip``: the tiny CLIP, trained contrastively on render/caption pairs.

Exports ``OUT/clip`` (CLIPModel, tokenizer, image processor; fp16 on disk) and, until a UNet is
trained on it, ``OUT/pipeline/text_encoder`` (the text tower). ``--freeze-text`` continues with
the text tower fixed (it is then the trained UNet's text encoder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from ..models import clip_config
from .config import ResolvedConfig
from .export import replace_dir, save_half_precision, staging, training_meta
from .loop import checkpoint_path, load_tensors, log, run_loop, setup
from .token_loss import TokenHeads, object_caption_batch, token_loss
from .tokenizer import load_tokenizer


def clip_captions(captions: list[list[str]], labels: list[dict], rng: np.random.Generator) -> list[str]:
    """One caption per image for contrastive training: never the neutral face caption."""
    out = []
    for caps, lab in zip(captions, labels, strict=True):
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


def train_clip(cfg: ResolvedConfig) -> dict[str, Any]:
    from transformers import CLIPModel

    setup(cfg)
    out = Path(cfg.out)
    tok = load_tokenizer(out)
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        # a fine-tune: start from a trained CLIP (the checkpoint, once written, takes over on resume)
        model = CLIPModel.from_pretrained(cfg.init_from, torch_dtype=torch.float32).to(cfg.device)
    else:
        model = CLIPModel(clip_config(cfg.size)).to(cfg.device)
    heads = TokenHeads(model.config.text_config.hidden_size).to(cfg.device)
    params = list(model.parameters()) + (list(heads.parameters()) if cfg.token_loss else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.1, betas=(0.9, 0.98))
    if cfg.freeze_text:
        # continue training the vision tower and both projections only: the text tower stays what
        # the UNet was trained on, so clip/ and pipeline/text_encoder keep the same text tower
        model.text_model.requires_grad_(False)
    base = D.TRAIN_BASE + D.STAGE_OFFSET["clip"]

    def step_fn(step: int) -> dict[str, Any]:
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
        stats = {"loss": loss.item(), "scale": model.logit_scale.exp().item()}
        if cfg.token_loss:
            tok_loss, tok_stats = token_loss(model.text_model, heads, tok, object_caption_batch(cfg.token_batch, rng))
            loss = loss + cfg.token_loss * tok_loss
            stats.update(tok_stats)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return stats

    def export(step: int, elapsed: float) -> None:
        export_clip(model, tok, out, cfg.size, replace_text_encoder=cfg.replace_text_encoder)
        info = {"steps": step, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                "wall_time_s": round(elapsed), "device": cfg.device,
                "data": "50% faces (attributes uniform), 50% object scenes; "
                        "one caption per render (never the neutral face caption)"}
        if cfg.init_from:
            info["fine_tuned_from"] = cfg.init_from
        if cfg.token_loss:
            info["token_objective"] = (f"weight {cfg.token_loss}, {cfg.token_batch} varied object captions a step: "
                                       "own colour/shape read-outs + penalty on earlier objects' colour/shape "
                                       "share in later objects' words (train/token_loss.py)")
        if cfg.freeze_text:
            info["text_tower_frozen_from_step"] = frozen_at[0]
        training_meta(out, "clip_fine_tune" if cfg.init_from else "clip", info)
        log.info(f"clip: exported step {step} to {out}/clip (+ pipeline/text_encoder unless a UNet is trained)")

    frozen_at: list[int | None] = [None]
    ckpt = checkpoint_path(cfg, "clip")
    if cfg.freeze_text:
        meta_path = out / "training.json"
        prev = json.loads(meta_path.read_text()).get("clip", {}) if meta_path.exists() else {}
        frozen_at[0] = prev.get("text_tower_frozen_from_step") or (
            load_tensors(ckpt, map_location="cpu")["step"] if ckpt.exists() else 0)
    state = {"model": model, "opt": opt, **({"token_heads": heads} if cfg.token_loss else {})}
    return run_loop(cfg, "clip", state, step_fn, export)


def export_clip(model, tok, out: Path, size: str = "base", replace_text_encoder: bool = False) -> None:
    """clip/: CLIPModel + tokenizer + image processor; pipeline/text_encoder (both fp16 on disk).

    The pipeline's text encoder is left as it is when a UNet is trained on it, unless
    ``replace_text_encoder`` (the UNet must then be trained or fine-tuned on the new one)."""
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    stage = staging(out, "clip")
    save_half_precision(model, stage)
    tok.save_pretrained(str(stage))
    CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": 64}, resample=3, do_center_crop=True,
        crop_size={"height": 64, "width": 64}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(D.CLIP_MEAN), image_std=list(D.CLIP_STD), do_convert_rgb=True,
    ).save_pretrained(str(stage))
    replace_dir(stage, out / "clip")
    if (out / "pipeline" / "unet").is_dir() and not replace_text_encoder:
        # the shipped UNet was trained on a fixed text encoder (written by the unet stage): keep it
        return
    te_stage = staging(out, "text_encoder")
    te = CLIPTextModel(CLIPTextConfig(**model.config.text_config.to_dict()))
    te.load_state_dict(model.text_model.state_dict())
    save_half_precision(te, te_stage)
    replace_dir(te_stage, out / "pipeline" / "text_encoder")
    tok_dir = out / "pipeline" / "tokenizer"
    if not (tok_dir / "vocab.json").exists():
        tok.save_pretrained(str(tok_dir))
