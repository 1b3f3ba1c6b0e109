"""``iti-gen``: inclusive prompts (Zhang et al., ICCV 2023) — learned tokens per tSA category.

Prompt: the base prompt ("a headshot of a person") followed, at its end-of-text position, by
``n_tokens`` (3) learned token embeddings of the category; end-of-text and padding move right.
Generation is balanced: image ``i`` of a prompt uses category ``i % K``.

Training (``train_iti_gen``), CLIP image and text encoders frozen, only the tokens learn:

- direction loss, summed over category pairs (i, j):
  ``1 − cos(normalise(ē_i − ē_j), normalise(t_i − t_j))`` with ``ē_k`` the mean of the
  L2-normalised CLIP image embeddings of a batch of category-k reference images and ``t_k``
  the L2-normalised CLIP text embedding of the base prompt + category-k tokens;
- semantic consistency, summed over categories: ``ReLU(λ − cos(t_k, t_base))``, λ = 0.8;
- Adam, lr 0.01, ``epochs × steps_per_epoch`` = 30 × 5 steps, batches of up to
  ``batch_size`` images per category from at most ``max_images`` (200) per category;
- tokens initialised from N(0, σ²), σ = the std of the CLIP token-embedding table (seeded).

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
from t2ibench.attention.text import PromptEmbeds, encode_prompts, injected_tokens, text_encoders, with_placeholders
from t2ibench.errors import UserError
from t2ibench.types import ImageJob, SamplerConfig

from t2ibench.baselines.fairness import base_prompt, category, category_meta

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
        return next(iter(self.tokens.values())).shape[1]

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
            matches = [t for t in self.tokens.values() if t.shape[-1] == width]
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


def iti_gen_losses(
    clip: Any, tokenizer: Any, tokens: torch.Tensor, image_means: torch.Tensor, base: str, lam: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(direction loss, semantic-consistency loss, normalised prompt embeddings (K, E))."""
    K, n_tok, _ = tokens.shape
    text, positions = with_placeholders(tokenizer, base, n_tok)
    ids = tokenizer([text] * K, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")["input_ids"]
    emb = clip.text_model.embeddings.token_embedding
    with injected_tokens({"clip": emb}, [positions] * K, {"clip": [tokens[k] for k in range(K)]}):
        t = F.normalize(_features(clip.get_text_features(input_ids=ids)), dim=-1)
    with torch.no_grad():
        base_ids = tokenizer([base], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")["input_ids"]
        t_base = F.normalize(_features(clip.get_text_features(input_ids=base_ids)), dim=-1)
    direction = t.new_zeros(())
    for i in range(K):
        for j in range(i + 1, K):
            d_img = F.normalize(image_means[i] - image_means[j], dim=-1)
            d_txt = F.normalize(t[i] - t[j], dim=-1)
            direction = direction + 1 - torch.dot(d_img, d_txt)
    semantic = F.relu(lam - (t * t_base).sum(-1)).sum()
    return direction, semantic, t


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
) -> TrainResult:
    """Learn ``n_tokens`` inclusive tokens per category of one tSA (ITI-GEN); save them if ``out_path``.

    ``clip_model_dir_or_model``: a local Hugging Face ``CLIPModel`` directory or a model object.
    ``reference``: ``{category: folder of images | preprocessed pixel tensor (n, 3, S, S)}``, in
    category order (K ≥ 2). ``out_path``: a directory; writes ``<tsa>.safetensors`` and
    ``<tsa>.json``. ``encoder_key``: the tensor name in the file ("tokens" = use for any
    pipeline encoder of that width; "text_encoder"/"text_encoder_2" for a specific one).
    Returns the tokens, the loss history (one dict per step) and the file path.
    """
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
    std = float(table.std())
    tokens = (torch.randn(len(categories), n_tokens, table.shape[1], generator=gen) * std).requires_grad_(True)
    opt = torch.optim.Adam([tokens], lr=lr)
    rng = random.Random(seed)
    history = []
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            means = []
            for f in feats:
                idx = rng.sample(range(len(f)), min(batch_size, len(f)))
                means.append(f[idx].mean(0))
            direction, semantic, _ = iti_gen_losses(model, tokenizer, tokens, torch.stack(means), base_prompt, lam)
            loss = direction + semantic
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append({"epoch": epoch, "loss": loss.item(), "direction": direction.item(), "semantic": semantic.item()})
    clip_name = str(clip_model_dir_or_model) if isinstance(clip_model_dir_or_model, (str, Path)) else type(model).__name__
    result = InclusiveTokens(
        tsa=tsa, categories=categories, base_prompt=base_prompt, tokens={encoder_key: tokens.detach().clone()},
        meta={"clip": clip_name, "lambda": lam, "lr": lr, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
              "batch_size": batch_size, "max_images": max_images, "seed": seed,
              "n_reference": {c: len(f) for c, f in zip(categories, feats)},
              "final_loss": history[-1] if history else None},
    )
    path = result.save(out_path) if out_path is not None else None
    return TrainResult(result, history, path)


# --- generation ----------------------------------------------------------------------------
def encode_inclusive(pipe: Any, base_texts: Sequence[str], tokens: Sequence[InclusiveTokens], cats: Sequence[int]) -> tuple[PromptEmbeds, list[list[int]]]:
    """Embeddings of ``base + learned tokens of category k`` per row, and the tokens' positions."""
    texts, positions = [], []
    for base, tok in zip(base_texts, tokens):
        text, pos = with_placeholders(pipe.tokenizer, base, tok.n_tokens)
        texts.append(text)
        positions.append(pos)
    vectors = {}
    for name, enc in text_encoders(pipe).items():
        width = enc.get_input_embeddings().embedding_dim
        vectors[name] = [tok.for_encoder(name, width)[k] for tok, k in zip(tokens, cats)]
    with injected_tokens(text_encoders(pipe), positions, vectors):
        embeds = encode_prompts(pipe, texts)
    return embeds, positions


class ItiGen(ControlledMethod):
    name = "iti-gen"
    summary = "ITI-GEN inclusive prompts: learned tokens per tSA category, balanced (baseline)"

    def __init__(self, tokens_dir: str | None = None) -> None:
        """``tokens_dir``: folder with ``<tsa>.safetensors`` + ``<tsa>.json`` from ``t2ibench itigen train``,
        or ``"@tinyworld"`` for the tokens shipped with the tinyworld models."""
        self.tokens_dir = tokens_dir
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

    def inclusive_embeds(self, pipe: Any, jobs: Sequence[ImageJob]) -> tuple[PromptEmbeds, list[list[int]]]:
        toks = [self.tokens_for(job) for job in jobs]
        cats = [category(job, self.name)[0] for job in jobs]
        return encode_inclusive(pipe, [base_prompt(job) for job in jobs], toks, cats)

    def prompt_text(self, job: ImageJob) -> str:
        return base_prompt(job)

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        embeds, _ = self.inclusive_embeds(pipe, jobs)
        return embeds.kwargs()

    def image_meta(self, job: ImageJob) -> dict:
        return {**category_meta(job, self.name), "inclusive_tokens": 3 if not self._tokens else self.tokens_for(job).n_tokens}
