"""Question-based alignment by category (Attention Modulation's Table 2; TIFA, DSG, GenEval).

For each image, :func:`t2ibench.metrics.questions.prompt_questions` writes questions from its
prompt (the prompt set's text, never a method's rewrite); an answering backend
(:mod:`t2ibench.metrics.vqa_answers`) answers them; each answer is normalised and compared with
the expected one. The per-image value keeps every question, answer and verdict, so the table is
recomputed from the score cache without the model::

    {"questions": [Question.to_json()], "answers": [str | None], "verdicts": [bool | None],
     "dependent": [bool | None], "skipped": [str]}

``verdicts`` are strict (the answer alone); ``dependent`` are DSG's (a question holds only where
its parent questions hold). An unanswered question (None: the backend does not answer that kind)
counts nowhere.

Columns (``higher is better``; named apart from the ``alignment`` scorer's ``accuracy:*`` so both
fit one table): ``vqa:<category>`` (DSG) and ``vqa-strict:<category>``: right answers / answered
questions of that category, pooled over the images; ``vqa:all`` and ``vqa-strict:all``: the mean
over images of each image's share of right answers (DSG's and TIFA's per-image score);
``vqa-all-correct``: the share of images whose answered questions are all right.
Intervals: 95 % percentile bootstrap over images; paired deltas resample the same images.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from t2ibench.metrics.common import ColumnSample, NotAvailable, Scorer, bootstrap_ci, mean_ci, mean_sample, prompt_of
from t2ibench.metrics.questions import CATEGORIES, Question, QuestionSet, prompt_questions
from t2ibench.metrics.vqa_answers import AnsweringBackend, RoutedBackend, dependency_verdicts, verdict

#: bumped when the question grammar changes, so cached questions are not reused across grammars
QUESTIONS_VERSION = "t2ibench-questions/1"
#: question kinds a detector answers when one is given (GenEval: objects, counts, positions)
DETECTOR_KINDS = ("presence", "count", "relation")


@lru_cache(maxsize=4096)
def _questions(text: str) -> QuestionSet:
    return prompt_questions(text)


def ratio_sample(items: list[int], right: list[float], asked: list[float]) -> ColumnSample:
    """A column that is Σ right / Σ asked over the images ``items`` (pooled accuracy)."""
    num, den = np.asarray(right, dtype=np.float64), np.asarray(asked, dtype=np.float64)

    def stat(pos: np.ndarray) -> np.ndarray:
        return num[pos].sum(axis=-1) / np.maximum(den[pos].sum(axis=-1), 1e-12)

    return ColumnSample(np.asarray(items, dtype=np.int64), stat)


def _ratio_entry(right: list[float], asked: list[float], n_boot: int) -> dict[str, Any]:
    num, den = np.asarray(right, dtype=np.float64), np.asarray(asked, dtype=np.float64)
    value = float(num.sum() / den.sum())
    pairs = np.stack([num, den], axis=1)
    lo, hi = bootstrap_ci(pairs, lambda r: r[..., 0].sum(-1) / np.maximum(r[..., 1].sum(-1), 1e-12),
                          n_boot=n_boot, vectorized=True)
    return {"value": value, "n": int(len(num)), "ci": [lo, hi] if len(num) > 1 else None, "questions": int(den.sum()),
            "lower_is_better": False}


def _per_image(values: list[Mapping[str, Any]], key: str):
    """Per category: (image positions, right answers, answered questions); and per image: share right."""
    by: dict[str, tuple[list[int], list[float], list[float]]] = defaultdict(lambda: ([], [], []))
    share: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        cats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for q, ok in zip(v["questions"], v[key], strict=True):
            if ok is None:
                continue
            cats[q["category"]][0] += float(ok)
            cats[q["category"]][1] += 1.0
        for cat, (r, a) in cats.items():
            by[cat][0].append(i)
            by[cat][1].append(r)
            by[cat][2].append(a)
        asked = sum(a for _, a in cats.values())
        if asked:
            share.append((i, sum(r for r, _ in cats.values()) / asked))
    return by, share


def _ordered(cats) -> list[str]:
    return [c for c in CATEGORIES if c in cats] + sorted(c for c in cats if c not in CATEGORIES)


class VQAAlignmentScorer(Scorer):
    """Per-category question accuracy, answered by ``vqa`` (``"tinyworld"`` or a local VQA model
    folder / Hugging Face id: BLIP-VQA or an image-text-to-text VLM prompted with ``vqa_prompt``,
    ``{question}`` in it) and, for presence, counts and positions, ``detector`` (a local
    zero-shot detector; None = the VQA model answers those too)."""

    name = "vqa_alignment"
    lower_is_better = False
    network_attributes = ("_backend",)

    def __init__(self, vqa: str = "tinyworld", detector: str | None = None, revision: str | None = None,
                 detector_revision: str | None = None, detector_threshold: float = 0.3,
                 counting_threshold: float = 0.9, nms_threshold: float = 1.0, position_threshold: float = 0.1,
                 max_objects: int = 16, dtype: str | None = None, vqa_prompt: str | None = None,
                 batch_size: int = 16, bootstrap: int = 1000,
                 _backend: AnsweringBackend | None = None) -> None:
        self.vqa, self.detector, self.revision, self.detector_revision = vqa, detector, revision, detector_revision
        self.detector_options = {"threshold": float(detector_threshold), "counting_threshold": float(counting_threshold),
                                 "nms_threshold": float(nms_threshold), "position_threshold": float(position_threshold),
                                 "max_objects": int(max_objects)}
        self.dtype, self.vqa_prompt = dtype, vqa_prompt
        self.batch_size = batch_size
        self.bootstrap = bootstrap
        self._backend = _backend

    def _build(self) -> AnsweringBackend:
        if self.vqa == "tinyworld":
            from t2ibench.metrics.vqa_tinyworld import tinyworld_answers

            vqa: AnsweringBackend = tinyworld_answers()
        else:
            from t2ibench.metrics.vqa_models import load_vqa_backend

            vqa = load_vqa_backend(self.vqa, revision=self.revision, dtype=self.dtype, template=self.vqa_prompt)
        if self.detector is None:
            return vqa
        from t2ibench.metrics.vqa_models import load_detector_backend

        det = load_detector_backend(self.detector, revision=self.detector_revision, dtype=self.dtype,
                                    **self.detector_options)
        return RoutedBackend(vqa, {k: det for k in DETECTOR_KINDS})

    @property
    def backend(self) -> AnsweringBackend:
        if self._backend is None:
            self._backend = self.place(self._build())
        return self._backend

    def check_available(self) -> None:
        _ = self.backend  # loading it raises NotAvailable with the reason

    def config(self) -> dict[str, Any]:
        return {"questions": QUESTIONS_VERSION, "backend": self.backend.name, **self.backend.conventions()}

    def conventions(self) -> dict[str, Any]:
        return {"questions": f"{QUESTIONS_VERSION} (docs/protocols.md: questions from a prompt)",
                "backend": self.backend.name, **self.backend.conventions(),
                "score": "vqa = DSG (a question holds only where its parents hold); vqa-strict = the answer alone",
                "interval": f"95% bootstrap over images ({self.bootstrap})"}

    def applies(self, meta: Mapping[str, Any]) -> bool:
        pm = meta.get("prompt_meta") or {}
        return "tsa" not in pm and "categories" not in pm  # fairness prompts assert no scene

    def item_inputs(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"prompt": prompt_of(meta)}

    def score(self, images, metas):
        sets = [_questions(prompt_of(m)) for m in metas]
        answers = self.backend.answer(list(images), [list(s.questions) for s in sets])
        out = []
        for s, got in zip(sets, answers, strict=True):
            if len(got) != len(s.questions):
                raise ValueError(f"backend {self.backend.name!r} gave {len(got)} answers to {len(s.questions)} questions")
            strict = [verdict(q, a) for q, a in zip(s.questions, got, strict=True)]
            out.append({"questions": [q.to_json() for q in s.questions], "answers": list(got), "verdicts": strict,
                        "dependent": dependency_verdicts(s.questions, strict), "skipped": list(s.skipped)})
        return out

    def aggregate(self, values, metas):
        out: dict[str, dict[str, Any]] = {}
        for key, prefix in (("dependent", "vqa"), ("verdicts", "vqa-strict")):
            by, share = _per_image(values, key)
            for cat in _ordered(by):
                _, right, asked = by[cat]
                out[f"{prefix}:{cat}"] = _ratio_entry(right, asked, self.bootstrap)
            out[f"{prefix}:all"] = {**mean_ci([s for _, s in share], n_boot=self.bootstrap), "lower_is_better": False}
        _, share = _per_image(values, "verdicts")
        out["vqa-all-correct"] = {**mean_ci([float(s == 1.0) for _, s in share], n_boot=self.bootstrap),
                              "lower_is_better": False}
        unanswered = sum(a is None for v in values for a in v["answers"])
        unasked = sum(not v["questions"] for v in values)
        out["vqa:all"]["notes"] = f"{unanswered} questions not answered by the backend; {unasked} prompts without questions"
        return out

    def column_samples(self, values, metas) -> dict[str, ColumnSample]:
        out: dict[str, ColumnSample] = {}
        for key, prefix in (("dependent", "vqa"), ("verdicts", "vqa-strict")):
            by, share = _per_image(values, key)
            for cat in _ordered(by):
                out[f"{prefix}:{cat}"] = ratio_sample(*by[cat])
            out[f"{prefix}:all"] = mean_sample([i for i, _ in share], [s for _, s in share])
        _, share = _per_image(values, "verdicts")
        out["vqa-all-correct"] = mean_sample([i for i, _ in share], [float(s == 1.0) for _, s in share])
        return out


def questions_of(value: Mapping[str, Any]) -> list[Question]:
    """The questions stored in one per-image value."""
    return [Question.from_json(q) for q in value["questions"]]


__all__ = ["VQAAlignmentScorer", "NotAvailable", "ratio_sample", "questions_of"]
