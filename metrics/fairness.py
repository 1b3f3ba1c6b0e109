"""Fairness of generated images over the K categories of a sensitive attribute (tSA).

p̂ = share of argmax predictions per category (K categories, u = uniform 1/K):

- FD = ‖p̂ − u‖₂ (FairQueue / CLEAM convention), 0 = balanced, max √(1 − 1/K).
- KL = KL(p̂ ‖ u) in nats (``scipy.stats.entropy(p̂, u)``, ITI-GEN's convention).
- Reported (``estimator``): ``"plugin"``, the papers' numbers (ITI-GEN ``evaluation.py:106-113``,
  FairQueue), biased upward by about √((K−1)/(Kn)) near uniform; or ``"corrected"`` (unbiased
  FD², Miller-Madow KL). Either way with a 95 % interval for the true value that covers also at
  a uniform distribution (t2ibench.metrics.fairness_intervals: inverted noncentral χ² ∪
  delta-method ∪ score bound, widened to contain the estimate); the plug-in values always ride
  along (``fd_plugin``, ``kl_plugin``). A percentile bootstrap of the plug-in under-covers near
  uniform (0 % at exactly uniform).
- Classifiers: CLIP zero-shot with the prompt set's class prompts, probabilities =
  softmax(logit_scale · cos) (CLIP's learned logit scale applied; without it the probabilities
  flatten); or any trained classifier module (tinyworld's evaluator). When labelled references
  are given, the classifier's accuracy on them is reported beside the FD: classifier errors
  bias FD.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import scipy.stats
import torch
from torchmetrics import Metric

from t2ibench.metrics.common import ColumnSample, Scorer, config_hash
from t2ibench.metrics.fairness_intervals import Estimator, check_estimator, fd_kl_estimates, fd_kl_intervals, kind_intervals

# --------------------------------------------------------------------------------------------
# Functional forms


def category_shares(preds: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """p̂: share of each category among predictions (float64, (K,))."""
    arr = np.asarray(preds, dtype=np.int64)
    if arr.size == 0:
        raise ValueError("no predictions")
    if arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(f"predictions outside 0..{num_classes - 1}")
    return np.bincount(arr, minlength=num_classes).astype(np.float64) / arr.size


def fd_from_shares(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(np.linalg.norm(p - 1.0 / p.size))


def kl_from_shares(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(scipy.stats.entropy(p, np.full(p.size, 1.0 / p.size)))


def fairness_discrepancy(preds: Sequence[int], num_classes: int) -> float:
    """FD = ‖p̂ − u‖₂ of argmax predictions."""
    return fd_from_shares(category_shares(preds, num_classes))


def kl_to_uniform(preds: Sequence[int], num_classes: int) -> float:
    """KL(p̂ ‖ u) in nats of argmax predictions."""
    return kl_from_shares(category_shares(preds, num_classes))


def shares_per_row(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """p̂ of every row of class indices (B, n): float64 (B, K)."""
    preds = np.asarray(preds, dtype=np.int64)
    return np.stack([(preds == k).sum(axis=1) for k in range(num_classes)], axis=1) / preds.shape[1]


def fd_per_row(p: np.ndarray) -> np.ndarray:
    """‖p̂ − u‖₂ of every row of shares (B, K)."""
    return np.linalg.norm(p - 1.0 / p.shape[1], axis=1)


def kl_per_row(p: np.ndarray) -> np.ndarray:
    """KL(p̂ ‖ u) in nats of every row of shares (B, K), with 0·log 0 = 0 (as scipy.stats.entropy)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p * p.shape[1]), 0.0)
    return terms.sum(axis=1)


def fairness_report(preds: Sequence[int], num_classes: int, estimator: Estimator = "corrected") -> dict[str, Any]:
    """FD and KL (``estimator``: bias-corrected or plug-in) with their 95 % intervals
    (t2ibench.metrics.fairness_intervals), the plug-in values (``fd_plugin``, ``kl_plugin``) and p̂."""
    arr = np.asarray(preds, dtype=np.int64)
    p = category_shares(arr, num_classes)
    counts = np.bincount(arr, minlength=num_classes)[None]
    if arr.size < 2:
        return {"fd": fd_from_shares(p), "fd_ci": None, "kl": kl_from_shares(p), "kl_ci": None,
                "fd_plugin": fd_from_shares(p), "kl_plugin": kl_from_shares(p), "shares": p.tolist(), "n": int(arr.size)}
    r = fd_kl_intervals(counts, estimator=estimator)
    return {
        "fd": float(r["fd"][0]),
        "fd_ci": [float(r["fd_lo"][0]), float(r["fd_hi"][0])],
        "kl": float(r["kl"][0]),
        "kl_ci": [float(r["kl_lo"][0]), float(r["kl_hi"][0])],
        "fd_plugin": fd_from_shares(p),
        "kl_plugin": kl_from_shares(p),
        "shares": p.tolist(),
        "n": int(arr.size),
    }


