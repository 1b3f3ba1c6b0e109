"""Shared pieces of the scorers: "not available", intervals, image conversion, the Scorer interface.

A *Metric* (torchmetrics API: ``update`` / ``compute`` / ``reset``, float64 states with
``dist_reduce_fx`` so they merge across ranks) is what a user drives by hand. A *Scorer* is
what ``t2ibench score`` drives over a run directory: it turns images into per-image values
(cached on disk by image content and configuration) and per-image values into aggregates. The
CLIP Score, ImageReward, alignment and fairness scorers take each column's value from their
Metric (fed the cached per-image values, then ``compute()``); the intervals are the scorers' own.
FID computes the generated set's covariance centred (see ``FIDScorer.aggregate``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

import numpy as np
import torch

_Network = TypeVar("_Network")
_Backend = TypeVar("_Backend", bound="ClipBackend")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class NotAvailable(Exception):
    """A scorer cannot run here (missing weights, missing package). ``str(exc)`` is the reason."""


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` (sorted keys), hex, first 16 characters."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class ClipBackend:
    """What the CLIP-backed scorers read: ``encode_images(images)`` and ``encode_texts(texts)``
    give L2-normalised float32 embeddings (B, d) on the host (``embeddings_on_host``); ``to(device)``
    places ``model`` and each batch's inputs follow it (``device``)."""

    model: Any  # a torch module (transformers CLIPModel, open_clip model)
    name: str

    def to(self: _Backend, device: str | torch.device) -> _Backend:
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where ``model`` runs: inputs are moved here."""
        from t2ibench.placement import module_device

        return module_device(self.model)

    @staticmethod
    def embeddings_on_host(features: torch.Tensor) -> torch.Tensor:
        """(B, d) features → L2-normalised rows, float32, on the host."""
        return (features / features.norm(p=2, dim=-1, keepdim=True)).float().cpu()


def pil_to_float(images: Sequence[Any]) -> torch.Tensor:
    """PIL images (same size) → float32 tensor (B, 3, H, W) in [0, 1]."""
    arrays = [np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)


def unwrap_features(out: Any) -> torch.Tensor:
    """A tensor of embeddings from ``get_image_features``/``get_text_features`` output.

    transformers 4.x returns a tensor; transformers 5 returns a ModelOutput whose
    ``pooler_output`` holds the projected embeddings (the reason torchmetrics 1.9's CLIPScore
    fails there).
    """
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"cannot read embeddings from {type(out).__name__}")


def bootstrap_ci(
    sample: np.ndarray, stat: Callable[[np.ndarray], Any], *, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95, vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over resamples of ``sample`` (first axis).

    ``vectorized``: ``stat`` takes all resamples at once, an array (n_boot, n, ...), and returns
    the n_boot statistics; otherwise it is called once per resample (n, ...) -> float. Both see
    the same resamples for the same seed.
    """
    sample = np.asarray(sample)
    n = len(sample)
    if n < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    resamples = sample[rng.integers(0, n, (n_boot, n))]
    if vectorized:
        stats = np.asarray(stat(resamples), dtype=np.float64).reshape(n_boot)
    else:
        stats = np.array([stat(r) for r in resamples], dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha)))


