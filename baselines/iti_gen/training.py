"""Learning ITI-GEN inclusive tokens (``train_iti_gen``): CLIP image and text encoders frozen, only
the tokens learn; ``objective="reference"`` (default) follows ITI-GEN ``iti_gen/model.py``
(docs/protocols.md):

- direction loss over category pairs (i, j):
  ``1 − cos(normalise(ē_i − ē_j), normalise(t_i − t_j))`` with ``ē_k`` the mean of the
  L2-normalised CLIP image embeddings of the batch's category-k reference images and ``t_k``
  the L2-normalised CLIP text feature of the base prompt + category-k tokens;
- semantic consistency per pair: ``ReLU(λ − mean(cos(t_i, t_base), cos(t_j, t_base)))``, λ = 0.8;
- both summed over the pairs and divided by ``K − 1``; a NaN direction loss (identical or
  missing categories, e.g. at the zero initialisation) falls back to the cosine loss
  ``Σ_k (1 − mean cos(image of k, t_k))``;
- ``objective="project"``: t2ibench's own variant, which the shipped tinyworld tokens use (pairs summed, no division,
  semantic term per category ``ReLU(λ − cos(t_k, t_base))``);
- Adam, lr 0.01 halved after epoch 10 (``lr_milestones``, ``lr_gamma``), ``epochs ×
  steps_per_epoch`` = 30 × 5 steps; tokens initialised with zeros (``init="zeros"``; or
  ``"random"``: N(0, σ²), σ = std of the token-embedding table, seeded);
- batches (``batching="reference"``): each epoch the pooled references (at most
  ``max_images`` = 200 per category) are shuffled and cut into ``steps_per_epoch`` batches of
  ``N // steps_per_epoch``; ``"per-category"``: up to ``batch_size`` images of each category.

Any Hugging Face ``CLIPModel`` works; the tokens live in its text token-embedding space, so for
generation use a CLIP whose text encoder is the pipeline's (SD 1.4: openai/clip-vit-large-patch14)
or at least has its width.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from t2ibench.attention.text import LAYOUT_REFERENCE, LAYOUTS, as_token_embeddings, injected_tokens, token_layout
from t2ibench.baselines.iti_gen.tokens import InclusiveTokens
from t2ibench.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _features(out: Any) -> torch.Tensor:
    """CLIP ``get_*_features`` output → tensor (transformers 5 returns a ModelOutput)."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output


