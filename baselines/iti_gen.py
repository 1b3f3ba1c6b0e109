"""``iti-gen``: inclusive prompts (Zhang et al., ICCV 2023) — learned tokens per tSA category.

Prompt: the base prompt ("a headshot of a person") with ``n_tokens`` (3) learned token
embeddings of the category at its end-of-text position, in one of two layouts
(``t2ibench.attention.text.token_layout``): ``"reference"`` (ITI-GEN's: the tokens overwrite
end-of-text, ``!`` padding, feature read after the tokens; the default for new tokens) or
``"shifted"`` (end-of-text moves right; the layout of token files without a ``layout`` key,
e.g. the shipped tinyworld tokens). Generation is balanced: image ``i`` uses category ``i % K``.

Training (``train_iti_gen``), CLIP image and text encoders frozen, only the tokens learn;
``objective="reference"`` (default) follows ITI-GEN ``iti_gen/model.py`` (docs/protocols.md):

- direction loss over category pairs (i, j):
  ``1 − cos(normalise(ē_i − ē_j), normalise(t_i − t_j))`` with ``ē_k`` the mean of the
  L2-normalised CLIP image embeddings of the batch's category-k reference images and ``t_k``
  the L2-normalised CLIP text feature of the base prompt + category-k tokens;
- semantic consistency per pair: ``ReLU(λ − mean(cos(t_i, t_base), cos(t_j, t_base)))``, λ = 0.8;
- both summed over the pairs and divided by ``K − 1``; a NaN direction loss (identical or
  missing categories, e.g. at the zero initialisation) falls back to the cosine loss
  ``Σ_k (1 − mean cos(image of k, t_k))``;
- ``objective="project"``: the earlier t2ibench variant (pairs summed, no division,
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

Files: ``<out>/<tsa>.safetensors`` (tensor ``tokens`` (K, n_tokens, D); optionally one tensor
per pipeline encoder, ``text_encoder`` / ``text_encoder_2``, for SDXL) and ``<out>/<tsa>.json``
(tsa, categories, base_prompt, n_tokens, width, clip, settings, loss history).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from t2ibench.attention import ControlledMethod
from t2ibench.attention.text import (
    LAYOUT_REFERENCE,
    LAYOUT_SHIFTED,
    LAYOUTS,
    PromptEmbeds,
    as_token_embeddings,
    encode_ids,
    encode_prompts,
    injected_tokens,
    text_encoders,
    token_layout,
)
from t2ibench.baselines.fairness import base_prompt, category, category_meta
from t2ibench.errors import UserError
from t2ibench.types import ImageJob, SamplerConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


# --- learned tokens on disk ----------------------------------------------------------------
@dataclass
class InclusiveTokens:
    """Learned tokens of one tSA: ``tokens[name]`` is (K, n_tokens, D); ``name`` "tokens" is generic."""

    tsa: str
    categories: list[str]
    base_prompt: str
    tokens: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return next(v for k, v in self.tokens.items() if k != "prompt_embeds").shape[1]

    @property
    def layout(self) -> str:
        """The prompt layout the tokens were learned in (files without the key: ``"shifted"``)."""
        return str(self.meta.get("layout", LAYOUT_SHIFTED))

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / _file_stem(self.tsa)
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.tokens.items()}, str(stem) + ".safetensors")
        info = {
            "tsa": self.tsa, "categories": self.categories, "base_prompt": self.base_prompt, "n_tokens": self.n_tokens,
            "widths": {k: int(v.shape[-1]) for k, v in self.tokens.items()}, **self.meta,
        }
        Path(str(stem) + ".json").write_text(json.dumps(info, indent=2))
        return Path(str(stem) + ".safetensors")

    @classmethod
    def load(cls, path: str | Path) -> "InclusiveTokens":
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors") if path.suffix == ".json" else Path(str(path) + ".safetensors")
        info_path = path.with_suffix(".json")
        if not path.is_file() or not info_path.is_file():
            raise UserError(f"iti-gen tokens: {path} (and .json) not found; train them with `t2ibench itigen train`")
        info = json.loads(info_path.read_text())
        meta = {k: v for k, v in info.items() if k not in ("tsa", "categories", "base_prompt", "n_tokens", "widths")}
        return cls(info["tsa"], list(info["categories"]), info["base_prompt"], load_file(str(path)), meta)

    def for_encoder(self, name: str, width: int) -> torch.Tensor:
        """(K, n_tokens, width) tokens for one of the pipeline's text encoders."""
        if name in self.tokens:
            t = self.tokens[name]
        else:
            matches = [t for k, t in self.tokens.items() if k != "prompt_embeds" and t.shape[-1] == width]
            if not matches:
                have = {k: int(v.shape[-1]) for k, v in self.tokens.items()}
                raise UserError(f"iti-gen tokens for {self.tsa!r} have widths {have}; the pipeline's {name} needs {width}")
            t = matches[0]
        if t.shape[-1] != width:
            raise UserError(f"iti-gen tokens {name!r} for {self.tsa!r} have width {t.shape[-1]}; the pipeline needs {width}")
        return t


