"""``t2ibench world eval``: the held-out figures of every tinyworld model, and the model cards.

Figures (all on renders from the held-out seed range, never trained on):
- evaluator: accuracy per attribute (family, background, per-cell shape incl. empty, per-cell
  colour and texture of occupied cells, object count, skin, hair, eyeglasses, smiling);
- tiny CLIP: zero-shot accuracy per face tSA on balanced faces (class prompts = the hard
  prompts, argmax of logit-scaled cosine similarity);
- VAE: reconstruction PSNR (dB, images in [0, 1], mean over images of per-image PSNR);
- text: the pipeline text encoder's selectivity (``text_probe``): per token of two-object
  captions, the held-out share of its variance explained by each object's colour;
- binding: two-object binding prompts (64 held-out prompts, 2 images each): both objects'
  shape and colour right, and both colours present;
- pipeline (vanilla, PNDM, ``steps`` steps, guidance ``guidance``): alignment accuracy per
  category by the evaluator (single-object colour prompts = "shape and colour right"),
  attribute-naming headshot prompts, the neutral prompt's FD per tSA next to the FD of a
  balanced set of renders and of the training distribution, binding / count / relation error
  rates. FD = ||p_hat - uniform||_2 over evaluator argmax predictions.
- itigen (the shipped ITI-GEN tokens on the shipped pipeline, same sampler): per tSA, the share
  of images the evaluator reads as the category whose tokens were used, and the FD of the
  balanced generation (image i uses category i % K) next to the neutral prompt's.

Results go to ``OUT/eval.json`` and into the model cards ``OUT/{pipeline,clip,evaluator,itigen}/README.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t2ibench.metrics.fairness import fairness_discrepancy

from ..fileio import atomic_write_text
from ..log import get_logger
from . import data as D
from .evaluator import TSAS, check_prompt, load_evaluator, targets_from_labels
from .modelcards import write_cards
from .paths import weights_dir
from .render import FACE_BIAS

log = get_logger(__name__)


@torch.inference_mode()
def eval_evaluator(out: Path, n: int = 2000) -> dict[str, Any]:
    from .sets import heldout

    ev = load_evaluator(out / "evaluator")
    imgs_o, _, lab_o = heldout(n // 2, "objects")
    imgs_f, _, lab_f = heldout(n - n // 2, "face", face_dist="uniform")
    labels = lab_o + lab_f
    x = D.to_tensor(np.concatenate([imgs_o, imgs_f]))
    lg = ev.logits(x)
    tg = targets_from_labels(labels)
    acc = {}
    for name in ("family", "background", "skin", "hair", "eyeglasses", "smiling"):
        valid = tg[name][:, 0] != -100
        acc[name] = float((lg[name][:, 0].argmax(-1) == tg[name][:, 0])[valid].float().mean())
    for name, key in (("cell_shape", "object_shape_per_cell"), ("cell_color", "object_color"),
                      ("cell_texture", "object_texture")):
        valid = tg[name] != -100
        acc[key] = float((lg[name].argmax(-1) == tg[name])[valid].float().mean())
    pred = ev.predict(x)
    n_obj = len(lab_o)
    acc["object_count"] = float(np.mean([pred["count"][i] == len(lab_o[i]["objects"]) for i in range(n_obj)]))
    acc["object_scene_exact"] = float(np.mean([
        sorted((o["row"], o["col"], o["shape"], o["color"], o["texture"]) for o in pred["objects"][i])
        == sorted((o["row"], o["col"], o["shape"], o["color"], o["texture"]) for o in lab_o[i]["objects"])
        for i in range(n_obj)]))
    per_attr = {k: v for k, v in acc.items() if k != "object_scene_exact"}
    return {"n_images": len(labels), "accuracy": acc, "min_attribute": min(per_attr.values()),
            "target": 0.97, "met": min(per_attr.values()) >= 0.97}


@torch.inference_mode()
def clip_zero_shot(model, tok, images01: torch.Tensor, class_prompts: list[str]) -> np.ndarray:
    """Argmax class index per image (logit-scaled cosine similarity)."""
    ids = tok(class_prompts, padding=True, return_tensors="pt").input_ids
    t = model.get_text_features(input_ids=ids)
    t = getattr(t, "pooler_output", t)
    preds = []
    for i in range(0, images01.shape[0], 256):
        v = model.get_image_features(pixel_values=D.clip_normalize(images01[i : i + 256]))
        v = getattr(v, "pooler_output", v)
        sim = torch.nn.functional.normalize(v, dim=-1) @ torch.nn.functional.normalize(t, dim=-1).t()
        preds.append((model.logit_scale.exp() * sim).argmax(-1))
    return torch.cat(preds).numpy()


def eval_clip(out: Path, n_per_category: int = 150) -> dict[str, Any]:
    from .clip import load_clip
    from .prompts import fairness_meta
    from .sets import reference_set

    model, tok = load_clip(out / "clip")
    acc = {}
    for tsa, spec in TSAS.items():
        meta = fairness_meta(tsa)
        correct = total = 0
        for k in range(len(spec["values"])):
            imgs, _, _ = reference_set(tsa, k, n_per_category, start=50_000)  # disjoint from ITI-GEN refs
            pred = clip_zero_shot(model, tok, D.to_tensor(imgs), meta["class_prompts"])
            correct += int((pred == k).sum())
            total += len(pred)
        acc[tsa] = correct / total
    return {"zero_shot_accuracy": acc, "class_prompts": "the tSA hard prompts (tinyworld-fairness class_prompts)",
            "n_per_category": n_per_category, "min": min(acc.values()), "target": 0.90,
            "met": min(acc.values()) >= 0.90}


@torch.inference_mode()
def eval_vae(out: Path, n: int = 256) -> dict[str, Any]:
    from diffusers import AutoencoderKL

    from .sets import heldout

    vae = AutoencoderKL.from_pretrained(str(out / "pipeline" / "vae")).eval()
    imgs, _, _ = heldout(n)
    x = D.to_tensor(imgs)
    psnr = []
    for i in range(0, n, 64):
        b = x[i : i + 64]
        rec = vae.decode(vae.encode(b * 2 - 1).latent_dist.mode()).sample.clamp(-1, 1) * 0.5 + 0.5
        mse = (rec - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        psnr.extend((10 * torch.log10(1.0 / mse)).tolist())
    return {"psnr_db": float(np.mean(psnr)), "psnr_db_median": float(np.median(psnr)), "n_images": n,
            "target": 28.0, "met": float(np.mean(psnr)) >= 28.0,
            "note": "latent = posterior mode; mean over images of per-image PSNR, pixels in [0, 1]"}


def eval_text(out: Path) -> dict[str, Any]:
    """Text selectivity (``world.text_probe``) of the pipeline's text encoder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from .text_probe import text_selectivity

    directory = out / "pipeline"
    if not (directory / "text_encoder" / "config.json").is_file():
        raise FileNotFoundError(f"no text encoder in {directory}")
    te = CLIPTextModel.from_pretrained(str(directory / "text_encoder"), torch_dtype=torch.float32).eval()
    return text_selectivity(te, CLIPTokenizer.from_pretrained(str(directory / "tokenizer")))