def mean_ci(values: Sequence[float] | np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean of per-image values with a 95 % percentile-bootstrap interval, as an aggregate entry."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"value": None, "n": 0, "ci": None}
    lo, hi = bootstrap_ci(arr, lambda r: r.mean(axis=1), n_boot=n_boot, seed=seed, vectorized=True)
    return {"value": float(arr.mean()), "n": int(arr.size), "ci": [lo, hi] if arr.size > 1 else None}


@dataclass(frozen=True)
class ColumnSample:
    """One aggregate column's per-image sample, for paired resampling against a reference method.

    ``items``: (m,) indices into the values the scorer aggregated (the images the column uses);
    ``stat``: positions (B, m') into ``items`` → the column's statistic on each of the B
    resamples, (B,) float64 (the same statistic as the column's ``value``);
    ``interval``: optional, positions (m',) → the column's own 95 % interval (low, high) on those
    images, for statistics ≥ 0 whose bootstrap does not cover near that bound (FD and KL near
    uniform). With it, a paired delta combines the two intervals (MOVER) instead of taking
    percentiles of the resampled differences (``bench.results.deltas``).
    """

    items: np.ndarray
    stat: Callable[[np.ndarray], np.ndarray]
    interval: Callable[[np.ndarray], tuple[float, float]] | None = None


def mean_sample(items: Sequence[int], x: Sequence[float] | np.ndarray, floor: float | None = None) -> ColumnSample:
    """A column that is the mean of per-image values ``x`` (optionally clamped below at ``floor``)."""
    arr = np.asarray(x, dtype=np.float64)

    def stat(pos: np.ndarray) -> np.ndarray:
        m = arr[pos].mean(axis=-1)
        return m if floor is None else np.maximum(m, floor)

    return ColumnSample(np.asarray(items, dtype=np.int64), stat)


def wrap_updates(metric: Any, *names: str) -> None:
    """Give ``metric``'s extra update methods (``update_features``, ``update_scores``, ...) what
    torchmetrics gives ``update``: each call drops the cached ``compute()`` result and counts as an
    update. Call at the end of the Metric's ``__init__``."""
    for name in names:
        setattr(metric, name, metric._wrap_update(getattr(metric, name)))


class Scorer:
    """What the scoring driver needs from a metric.

    - ``config()``: everything that changes a per-image value (model, preprocessing, params);
      hashed into the cache key together with the image content hash.
    - ``item_inputs(meta)``: the per-image inputs other than pixels that the value depends on
      (e.g. the prompt), also part of the cache key.
    - ``check_available()``: raise :class:`NotAvailable` with the reason if it cannot run.
    - ``score(images, metas)``: per-image values; JSON-able (``value_kind = "json"``) or 1-D
      float arrays (``value_kind = "array"``, e.g. features for a Fréchet distance).
    - ``aggregate(values, metas)``: ``{column: entry}``; an entry has ``value``, ``n``, ``ci``
      (95 % interval or None), ``lower_is_better`` and optional extras (accuracy, notes).
    - ``conventions()``: what a reader must know to compare the number (network, resize, ...).
    - ``column_samples(values, metas)``: ``{column: ColumnSample}`` for paired deltas against
      the suite's reference method (optional; a scorer without it gets no deltas).
    - ``observe(values, metas)``: every value of the run, before ``aggregate`` is called per
      method, for scorers that pair images across methods (DreamSim); a no-op by default.
    - ``to(device)``: where the networks run (the driver calls it; ``t2ibench score --device``);
      a scorer loads each network through ``place`` into one of its ``network_attributes``.
      Values come back to the host, so they and the cache do not depend on the device.
    """

    name: ClassVar[str] = ""
    value_kind: ClassVar[str] = "json"
    lower_is_better: ClassVar[bool] = False
    batch_size: int = 16
    paired_resamples: int = 1000  # resamples of the paired deltas (bench.results.deltas)
    device: torch.device = torch.device("cpu")  # where the networks run (``to``); values come back to the host
    #: attributes holding the networks the scorer loads on first use (None until then); ``to`` moves them
    network_attributes: ClassVar[tuple[str, ...]] = ()

    def to(self, device: str | torch.device) -> "Scorer":
        """Run this scorer's networks on ``device``: those loaded later are placed there, those
        already loaded (``placed_networks``) move. Returns ``self``."""
        self.device = torch.device(device)
        for network in self.placed_networks():
            self.place(network)
        return self

    def place(self, network: _Network) -> _Network:
        """``network`` (a module, backend or classifier) moved to this scorer's device when it can
        move (has ``to``), and returned: every network a scorer loads goes through here."""
        mover = getattr(network, "to", None)
        if callable(mover):
            mover(self.device)
        return network

    def placed_networks(self) -> list[Any]:
        """The networks this scorer has loaded so far: the ``network_attributes`` not None."""
        return [n for n in (getattr(self, a, None) for a in self.network_attributes) if n is not None]

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def conventions(self) -> dict[str, Any]:
        return {}

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def check_available(self) -> None:
        return None

    def applies(self, meta: Mapping[str, Any]) -> bool:
        """Whether this scorer scores this image at all (e.g. fairness: fairness prompt sets only)."""
        return True

    def score(self, images: list[Any], metas: list[Mapping[str, Any]]) -> list[Any]:
        raise NotImplementedError

    def aggregate(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def column_samples(self, values: list[Any], metas: list[Mapping[str, Any]]) -> dict[str, ColumnSample]:
        return {}

    def observe(self, values: list[Any], metas: list[Mapping[str, Any]]) -> None:
        return None


def tokenize_truncating(tokenizer, texts, context_length: int) -> tuple[dict[str, torch.Tensor], list[bool]]:
    """One tokenizer call; sequences longer than ``context_length`` are cut to ``context_length - 1``
    tokens plus the end-of-text token (as OpenAI ``clip.tokenize(truncate=True)`` and open_clip do),
    padded with the pad token. Returns (input_ids/attention_mask tensors, which were truncated)."""
    ids = tokenizer(list(texts), padding=False, truncation=False)["input_ids"]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    truncated = [len(x) > context_length for x in ids]
    ids = [x[: context_length - 1] + [eos] if t else x for x, t in zip(ids, truncated, strict=True)]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}, truncated


def prompt_of(meta: Mapping[str, Any]) -> str:
    """The prompt an image is judged against: the prompt set's text (not a method's rewrite)."""
    return str(meta.get("prompt", meta.get("prompt_text", "")))