def _file_stem(tsa: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in tsa)


#: ``tokens_dir`` value naming the tokens shipped with the tinyworld models
SHIPPED_TINYWORLD = "@tinyworld"


def resolve_tokens_dir(tokens_dir: str | Path) -> Path:
    """A tokens folder, or ``"@tinyworld"`` for the shipped tinyworld tokens."""
    if str(tokens_dir) == SHIPPED_TINYWORLD:
        from t2ibench.world.paths import itigen_dir

        return itigen_dir()
    return Path(tokens_dir)


def tokens_path(tokens_dir: str | Path, tsa: str) -> Path:
    return resolve_tokens_dir(tokens_dir) / (_file_stem(tsa) + ".safetensors")


# --- training ------------------------------------------------------------------------------
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


# --- generation ----------------------------------------------------------------------------
@dataclass
class InclusivePrompts:
    """Embeddings of ``base + learned tokens`` per row, the tokens' positions and the feature position per row."""

    embeds: PromptEmbeds
    positions: list[list[int]]
    after: list[int]
    layout: str


def _tokenizer_for(pipe: Any, encoder_name: str) -> Any:
    return pipe.tokenizer_2 if encoder_name == "text_encoder_2" else pipe.tokenizer


def encode_inclusive(
    pipe: Any, base_texts: Sequence[str], tokens: Sequence[InclusiveTokens], cats: Sequence[int], layout: str | None = None
) -> InclusivePrompts:
    """Embeddings of ``base + learned tokens of category k`` per row, in ``layout`` (None: the tokens' own).

    Tokens imported from the authors' prompt embeddings (a ``prompt_embeds`` tensor (K, 77, D),
    see ``iti_gen_import``) are used as they are (SD 1.x: one text encoder).
    """
    layout = layout or tokens[0].layout
    encs = text_encoders(pipe)
    if all("prompt_embeds" in tok.tokens for tok in tokens):
        if len(encs) != 1:
            raise UserError("iti-gen: imported prompt embeddings are for an SD 1.x pipeline (one text encoder); this pipeline has two")
        enc = next(iter(encs.values()))
        rows = [tok.tokens["prompt_embeds"][k] for tok, k in zip(tokens, cats, strict=True)]
        lays = [token_layout(pipe.tokenizer, base, tok.n_tokens, LAYOUT_REFERENCE) for base, tok in zip(base_texts, tokens, strict=True)]
        embeds = PromptEmbeds(torch.stack(rows).to(device=enc.device, dtype=enc.dtype))
        return InclusivePrompts(embeds, [lay.positions for lay in lays], [lay.feature_position for lay in lays], LAYOUT_REFERENCE)
    ids: dict[str, torch.Tensor] = {}
    vectors: dict[str, list[torch.Tensor]] = {}
    positions: list[list[int]] = []
    after: list[int] = []
    for name, enc in encs.items():
        width = enc.get_input_embeddings().embedding_dim
        lays = [token_layout(_tokenizer_for(pipe, name), base, tok.n_tokens, layout) for base, tok in zip(base_texts, tokens, strict=True)]
        ids[name] = torch.tensor([lay.input_ids for lay in lays])
        vectors[name] = [as_token_embeddings(tok.for_encoder(name, width)[k], lay.positions, enc, layout)
                         for tok, k, lay in zip(tokens, cats, lays, strict=True)]
        if not positions:
            positions = [lay.positions for lay in lays]
            after = [lay.feature_position for lay in lays]
    with injected_tokens(encs, positions, vectors):
        embeds = encode_ids(pipe, ids, after)
    return InclusivePrompts(embeds, positions, after, layout)


