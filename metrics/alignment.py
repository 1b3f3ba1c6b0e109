"""Alignment accuracy per category: does the image show what its prompt's structured labels say?

The exact-answer counterpart of the papers' question-based check (color, count, texture, time,
location, multi-object binding). A *judge* reads images and compares them with the prompts'
labels: ``judge(images: list[PIL], prompt_metas: list[dict]) -> list[float | dict]`` with 1.0 =
every labelled fact right, 0.0 = wrong (values in between allowed: share of facts right); a
judge may return ``{"correct": float, "checks": {name: bool}}`` per image instead, to report
each kind of fact as well. The tinyworld judge wraps the trained evaluator
(t2ibench.metrics.tinyworld); its checks: family, objects (shape, colour, texture of every
named object), colors (every named colour on some object, shape ignored), count, background,
relation, and the face attributes.

Accuracy per category = mean judge value over the images of that category, with a 95 %
percentile-bootstrap interval; ``accuracy:all`` pools all categories; ``check:<name>`` = share of
the images a check applies to where it holds (all categories pooled).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torchmetrics import Metric

from t2ibench.metrics.common import ColumnSample, Scorer, mean_ci, mean_sample


def alignment_accuracy(correct: Sequence[float], categories: Sequence[str]) -> dict[str, float]:
    """Functional form: {category: mean correctness} plus ``"all"``."""
    by: dict[str, list[float]] = defaultdict(list)
    for c, cat in zip(correct, categories, strict=True):
        by[str(cat)].append(float(c))
    out = {k: float(np.mean(v)) for k, v in sorted(by.items())}
    out["all"] = float(np.mean([float(c) for c in correct])) if len(correct) else float("nan")
    return out


class AlignmentAccuracy(Metric):
    """torchmetrics-style per-category accuracy over a fixed category list.

    ``update(correct: (B,) float, category_index: (B,) long)``; states ``correct`` and ``total``
    (float64, (C,), merged by sum); ``compute()`` → (C,) accuracies.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, categories: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.categories = list(categories)
        c = len(self.categories)
        self.add_state("correct", torch.zeros(c, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(c, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, correct, category_index) -> None:
        correct = torch.as_tensor(correct, dtype=torch.float64).flatten()
        idx = torch.as_tensor(category_index, dtype=torch.long).flatten()
        self.correct.index_add_(0, idx, correct)
        self.total.index_add_(0, idx, torch.ones_like(correct))

    def compute(self) -> torch.Tensor:
        return self.correct / self.total

    def compute_all(self) -> torch.Tensor:
        """Accuracy over every image, categories pooled (float64 scalar)."""
        return self.correct.sum() / self.total.sum()


def _column_means(names: Sequence[str], values: Sequence[float], index: Sequence[int]) -> dict[str, float]:
    """{name: mean of the values whose ``index`` points at it} through :class:`AlignmentAccuracy`;
    the pooled mean under ``"all"``."""
    metric = AlignmentAccuracy(names)
    metric.update(values, index)
    return {**dict(zip(names, metric.compute().tolist(), strict=True)), "all": float(metric.compute_all())}


def _category(meta: Mapping[str, Any]) -> str:
    pm = meta.get("prompt_meta") or {}
    return str(pm.get("category", "uncategorised"))


class AlignmentScorer(Scorer):
    """Per-category alignment accuracy judged by ``judge`` ("tinyworld" or "module:callable").

    Columns ``accuracy:<category>``, ``accuracy:all`` and, for judges that report them, ``check:<name>``.
    """

    network_attributes = ("_judge",)
    name = "alignment"
    lower_is_better = False

    def __init__(self, judge: str = "tinyworld", batch_size: int = 64, bootstrap: int = 1000, _judge: Any = None) -> None:
        self.judge_spec = judge
        self.batch_size = batch_size
        self.bootstrap = bootstrap
        self._judge = _judge

    @property
    def judge(self) -> Callable[..., Any]:
        if self._judge is None:
            if self.judge_spec == "tinyworld":
                from t2ibench.metrics.tinyworld import tiny_alignment_judge

                self._judge = tiny_alignment_judge()
            else:
                from t2ibench.errors import UserError
                from t2ibench.registry import Registry, factory_without_arguments

                judges = Registry("judge", "t2ibench.judges", {}, check=factory_without_arguments)
                judge = judges.get(self.judge_spec, where="alignment judge")()
                if not callable(judge):
                    raise UserError(f"alignment judge {self.judge_spec!r} built a {type(judge).__name__}; expected a "
                                    "callable judge(images, prompt_metas) -> list of correctness values")
                self._judge = judge
            self.place(self._judge)  # a user judge without ``to`` stays where it is
        return self._judge

    def check_available(self) -> None:
        _ = self.judge  # loading it raises NotAvailable with the reason

    def config(self) -> dict[str, Any]:
        return {"judge": str(getattr(self.judge, "name", self.judge_spec))}

    def conventions(self) -> dict[str, Any]:
        return {"judge": str(getattr(self.judge, "name", self.judge_spec)), "interval": f"95% bootstrap ({self.bootstrap})"}

    def applies(self, meta: Mapping[str, Any]) -> bool:
        pm = meta.get("prompt_meta") or {}
        return "labels" in pm and "categories" not in pm

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        pm = meta.get("prompt_meta") or {}
        return {"category": pm.get("category"), "labels": pm.get("labels")}

    def score(self, images, metas):
        values = self.judge(list(images), [m.get("prompt_meta") or {} for m in metas])
        return [{"correct": float(v["correct"]), "checks": dict(v.get("checks") or {})} if isinstance(v, Mapping)
                else {"correct": float(v)} for v in values]

    def _entry(self, values: Sequence[float], value: float) -> dict[str, Any]:
        """An aggregate entry: ``value`` (the metric's), with n and the bootstrap interval of ``values``."""
        return {**mean_ci(values, n_boot=self.bootstrap), "value": value, "lower_is_better": False}

    def aggregate(self, values, metas):
        """Columns through :class:`AlignmentAccuracy` (categories, then checks), each with a 95 % bootstrap interval."""
        by: dict[str, list[float]] = defaultdict(list)
        for v, m in zip(values, metas, strict=True):
            by[_category(m)].append(v["correct"])
        cats = sorted(by)
        correct = [float(v["correct"]) for v in values]
        acc = _column_means(cats, correct, [cats.index(_category(m)) for m in metas]) if values else {}
        out = {f"accuracy:{cat}": self._entry(by[cat], acc[cat]) for cat in cats}
        out["accuracy:all"] = {**mean_ci(correct, n_boot=self.bootstrap), "lower_is_better": False}
        if values:
            out["accuracy:all"]["value"] = acc["all"]
        checks: dict[str, list[float]] = defaultdict(list)
        for v in values:
            for name, ok in (v.get("checks") or {}).items():
                checks[name].append(float(ok))
        names = sorted(checks)
        held = _column_means(names, [x for n in names for x in checks[n]],
                             [i for i, n in enumerate(names) for _ in checks[n]]) if names else {}
        for name in names:
            out[f"check:{name}"] = self._entry(checks[name], held[name])
        return out

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        by: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(metas):
            by[_category(m)].append(i)
        correct = [v["correct"] for v in values]
        out = {f"accuracy:{c}": mean_sample(idx, [correct[i] for i in idx]) for c, idx in sorted(by.items())}
        out["accuracy:all"] = mean_sample(range(len(values)), correct)
        checks: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(values):
            for name in v.get("checks") or {}:
                checks[name].append(i)
        for name, idx in sorted(checks.items()):
            out[f"check:{name}"] = mean_sample(idx, [float(values[i]["checks"][name]) for i in idx])
        return out