def eval_binding(out: Path, steps: int = 25, guidance: float = 5.0, n_prompts: int = 64,
                 images_per_prompt: int = 2, seed: int = 0) -> dict[str, Any]:
    """Two-object binding on ``n_prompts`` held-out binding prompts ("a red circle and a blue
    square"): the share of images with both objects' shape and colour right, and with both colours
    present (shape ignored), by the evaluator."""
    from .prompts import alignment_prompts

    pipe = _load_pipeline(out / "pipeline")
    ev = load_evaluator(out / "evaluator")
    items = alignment_prompts(categories=("binding",), per_category=n_prompts, sample_seed=seed)
    prompts = [text for _, text, _ in items for _ in range(images_per_prompt)]
    labels = [meta["labels"] for _, _, meta in items for _ in range(images_per_prompt)]
    seeds = [800_000 + i for i in range(len(prompts))]
    preds = ev.unbatch(ev.predict(sample_images(pipe, prompts, seeds, steps, guidance)))
    checks = [check_prompt(lab, p)["checks"] for lab, p in zip(labels, preds, strict=True)]
    return {"steps": steps, "guidance": guidance, "n_prompts": len(items), "n_images": len(prompts),
            "binding_accuracy": float(np.mean([c.get("objects", False) for c in checks])),
            "both_colors_present": float(np.mean([c.get("colors", False) for c in checks]))}


def _load_pipeline(directory: Path):
    """The pipeline folder under evaluation, in float32 on the CPU (where ``world eval`` runs)."""
    from ..models import load_pipeline

    return load_pipeline(str(directory), device="cpu", precision="fp32")


@torch.inference_mode()
def sample_images(pipe, prompts: list[str], seeds: list[int], steps: int, guidance: float, batch: int = 32) -> torch.Tensor:
    """The pipeline's images as one float tensor (N, 3, 64, 64) in [0, 1], kept in memory (unlike
    ``t2ibench.runner.generate``, which writes a run directory); one CPU generator per image
    seeded with its seed."""
    outs = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i : i + batch]]
        im = pipe(prompt=prompts[i : i + batch], num_inference_steps=steps, guidance_scale=guidance,
                  height=64, width=64, generator=gens, output_type="pt").images
        outs.append(im.float().cpu())
    return torch.cat(outs)