def encode_base(pipe: Any, texts: Sequence[str], layout: str) -> PromptEmbeds:
    """The plain base prompt, padded as the layout pads (``"reference"``: ``!`` after end-of-text)."""
    if layout != LAYOUT_REFERENCE:
        return encode_prompts(pipe, texts)
    from t2ibench.attention.text import reference_padded_ids

    ids = {name: torch.tensor([reference_padded_ids(_tokenizer_for(pipe, name), t) for t in texts]) for name in text_encoders(pipe)}
    return encode_ids(pipe, ids)


class ItiGen(ControlledMethod):
    name = "iti-gen"
    summary = "ITI-GEN inclusive prompts: learned tokens per tSA category, balanced (baseline)"

    def __init__(self, tokens_dir: str | None = None, layout: str | None = None) -> None:
        """``tokens_dir``: folder with ``<tsa>.safetensors`` + ``<tsa>.json`` from ``t2ibench itigen train``
        (or ``t2ibench itigen import``), or ``"@tinyworld"`` for the tokens shipped with the tinyworld
        models. ``layout``: prompt layout, ``"reference"`` or ``"shifted"``; None = the layout the
        tokens were learned in (their ``.json``)."""
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
        self.tokens_dir = tokens_dir
        self.layout = layout
        self._tokens: dict[str, InclusiveTokens] = {}

    def tokens_for(self, job: ImageJob) -> InclusiveTokens:
        tsa = job.prompt.meta.get("tsa")
        if not tsa:
            raise UserError(f"method {self.name!r}: prompt {job.prompt.id!r} has no meta.tsa; expected a fairness prompt set")
        if tsa not in self._tokens:
            if not self.tokens_dir:
                raise UserError(f"method {self.name!r}: params.tokens_dir not set; expected the folder of learned tokens (t2ibench itigen train)")
            tok = InclusiveTokens.load(tokens_path(self.tokens_dir, tsa))
            cats = [str(c) for c in job.prompt.meta.get("categories", [])]
            if cats and cats != tok.categories:
                raise UserError(f"method {self.name!r}: tokens for {tsa!r} were learned for categories {tok.categories}; the prompt set has {cats}")
            self._tokens[tsa] = tok
        return self._tokens[tsa]

    def inclusive_prompts(self, pipe: Any, jobs: Sequence[ImageJob]) -> InclusivePrompts:
        toks = [self.tokens_for(job) for job in jobs]
        cats = [category(job, self.name)[0] for job in jobs]
        return encode_inclusive(pipe, [base_prompt(job) for job in jobs], toks, cats, self.layout)

    def inclusive_embeds(self, pipe: Any, jobs: Sequence[ImageJob]) -> tuple[PromptEmbeds, list[list[int]]]:
        out = self.inclusive_prompts(pipe, jobs)
        return out.embeds, out.positions

    def prompt_text(self, job: ImageJob) -> str:
        return base_prompt(job)

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        embeds, _ = self.inclusive_embeds(pipe, jobs)
        return embeds.kwargs()

    def image_meta(self, job: ImageJob) -> dict:
        meta = {**category_meta(job, self.name), "inclusive_tokens": 3 if not self._tokens else self.tokens_for(job).n_tokens}
        if self._tokens:
            meta["prompt_layout"] = self.layout or self.tokens_for(job).layout
        return meta