def _load_clip(clip: Any) -> tuple[Any, Any, Any]:
    """(CLIPModel, tokenizer, image processor) from a model or a local directory."""
    from transformers import CLIPImageProcessor, CLIPModel

    from t2ibench.tokenizer import clip_tokenizer

    directory = None
    if isinstance(clip, (str, Path)):
        directory = Path(clip)
        if not directory.is_dir():
            raise UserError(f"iti-gen: CLIP model directory {directory} not found; expected a local Hugging Face CLIPModel folder")
        model = CLIPModel.from_pretrained(str(directory), local_files_only=True)
    else:
        model = clip
    tokenizer = None
    if directory is not None and (directory / "vocab.json").is_file():
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(str(directory), local_files_only=True)
    tokenizer = tokenizer or clip_tokenizer()
    if directory is not None and (directory / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(str(directory), local_files_only=True)
    else:
        size = int(model.config.vision_config.image_size)
        processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return model, tokenizer, processor


def _reference_pixels(ref: Any, processor: Any, max_images: int, category_name: str) -> torch.Tensor:
    if isinstance(ref, torch.Tensor):
        return ref[:max_images]
    from PIL import Image

    folder = Path(ref)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise UserError(f"iti-gen: no reference images for category {category_name!r} in {folder}; expected a folder of {'/'.join(IMAGE_SUFFIXES)} files")
    images = [Image.open(p).convert("RGB") for p in files[:max_images]]
    return processor(images=images, return_tensors="pt")["pixel_values"]


@dataclass
class TrainResult:
    tokens: InclusiveTokens
    history: list[dict[str, float]]
    path: Path | None


OBJECTIVES = ("reference", "project")


def _unit(x: torch.Tensor, exact: bool) -> torch.Tensor:
    """``x / ‖x‖`` over the last dim; ``exact`` keeps the reference's NaN for a zero vector."""
    return x / x.norm(dim=-1, keepdim=True) if exact else F.normalize(x, dim=-1)


def prompt_features(clip: Any, tokenizer: Any, tokens: torch.Tensor, base: str, layout: str = LAYOUT_REFERENCE) -> torch.Tensor:
    """(K, E) L2-normalised CLIP text features of ``base`` + category k's tokens, read at the layout's feature position."""
    K, n_tok, _ = tokens.shape
    lay = token_layout(tokenizer, base, n_tok, layout)
    ids = torch.tensor([lay.input_ids] * K)
    text_model = clip.text_model
    vecs = [as_token_embeddings(tokens[k], lay.positions, text_model, layout) for k in range(K)]
    with injected_tokens({"clip": text_model.embeddings.token_embedding}, [lay.positions] * K, {"clip": vecs}):
        hidden = text_model(input_ids=ids).last_hidden_state[:, lay.feature_position]
    return F.normalize(clip.text_projection(hidden), dim=-1)


def iti_gen_losses(
    clip: Any, tokenizer: Any, tokens: torch.Tensor, image_means: torch.Tensor, base: str, lam: float = 0.8,
    layout: str = LAYOUT_REFERENCE, objective: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(direction loss, semantic-consistency loss, normalised prompt features (K, E)).

    ``image_means``: (K, E) means of L2-normalised image embeddings per category (a row of
    NaN for a category absent from the batch). See the module docstring for the formulas.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    K = tokens.shape[0]
    t = prompt_features(clip, tokenizer, tokens, base, layout)
    with torch.no_grad():
        base_ids = tokenizer([base], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")["input_ids"]
        t_base = F.normalize(_features(clip.get_text_features(input_ids=base_ids)), dim=-1)[0]
    exact = objective == "reference"
    cos_base = t @ t_base  # (K,)
    direction = t.new_zeros(())
    semantic = t.new_zeros(())
    for i in range(K):
        for j in range(i + 1, K):
            d_img = _unit(image_means[i] - image_means[j], exact)
            d_txt = _unit(t[i] - t[j], exact)
            direction = direction + 1 - torch.dot(d_img, d_txt)
            if exact:
                semantic = semantic + F.relu(lam - 0.5 * (cos_base[i] + cos_base[j]))
    if exact:
        # ITI-GEN divides the pair sums by 2·C(K,2)/K = K − 1
        direction, semantic = direction / (K - 1), semantic / (K - 1)
    else:
        semantic = F.relu(lam - cos_base).sum()
    return direction, semantic, t


def cosine_fallback_loss(t: torch.Tensor, image_means: torch.Tensor) -> torch.Tensor:
    """ITI-GEN's loss when the direction loss is NaN: ``Σ_k (1 − mean cos(image of k, t_k))`` over present categories."""
    present = ~torch.isnan(image_means).any(-1)
    return (1 - (image_means[present] * t[present]).sum(-1)).sum()


def train_iti_gen(
    clip_model_dir_or_model: Any,
    reference: Mapping[str, Any],
    out_path: str | Path | None = None,
    *,
    tsa: str = "tsa",
    base_prompt: str = "a headshot of a person",
    n_tokens: int = 3,
    lam: float = 0.8,
    lr: float = 0.01,
    epochs: int = 30,
    steps_per_epoch: int = 5,
    batch_size: int = 64,
    max_images: int = 200,
    seed: int = 0,
    encoder_key: str = "tokens",
    tokenizer: Any = None,
    image_processor: Any = None,
    layout: str = LAYOUT_REFERENCE,
    objective: str = "reference",
    init: str = "zeros",
    lr_milestones: Sequence[int] = (10,),
    lr_gamma: float = 0.5,
    batching: str = "reference",
) -> TrainResult:
    """Learn ``n_tokens`` inclusive tokens per category of one tSA (ITI-GEN); save them if ``out_path``.

    ``clip_model_dir_or_model``: a local Hugging Face ``CLIPModel`` directory or a model object.
    ``reference``: ``{category: folder of images | preprocessed pixel tensor (n, 3, S, S)}``, in
    category order (K ≥ 2). ``out_path``: a directory; writes ``<tsa>.safetensors`` and
    ``<tsa>.json``. ``encoder_key``: the tensor name in the file ("tokens" = use for any
    pipeline encoder of that width; "text_encoder"/"text_encoder_2" for a specific one).
    ``layout``, ``objective``, ``init``, ``lr_milestones``/``lr_gamma`` and ``batching``: see
    the module docstring (defaults = ITI-GEN's reference code).
    Returns the tokens, the loss history (one dict per step) and the file path.
    """
    if layout not in LAYOUTS:
        raise UserError(f"iti-gen: layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if objective not in OBJECTIVES:
        raise UserError(f"iti-gen: objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if init not in ("zeros", "random"):
        raise UserError(f"iti-gen: init {init!r}; expected zeros or random")
    if batching not in ("reference", "per-category"):
        raise UserError(f"iti-gen: batching {batching!r}; expected reference or per-category")
    if len(reference) < 2:
        raise UserError(f"iti-gen: {len(reference)} categories given; expected at least 2 (one reference folder each)")
    model, tok, proc = _load_clip(clip_model_dir_or_model)
    tokenizer = tokenizer or tok
    image_processor = image_processor or proc
    model.eval().requires_grad_(False)
    categories = [str(c) for c in reference]
    with torch.no_grad():
        feats = []
        for name, ref in reference.items():
            pix = _reference_pixels(ref, image_processor, max_images, name)
            chunks = [F.normalize(_features(model.get_image_features(pixel_values=pix[i : i + 32])), dim=-1) for i in range(0, len(pix), 32)]
            feats.append(torch.cat(chunks))
    gen = torch.Generator().manual_seed(seed)
    table = model.text_model.embeddings.token_embedding.weight
    shape = (len(categories), n_tokens, table.shape[1])
    if init == "zeros":
        tokens = torch.zeros(shape).requires_grad_(True)
    else:
        tokens = (torch.randn(shape, generator=gen) * float(table.std())).requires_grad_(True)
    opt = torch.optim.Adam([tokens], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(lr_milestones), gamma=lr_gamma)
    rng = random.Random(seed)
    history = []
    for epoch in range(epochs):
        for means in _epoch_batches(feats, steps_per_epoch, batch_size, batching, rng):
            direction, semantic, t = iti_gen_losses(model, tokenizer, tokens, means, base_prompt, lam, layout, objective)
            fallback = bool(torch.isnan(direction))
            loss = (cosine_fallback_loss(t, means) if fallback else direction) + semantic
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append({"epoch": epoch, "loss": loss.item(), "direction": direction.item(), "semantic": semantic.item(),
                            "lr": opt.param_groups[0]["lr"], "cosine_fallback": fallback})
        sched.step()
    clip_name = str(clip_model_dir_or_model) if isinstance(clip_model_dir_or_model, (str, Path)) else type(model).__name__
    result = InclusiveTokens(
        tsa=tsa, categories=categories, base_prompt=base_prompt, tokens={encoder_key: tokens.detach().clone()},
        meta={"clip": clip_name, "lambda": lam, "lr": lr, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
              "batch_size": batch_size, "max_images": max_images, "seed": seed, "layout": layout,
              "objective": objective, "init": init, "lr_milestones": list(lr_milestones), "lr_gamma": lr_gamma,
              "batching": batching,
              "n_reference": {c: len(f) for c, f in zip(categories, feats, strict=True)},
              "final_loss": history[-1] if history else None},
    )
    path = result.save(out_path) if out_path is not None else None
    return TrainResult(result, history, path)


def _epoch_batches(feats: list[torch.Tensor], steps: int, batch_size: int, batching: str, rng: random.Random):
    """Per step, the (K, E) category means of one batch of reference features (NaN row: category absent)."""
    if batching == "per-category":
        for _ in range(steps):
            yield torch.stack([f[rng.sample(range(len(f)), min(batch_size, len(f)))].mean(0) for f in feats])
        return
    pool = [(k, i) for k, f in enumerate(feats) for i in range(len(f))]
    rng.shuffle(pool)
    size = max(1, len(pool) // steps)  # the reference's DataLoader: batch N // steps, drop_last
    for b in range(min(steps, len(pool) // size)):
        chunk = pool[b * size : (b + 1) * size]
        rows = []
        for k, f in enumerate(feats):
            idx = [i for kk, i in chunk if kk == k]
            rows.append(f[idx].mean(0) if idx else torch.full_like(f[0], float("nan")))
        yield torch.stack(rows)