def eval_pipeline(out: Path, steps: int = 25, guidance: float = 5.0, per_category: int = 24,
                  images_per_prompt: int = 2, n_neutral: int = 128, seed: int = 0) -> dict[str, Any]:
    from .prompts import alignment_prompts, headshot_attribute_prompts
    from .sets import balanced_faces

    pipe = _load_pipeline(out / "pipeline")
    ev = load_evaluator(out / "evaluator")
    res: dict[str, Any] = {"steps": steps, "guidance": guidance, "scheduler": type(pipe.scheduler).__name__}
    t0 = time.time()
    # alignment categories
    items = alignment_prompts(per_category=per_category, sample_seed=seed)
    prompts, labels, cats, seeds = [], [], [], []
    for j, (_, text, meta) in enumerate(items):
        for k in range(images_per_prompt):
            prompts.append(text)
            labels.append(meta["labels"])
            cats.append(meta["category"])
            seeds.append(1000 * j + k)
    imgs = sample_images(pipe, prompts, seeds, steps, guidance)
    preds = ev.unbatch(ev.predict(imgs))
    checks = [check_prompt(lab, p) for lab, p in zip(labels, preds, strict=True)]
    per_cat: dict[str, list[bool]] = {}
    for c, ch in zip(cats, checks, strict=True):
        per_cat.setdefault(c, []).append(ch["correct"])
    res["alignment_accuracy"] = {c: float(np.mean(v)) for c, v in per_cat.items()}
    res["single_object_shape_and_color"] = res["alignment_accuracy"].get("color")
    rates: dict[str, list[bool]] = {}
    for ch in checks:
        for name, ok in ch["checks"].items():
            rates.setdefault(name, []).append(bool(ok))
    res["check_rates"] = {k: float(np.mean(v)) for k, v in sorted(rates.items())}
    res["single_object_color_right"] = float(np.mean([ch["checks"].get("colors", False)
                                                      for c, ch in zip(cats, checks, strict=True) if c == "color"]))
    two = [(c, ch) for c, ch in zip(cats, checks, strict=True) if c in ("binding", "location")]
    res["binding_error_rate"] = float(np.mean([not ch["checks"].get("objects", False) for c, ch in two if c == "binding"]))
    res["relation_error_rate"] = float(np.mean([not ch["checks"].get("relation", False) for c, ch in two if c == "location"]))
    cnt = [ch for c, ch in zip(cats, checks, strict=True) if c == "count"]
    res["count_error_rate"] = float(np.mean([not ch["checks"].get("count", False) for ch in cnt]))
    res["n_alignment_images"] = len(prompts)
    # attribute-naming headshot prompts
    hp = headshot_attribute_prompts()
    n_h = max(images_per_prompt * 4, 8)
    prompts = [t for t, _ in hp for _ in range(n_h)]
    hl = [lab for _, lab in hp for _ in range(n_h)]
    seeds = [500_000 + i for i in range(len(prompts))]
    imgs = sample_images(pipe, prompts, seeds, steps, guidance)
    preds = ev.unbatch(ev.predict(imgs))
    per_tsa: dict[str, list[bool]] = {}
    for lab, p in zip(hl, preds, strict=True):
        per_tsa.setdefault(lab["tsa"], []).append(check_prompt({k: v for k, v in lab.items() if k != "tsa"}, p)["correct"])
    res["headshot_attribute_accuracy"] = {k: float(np.mean(v)) for k, v in per_tsa.items()}
    res["headshot_attribute_accuracy_all"] = float(np.mean([x for v in per_tsa.values() for x in v]))
    # neutral prompt: bias
    imgs = sample_images(pipe, ["a headshot of a person"] * n_neutral, [900_000 + i for i in range(n_neutral)], steps, guidance)
    pred = ev.predict(imgs)
    res["neutral_face_share"] = float(np.mean([f == "face" for f in pred["family"]]))
    neutral = {}
    for tsa, spec in TSAS.items():
        k = len(spec["values"])
        idx = np.array([spec["values"].index(v) for v in pred[spec["key"]]])
        b_imgs, _, _ = balanced_faces(tsa, 4 * k * 16)
        b_pred = ev.predict(D.to_tensor(b_imgs))
        b_idx = np.array([spec["values"].index(v) for v in b_pred[spec["key"]]])
        p_train = np.array([FACE_BIAS[spec["key"]][v] for v in spec["values"]])
        neutral[tsa] = {
            "fd_neutral_prompt": fairness_discrepancy(idx.tolist(), k),
            "distribution_neutral_prompt": (np.bincount(idx, minlength=k) / len(idx)).round(4).tolist(),
            "fd_balanced_renders": fairness_discrepancy(b_idx.tolist(), k),
            "fd_training_distribution": float(np.linalg.norm(p_train - 1.0 / k)),
            "categories": list(spec["names"]),
        }
    res["neutral_prompt_fd"] = neutral
    res["n_neutral"] = n_neutral
    res["wall_time_s"] = round(time.time() - t0)
    res["targets"] = {"single_object_shape_and_color": 0.85, "headshot_attribute_accuracy_all": 0.80}
    res["met"] = {
        "single_object": (res["single_object_shape_and_color"] or 0) >= 0.85,
        "headshot_attributes": res["headshot_attribute_accuracy_all"] >= 0.80,
        "bias_reproduced": all(v["fd_neutral_prompt"] > v["fd_balanced_renders"] + 0.05 for v in neutral.values()),
    }
    return res


