"""Typed shape of the scoring results (``RUN/results/aggregates.json``) and of the table document.

The files stay plain JSON; these TypedDicts name their fields once. Rows are built by one
constructor (:func:`make_row`) and checked where a file is read (:func:`validate_aggregates`), so
the readers (table, check, plots, report) index typed fields. Compare lm-eval-harness'
``result_schema.py``.

Versions: ``t2ibench-aggregates/1`` and ``t2ibench-table/1``; ``delta``, ``plugin`` and the
image counts are optional fields.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence, TypedDict, cast

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


class TableEntry(AggregateRow):
    """A row of the table document: an aggregate row with its suite and model."""

    suite: str
    model: str


class TableRun(TypedDict):
    """A run a table document was made from."""

    run: str
    suite: str  # as labelled in the table (the suite's name, with the run's path when two runs clash)
    suite_hash: str
    model: str
    t2ibench: str
    n_images: int


class TableDoc(TypedDict):
    format: str
    runs: list[TableRun]
    conventions: dict[str, dict[str, dict[str, Any]]]  # suite -> metric label -> conventions
    variants: dict[str, dict[str, str]]  # suite -> {variant label: base method}
    references: dict[str, Optional[str]]  # suite -> reference method
    entries: list[TableEntry]


class ReferenceEntry(TypedDict):
    """An entry of a reference table as ``t2ibench check`` reads it: the key, the value, its direction."""

    suite: str
    prompt_set: str
    method: str
    column: str
    value: Optional[float]
    available: bool
    lower_is_better: Optional[bool]


# -- constructing rows ----------------------------------------------------------------------------
ROW_FIELDS = ("method", "prompt_set", "metric", "metric_name", "column", "available", "reason", "value", "n", "ci",
              "lower_is_better")


def make_row(*, method: str, prompt_set: str, metric: str, metric_name: str, column: str, available: bool = True,
             reason: str | None = None, value: float | None = None, n: int = 0, ci: Sequence[float] | None = None,
             lower_is_better: bool | None = None, **extras: Any) -> AggregateRow:
    """The one constructor of an aggregate row; ``extras``: a scorer's additional fields
    (``classifier_accuracy``, ``shares``, ``note``...). A NaN value, or an interval with a
    missing or NaN end, is stored as null."""
    interval = None if ci is None or any(v is None or v != v for v in ci) else [float(ci[0]), float(ci[1])]
    row: AggregateRow = {"method": method, "prompt_set": prompt_set, "metric": metric, "metric_name": metric_name,
                         "column": column, "available": available, "reason": reason,
                         "value": None if value is None or value != value else float(value), "n": int(n),
                         "ci": interval, "lower_is_better": lower_is_better}
    row.update(extras)  # type: ignore[typeddict-item]  # scorer-specific fields, JSON values
    return row


# -- validating files at the boundary ------------------------------------------------------------
class SchemaError(ValueError):
    """A field of a results file that does not have the schema's type: ``where`` and what was expected."""


def _number(value: Any, where: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{where} = {value!r:.40}; expected {'null or ' if optional else ''}a number")
    return float(value)


def _string(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise SchemaError(f"{where} = {value!r:.40}; expected {'null or ' if optional else ''}a string")
    return value


def _interval(value: Any, where: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise SchemaError(f"{where} = {value!r:.40}; expected null or [low, high]")
    return [cast(float, _number(v, f"{where}[{i}]", optional=False)) for i, v in enumerate(value)]


def _delta(value: Any, where: str) -> Delta:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: a {type(value).__name__}; expected a mapping (reference, value, ci, verdict, ...)")
    if value.get("verdict") not in ("better", "worse", "same"):
        raise SchemaError(f"{where}.verdict = {value.get('verdict')!r:.40}; expected better, worse or same")
    _string(value.get("reference"), f"{where}.reference")
    _number(value.get("value"), f"{where}.value", optional=False)
    _interval(value.get("ci"), f"{where}.ci")
    return cast(Delta, value)  # checked: the fields readers use


def validate_row(row: Any, where: str) -> AggregateRow:
    """``row`` checked against :class:`AggregateRow` (required fields and their types; ``delta``
    when present); extras are kept as they are. A ``SchemaError`` names the first bad field."""
    if not isinstance(row, dict):
        raise SchemaError(f"{where}: a {type(row).__name__}; expected a mapping with {', '.join(ROW_FIELDS)}")
    missing = [k for k in ROW_FIELDS if k not in row]
    if missing:
        raise SchemaError(f"{where}: no {missing[0]!r}; expected a mapping with {', '.join(ROW_FIELDS)}")
    for k in ("method", "prompt_set", "metric", "metric_name", "column"):
        _string(row[k], f"{where}.{k}")
    _string(row["reason"], f"{where}.reason", optional=True)
    if not isinstance(row["available"], bool):
        raise SchemaError(f"{where}.available = {row['available']!r:.40}; expected true or false")
    if row["lower_is_better"] is not None and not isinstance(row["lower_is_better"], bool):
        raise SchemaError(f"{where}.lower_is_better = {row['lower_is_better']!r:.40}; expected true, false or null")
    value = _number(row["value"], f"{where}.value", optional=True)
    if isinstance(row["n"], bool) or not isinstance(row["n"], int):
        raise SchemaError(f"{where}.n = {row['n']!r:.40}; expected an integer")
    out = cast(AggregateRow, {**row, "value": value, "ci": _interval(row["ci"], f"{where}.ci")})
    if "delta" in row:
        out["delta"] = _delta(row["delta"], f"{where}.delta")
    return out


def validate_aggregates(obj: dict[str, Any], where: str) -> Aggregates:
    """``obj`` (an aggregates file's JSON object) checked against :class:`Aggregates`: its format,
    header fields, each metric's record and each row. A ``SchemaError`` names the first bad field."""
    if obj.get("format") != AGGREGATES_FORMAT:
        raise SchemaError(f"{where}: format {obj.get('format')!r:.40}; expected {AGGREGATES_FORMAT!r}")
    for k in ("run", "suite", "suite_hash", "model", "t2ibench"):
        _string(obj.get(k), f"{where}: {k}")
    if isinstance(obj.get("n_images"), bool) or not isinstance(obj.get("n_images"), int):
        raise SchemaError(f"{where}: n_images = {obj.get('n_images')!r:.40}; expected an integer")
    _string(obj.get("reference"), f"{where}: reference", optional=True)
    metrics = obj.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
        raise SchemaError(f"{where}: metrics: expected a mapping label -> metric record")
    for label, info in metrics.items():
        if not isinstance(info.get("available", True), bool):
            raise SchemaError(f"{where}: metrics[{label!r}].available = {info.get('available')!r:.40}; expected true or false")
        if not isinstance(info.get("conventions") or {}, dict):
            raise SchemaError(f"{where}: metrics[{label!r}].conventions: expected a mapping")
    rows = obj.get("rows")
    if not isinstance(rows, list):
        raise SchemaError(f"{where}: rows: a {type(rows).__name__}; expected a list of rows")
    checked = [validate_row(r, f"{where}: rows[{i}]") for i, r in enumerate(rows)]
    return cast(Aggregates, {**obj, "rows": checked})


# -- accessors --------------------------------------------------------------------------------------
def has_value(row: AggregateRow) -> bool:
    """The row carries a number (the metric ran and produced one)."""
    return row["available"] and row["value"] is not None


def interval_of(row: AggregateRow) -> tuple[float, float] | None:
    ci = row["ci"]
    return (ci[0], ci[1]) if ci is not None else None