def resampled_fd_kl(preds: np.ndarray, num_classes: int, estimator: Estimator = "corrected") -> tuple[np.ndarray, np.ndarray]:
    """FD and KL (bias-corrected or plug-in) of every row of class indices (B, n), vectorised (for paired resampling)."""
    counts = np.stack([(np.asarray(preds) == k).sum(axis=-1) for k in range(num_classes)], axis=-1)
    return fd_kl_estimates(counts, estimator)


def fairness_column(items: np.ndarray, preds: np.ndarray, num_classes: int, kind: Literal["fd", "kl"],
                    estimator: Estimator = "corrected") -> ColumnSample:
    """The paired-delta sample of an FD or KL column: ``preds`` (m,) class indices of the images
    ``items``; its statistic is the column's FD/KL estimate per resample, its interval the covering
    one of ``fairness_intervals`` on the shared images."""
    which = 0 if kind == "fd" else 1

    def stat(pos: np.ndarray) -> np.ndarray:
        return resampled_fd_kl(preds[pos], num_classes, estimator)[which]

    def interval(pos: np.ndarray) -> tuple[float, float]:
        r = kind_intervals(np.bincount(preds[pos], minlength=num_classes)[None], kind, estimator=estimator)
        return float(r[f"{kind}_lo"][0]), float(r[f"{kind}_hi"][0])

    return ColumnSample(np.asarray(items, dtype=np.int64), stat, interval)


# --------------------------------------------------------------------------------------------
# Metric