@torch.inference_mode()
def eval_itigen(out: Path, steps: int = 25, guidance: float = 5.0, per_category: int = 24) -> dict[str, Any]:
    from t2ibench.baselines.iti_gen import InclusiveTokens, encode_inclusive, tokens_path

    from .render import NEUTRAL_FACE

    pipe = _load_pipeline(out / "pipeline")
    ev = load_evaluator(out / "evaluator")
    res: dict[str, Any] = {"steps": steps, "guidance": guidance, "per_category": per_category, "tsas": {}}
    for tsa, spec in TSAS.items():
        tok = InclusiveTokens.load(tokens_path(out / "itigen", tsa))
        k = len(spec["values"])
        n = per_category * k
        cats = [i % k for i in range(n)]
        seeds = [700_000 + i for i in range(n)]
        images = []
        for s in range(0, n, 32):
            embeds = encode_inclusive(pipe, [NEUTRAL_FACE] * len(cats[s:s + 32]), [tok] * len(cats[s:s + 32]),
                                      cats[s:s + 32]).embeds
            gens = [torch.Generator("cpu").manual_seed(x) for x in seeds[s:s + 32]]
            images.append(pipe(**embeds.kwargs(), num_inference_steps=steps, guidance_scale=guidance, height=64,
                               width=64, generator=gens, output_type="pt").images.float().cpu())
        pred = ev.predict(torch.cat(images))
        idx = np.array([spec["values"].index(v) for v in pred[spec["key"]]])
        res["tsas"][tsa] = {
            "category_hit_rate": float(np.mean(idx == np.array(cats))),
            "fd_iti_gen": fairness_discrepancy(idx.tolist(), k),
            "distribution": (np.bincount(idx, minlength=k) / n).round(4).tolist(),
            "categories": list(spec["names"]),
            "n_images": n,
        }
    return res


PARTS = ("evaluator", "clip", "vae", "text", "binding", "pipeline", "itigen")


def run_eval(out: str | Path | None = None, parts=PARTS,
             quick: bool = False, steps: int = 25, guidance: float = 5.0, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    out = Path(out) if out else weights_dir()
    path = out / "eval.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    fns = {
        "evaluator": lambda: eval_evaluator(out, n=400 if quick else 2000),
        "clip": lambda: eval_clip(out, n_per_category=30 if quick else 150),
        "vae": lambda: eval_vae(out, n=64 if quick else 256),
        "text": lambda: eval_text(out),
        "binding": lambda: eval_binding(out, steps=steps, guidance=guidance, n_prompts=16 if quick else 64),
        "pipeline": lambda: eval_pipeline(out, steps=steps, guidance=guidance, per_category=4 if quick else 24,
                                          images_per_prompt=1 if quick else 2, n_neutral=16 if quick else 128),
        "itigen": lambda: eval_itigen(out, steps=steps, guidance=guidance, per_category=4 if quick else 24),
    }
    for part in parts:
        t0 = time.time()
        try:
            figures[part] = fns[part]()
        except FileNotFoundError as exc:
            figures[part] = {"not_available": str(exc)}
        figures[part]["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        figures[part]["eval_seconds"] = round(time.time() - t0, 1)
        figures[part]["quick"] = quick
        log.info(f"world eval: {part} measured in {figures[part]['eval_seconds']} s")
    atomic_write_text(path, json.dumps(figures, indent=2, default=float))
    write_cards(out, figures)
    return figures
