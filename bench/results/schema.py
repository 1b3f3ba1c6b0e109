"""Typed shape of the scoring results (``RUN/results/aggregates.json``) and of the table document.

The files stay plain JSON; these TypedDicts name their fields once, for the writers
(bench.results.scoring, bench.results.deltas) and the readers (table, check, report), which
use the accessors below instead of ``.get(..., .get(...))`` chains. Compare lm-eval-harness'
``result_schema.py``.

Versions: ``t2ibench-aggregates/1`` and ``t2ibench-table/1``; ``delta`` and ``plugin`` are
optional additions (older files read the same, without them).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, TypedDict, cast

AGGREGATES_FORMAT = "t2ibench-aggregates/1"
TABLE_FORMAT = "t2ibench-table/1"

Verdict = Literal["better", "worse", "same"]
DeltaInterval = Literal["percentile", "mover"]  # paired percentile bootstrap, or MOVER from the two columns' own intervals


class Delta(TypedDict):
    """A method's value minus the reference method's on shared (prompt, seed) pairs (bench.results.deltas)."""

    reference: str  # the reference method's label (suite key ``reference``, default "sd")
    value: float
    ci: Optional[list[float]]  # 95 % interval [low, high] of the difference
    ci_method: DeltaInterval  # how ``ci`` was made (bench.results.deltas)
    n_pairs: int
    resamples: int
    significant: bool  # the interval excludes 0
    verdict: Verdict  # better / worse by the column's direction when significant, else same


class _RowBase(TypedDict):
    method: str
    prompt_set: str
    metric: str  # the metric's label in the suite
    metric_name: str  # the registered scorer name
    column: str  # table column: "fid", "fd:smiling", "fd-clip.fd:smiling", ...
    available: bool
    reason: Optional[str]  # why not available
    value: Optional[float]
    n: int
    ci: Optional[list[float]]  # 95 % interval of the value
    lower_is_better: Optional[bool]


class AggregateRow(_RowBase, total=False):
    """One (method, prompt set, column) of a run; scorers may add extras (``classifier_accuracy``,
    ``shares``, ``n_reference``, ``ci_method``, ``n_truncated``, ``note``...)."""

    delta: Delta
    plugin: float  # fairness: the plug-in (uncorrected) FD/KL, the papers' number
    images: int  # finished images of this (method, prompt set) in the run
    expected_images: int  # images the suite asks for there (run.json; absent for older runs)
    partial: bool  # images < expected_images: values over a subset of the prompts
    classifier_accuracy: Optional[float]
    note: str


class MetricInfo(TypedDict, total=False):
    name: str
    params: dict[str, Any]
    prompt_sets: Optional[list[str]]
    available: bool
    reason: Optional[str]
    config: Optional[dict[str, Any]]
    config_hash: str
    conventions: dict[str, Any]
    newly_scored: int
    cached: int
    seconds: float


class _AggregatesBase(TypedDict):
    format: str
    run: str
    suite: str
    suite_hash: str
    model: str
    t2ibench: str
    n_images: int
    reference: Optional[str]  # the suite's reference method for deltas (None: no deltas)
    metrics: dict[str, MetricInfo]
    rows: list[AggregateRow]


class Aggregates(_AggregatesBase, total=False):
    """``RUN/results/aggregates.json``; its integrity record is added when it is written."""

    inputs_digest: str  # SHA-256 of the images' keys and hashes and the metrics' config hashes
    digest: str  # SHA-256 of the file's other fields (bench.results.scoring.seal_aggregates)


class TableEntry(AggregateRow, total=False):
    """A row of the table document: an aggregate row with its suite and model."""

    suite: str
    model: str


class TableDoc(TypedDict):
    format: str
    runs: list[dict[str, Any]]
    conventions: dict[str, dict[str, dict[str, Any]]]  # suite -> metric label -> conventions
    variants: dict[str, dict[str, str]]  # suite -> {variant label: base method}
    references: dict[str, Optional[str]]  # suite -> reference method
    entries: list[TableEntry]


# -- accessors (tolerant of older files: missing optional fields read as absent) ----------------
def has_value(row: Mapping[str, Any]) -> bool:
    """The row carries a number (the metric ran and produced one)."""
    return bool(row.get("available", True)) and row.get("value") is not None


def delta_of(row: Mapping[str, Any]) -> Delta | None:
    d = row.get("delta")
    return cast(Delta, d) if isinstance(d, dict) else None  # a JSON object written as a Delta


def interval_of(row: Mapping[str, Any]) -> tuple[float, float] | None:
    ci = row.get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def column_of(row: Mapping[str, Any]) -> str:
    return str(row["column"]) if "column" in row else str(row.get("metric", "?"))