class FairnessDiscrepancy(Metric):
    """torchmetrics-style FD over K categories. ``update(preds)`` with class indices or (B, K) scores.

    State: ``counts`` (float64, (K,), merged by sum). ``compute()`` → FD; ``kl()`` → KL(p̂‖u) in
    nats. ``estimator``: ``"plugin"`` (default: ‖p̂ − u‖₂, the papers' numbers) or ``"corrected"``
    (unbiased FD², Miller-Madow KL; :mod:`~t2ibench.metrics.fairness_intervals`); with fewer than
    2 images nothing can be corrected and both give the plug-in values.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    counts: torch.Tensor

    def __init__(self, num_classes: int, estimator: Estimator = "plugin", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.estimator = check_estimator(estimator)
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor) -> None:
        preds = torch.as_tensor(preds)
        if preds.dim() == 2:
            preds = preds.argmax(dim=-1)
        self.counts += torch.bincount(preds.long().flatten(), minlength=self.num_classes).double()

    def shares(self) -> torch.Tensor:
        return self.counts / self.counts.sum()

    def _estimates(self) -> tuple[float, float]:
        counts = self.counts.detach().cpu().numpy()
        estimator: Estimator = self.estimator if counts.sum() >= 2 else "plugin"
        fd, kl = fd_kl_estimates(counts, estimator)
        return float(fd), float(kl)

    def compute(self) -> torch.Tensor:
        return torch.tensor(self._estimates()[0], dtype=torch.float64)

    def kl(self) -> torch.Tensor:
        return torch.tensor(self._estimates()[1], dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Classifiers


class ClipZeroShotClassifier:
    """CLIP zero-shot: probabilities = softmax(logit_scale · cos(image, class prompt)).

    ``backend``: a CLIP backend from t2ibench.metrics.clip_score (encode_images/encode_texts,
    normalised) whose ``model`` has CLIP's learned ``logit_scale`` (log-parametrised, exp applied).
    """

    def __init__(self, backend, apply_logit_scale: bool = True) -> None:
        self.backend = backend
        self.apply_logit_scale = apply_logit_scale
        self.name = f"CLIP zero-shot ({backend.name})"

    def to(self, device: str | torch.device) -> "ClipZeroShotClassifier":
        self.backend.to(device)
        return self

    def logit_scale(self) -> float:
        return float(self.backend.model.logit_scale.detach().exp()) if self.apply_logit_scale else 1.0

    @torch.inference_mode()
    def predict_proba(self, images: Sequence[Any], class_prompts: Sequence[str]) -> torch.Tensor:
        img = self.backend.encode_images(images).float()
        txt, _ = self.backend.encode_texts(list(class_prompts))
        logits = self.logit_scale() * img @ txt.float().T
        return logits.softmax(dim=-1)

    def predict(self, images, meta: Mapping[str, Any]) -> torch.Tensor:
        prompts = meta.get("class_prompts") or meta.get("hard_prompts")
        if not prompts:
            raise ValueError("fairness prompt meta has no class_prompts")
        return self.predict_proba(images, prompts)


class ModuleClassifier:
    """Any trained classifier: ``module(images: list[PIL], tsa: str, categories: list[str]) -> (B, K) scores``.

    E.g. tinyworld's evaluator wrapped by t2ibench.metrics.tinyworld.
    """

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def predict(self, images, meta: Mapping[str, Any]) -> torch.Tensor:
        return torch.as_tensor(self.fn(images, meta.get("tsa"), list(meta["categories"])))


def classifier_accuracy(classifier, images: Sequence[Any], labels: Sequence[int], meta: Mapping[str, Any], batch: int = 32) -> float:
    """Share of labelled reference images the classifier gets right (argmax)."""
    preds = []
    for i in range(0, len(images), batch):
        preds.append(torch.as_tensor(classifier.predict(list(images[i : i + batch]), meta)).argmax(-1))
    return float((torch.cat(preds).numpy() == np.asarray(labels)).mean())


# --------------------------------------------------------------------------------------------
# Scorer


def _fairness_meta(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    pm = meta.get("prompt_meta") or {}
    if "categories" not in pm:
        raise ValueError(f"image {meta.get('key')}: not from a fairness prompt set (prompt_meta has no categories)")
    return pm


def _containing(ci: list[float] | None, value: float) -> list[float] | None:
    """``ci`` widened to contain ``value``: the interval is computed on the noncentrality scale,
    the value on the FD/KL scale, so the two roundings can leave the value an ulp outside."""
    return None if ci is None else [min(ci[0], value), max(ci[1], value)]


_ESTIMATE_CONVENTION = {
    "plugin": "plug-in (estimator: plugin): FD = ||p_hat - uniform||_2, KL = KL(p_hat || uniform), as ITI-GEN and "
              "FairQueue report them (biased upward near uniform, by about sqrt((K-1)/(Kn)) for FD)",
    "corrected": "bias-corrected (estimator: corrected): FD = sqrt(max(0, FD_plugin^2 - (1 - sum p_hat^2)/(n-1))) "
                 "(unbiased FD^2), KL = max(0, KL_plugin - (K-1)/(2n)) (Miller-Madow); plug-in values in the json/csv",
}


class FairnessScorer(Scorer):
    """FD and KL per tSA for fairness prompt sets.

    params: ``classifier`` ("clip" | "tinyworld-evaluator" | "module:callable" returning a
    classifier with ``predict(images, prompt_meta) -> (B, K)`` and ``name``), ``backend``/``model``/
    ``pretrained`` for CLIP, ``references`` ("module:callable(tsa=, categories=, **reference_params)"
    → (images, labels)) for classifier accuracy, ``estimator`` ("corrected": unbiased FD², Miller-Madow
    KL; "plugin": ‖p̂ − u‖₂ and KL(p̂ ‖ u), the papers' numbers), ``bootstrap`` (resamples of the paired deltas against
    the reference method, default 1000; the FD/KL intervals are analytic).
    Columns: ``fd:<tsa>``, ``kl:<tsa>``.
    """

    network_attributes = ("_classifier",)
    name = "fairness"
    lower_is_better = True

    def __init__(
        self,
        classifier: str = "clip",
        backend: str = "transformers",
        model: str = "openai/clip-vit-large-patch14",
        pretrained: str | None = None,
        references: str | None = None,
        reference_params: Mapping[str, Any] | None = None,
        bootstrap: int = 1000,
        batch_size: int = 32,
        estimator: Estimator = "corrected",
        _classifier: Any = None,
    ) -> None:
        self.estimator = check_estimator(estimator)
        self.classifier_kind = classifier
        self.backend_kind, self.model_name, self.pretrained = backend, model, pretrained
        self.references = references
        self.reference_params = dict(reference_params or {})
        self.bootstrap = bootstrap
        self.paired_resamples = bootstrap
        self.batch_size = batch_size
        self._classifier = _classifier
        self._accuracy: dict[str, float] = {}

    @property
    def classifier(self):
        if self._classifier is None:
            if self.classifier_kind == "clip":
                from t2ibench.metrics.clip_score import make_backend

                self._classifier = ClipZeroShotClassifier(make_backend(self.backend_kind, self.model_name, self.pretrained))
            elif self.classifier_kind in ("tinyworld-evaluator", "evaluator"):
                from t2ibench.metrics.tinyworld import tiny_evaluator_classifier

                self._classifier = tiny_evaluator_classifier()
            elif ":" in self.classifier_kind:
                from t2ibench.registry import Registry

                fn = Registry("classifier", "t2ibench.classifiers", {}).get(self.classifier_kind)
                self._classifier = fn()
            else:
                raise ValueError(f"classifier {self.classifier_kind!r}; expected clip, tinyworld-evaluator or module:callable")
            self.place(self._classifier)  # a user classifier without ``to`` stays where it is
        return self._classifier

    def check_available(self) -> None:
        _ = self.classifier  # loading it raises NotAvailable with the reason

    def config(self) -> dict[str, Any]:
        return {"classifier": self.classifier.name, "logit_scale": "applied"}

    def conventions(self) -> dict[str, Any]:
        return {
            "classifier": self.classifier.name,
            "FD": "||p_hat - uniform||_2 over argmax predictions",
            "KL": "KL(p_hat || uniform), nats",
            "estimate": _ESTIMATE_CONVENTION[self.estimator],
            "interval": "95%: inverted noncentral chi-square of Pearson X^2 = nK FD^2 / LR G^2 = 2n KL (Steiger-Lind, "
                        "half-count continuity correction) united with a delta-method and a score bound "
                        "(t2ibench.metrics.fairness_intervals; coverage >= 0.93 by simulation)",
        }

    def applies(self, meta: Mapping[str, Any]) -> bool:
        return "categories" in (meta.get("prompt_meta") or {})

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        pm = _fairness_meta(meta)
        return {"tsa": pm.get("tsa"), "categories": list(pm["categories"]), "class_prompts": pm.get("class_prompts")}

    def score(self, images, metas):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(metas):
            groups[config_hash(self.item_inputs(m))].append(i)
        out: list[Any] = [None] * len(images)
        for idx in groups.values():
            probs = torch.as_tensor(self.classifier.predict([images[i] for i in idx], _fairness_meta(metas[idx[0]])))
            for j, i in enumerate(idx):
                out[i] = {"pred": int(probs[j].argmax()), "probs": [float(x) for x in probs[j]]}
        return out

    def reference_accuracy(self, pm: Mapping[str, Any]) -> float | None:
        if not self.references:
            return None
        tsa = str(pm.get("tsa"))
        if tsa not in self._accuracy:
            from t2ibench.registry import REFERENCE_SETS

            fn = REFERENCE_SETS.get(self.references)
            images, labels = fn(tsa=tsa, categories=list(pm["categories"]), **self.reference_params)
            self._accuracy[tsa] = classifier_accuracy(self.classifier, list(images), list(labels), pm, self.batch_size)
        return self._accuracy[tsa]

    def aggregate(self, values, metas):
        by_tsa: dict[str, list[int]] = defaultdict(list)
        meta_of: dict[str, Mapping[str, Any]] = {}
        for v, m in zip(values, metas, strict=True):
            pm = _fairness_meta(m)
            tsa = str(pm.get("tsa") or m.get("prompt_id"))
            by_tsa[tsa].append(int(v["pred"]))
            meta_of[tsa] = pm
        out: dict[str, dict[str, Any]] = {}
        for tsa, preds in sorted(by_tsa.items()):
            pm = meta_of[tsa]
            k = len(pm["categories"])
            metric = FairnessDiscrepancy(k, self.estimator)
            metric.update(torch.tensor(preds))
            fd, kl = float(metric.compute()), float(metric.kl())
            rep = fairness_report(preds, k, self.estimator)
            acc = self.reference_accuracy(pm)
            extra = {"shares": dict(zip(pm["categories"], rep["shares"], strict=True)), "classifier_accuracy": acc}
            out[f"fd:{tsa}"] = {"value": fd, "n": rep["n"], "ci": _containing(rep["fd_ci"], fd), "plugin": rep["fd_plugin"],
                                "lower_is_better": True, **extra}
            out[f"kl:{tsa}"] = {"value": kl, "n": rep["n"], "ci": _containing(rep["kl_ci"], kl), "plugin": rep["kl_plugin"],
                                "lower_is_better": True, **extra}
        return out

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        by_tsa: dict[str, list[int]] = defaultdict(list)
        k_of: dict[str, int] = {}
        for i, m in enumerate(metas):
            pm = _fairness_meta(m)
            tsa = str(pm.get("tsa") or m.get("prompt_id"))
            by_tsa[tsa].append(i)
            k_of[tsa] = len(pm["categories"])
        out: dict[str, ColumnSample] = {}
        for tsa, idx in sorted(by_tsa.items()):
            preds = np.array([int(values[i]["pred"]) for i in idx], dtype=np.int64)
            k = k_of[tsa]
            out[f"fd:{tsa}"] = fairness_column(np.asarray(idx), preds, k, "fd", self.estimator)
            out[f"kl:{tsa}"] = fairness_column(np.asarray(idx), preds, k, "kl", self.estimator)
        return out
