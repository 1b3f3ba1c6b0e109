"""Scoring a run directory: per-image values (cached), then aggregates per (method, prompt set, metric).

``score_run(RUN)`` reads the finished images (``RunDir.records()``), the suite's metric specs,
scores only images whose (content hash, per-image inputs, metric configuration) is not cached
yet, and writes ``RUN/results/aggregates.json``::

    {"format": "t2ibench-aggregates/1", "suite": ..., "suite_hash": ..., "t2ibench": ...,
     "metrics": {label: {"name", "params", "prompt_sets", "available", "reason", "config",
                         "conventions", "newly_scored", "cached"}},
     "rows": [{"method", "prompt_set", "metric" (label), "column", "value", "n", "ci",
               "lower_is_better", "available", "reason", "delta"?, ...extras}]}

(typed in bench.results.schema); ``delta``: the paired difference from the suite's reference
method (bench.results.deltas).

A metric whose model or data is missing gets ``available: false`` and ``reason``
("not available: <reason>" in the tables) — never a number.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, overload

import torch

from .. import __version__
from ..errors import UserError
from ..fileio import atomic_write_json, read_json_object
from ..log import get_logger
from ..paths import safe_name
from ..placement import resolve_device
from ..registry import builtins_only
from ..store import RunDir
from .cache import ScoreCache, chunks, item_key
from .deltas import add_deltas
from .schema import AGGREGATES_FORMAT, AggregateRow, Aggregates, MetricInfo, SchemaError, make_row, validate_aggregates

if TYPE_CHECKING:
    from ..suite import Suite

AGGREGATES = "aggregates.json"
log = get_logger(__name__)


def _metrics_module():
    from t2ibench.metrics import common

    return common


def column_id(label: str, scorer_name: str, column: str) -> str:
    """Table column of one aggregate entry: ``fid``, ``fd:Smiling``, ``<label>.fd:Smiling``..."""
    if column == scorer_name:
        return label
    if label == scorer_name:
        return column
    return f"{label}.{column}"


def metric_specs(suite, metrics: list[str] | None):
    """The suite's metric specs selected by ``metrics`` (labels, names or registered metrics; None = all)."""
    from ..registry import METRICS
    from ..suite import MetricSpec

    specs = list(suite.metrics)
    if not metrics:
        return specs
    by_key = {s.label: s for s in specs} | {s.name: s for s in specs}
    chosen = []
    for m in metrics:
        if m in by_key:
            chosen.append(by_key[m])
        elif m in METRICS:
            chosen.append(MetricSpec(name=m))
        else:
            raise UserError(
                f"--metrics: {m!r} is neither a metric of suite {suite.name!r} ({sorted(s.label for s in specs)}) "
                f"nor a registered metric ({METRICS.names()})"
            )
    return chosen


def build_scorer(spec, where: str = ""):
    """The Scorer of a metric spec (``name`` from the registry, ``params`` as keyword arguments)."""
    from ..registry import METRICS

    common = _metrics_module()
    cls = METRICS.get(spec.name, where=where)
    try:
        scorer = cls(**dict(spec.params))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where or spec.label}: bad params for metric {spec.name!r}: {exc}") from None
    if not isinstance(scorer, common.Scorer):
        raise UserError(f"{where or spec.label}: metric {spec.name!r} built a {type(scorer).__name__}; "
                        f"expected a t2ibench.metrics.common.Scorer")
    return scorer


def _unique_by_key(todo: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The first ``(key, record)`` of each key, in order."""
    seen: set[str] = set()
    out = []
    for k, r in todo:
        if k not in seen:
            seen.add(k)
            out.append((k, r))
    return out


def score_metric(
    run: RunDir, records: list, spec, scorer, *, quiet: bool = True, shard: tuple[int, int] | None = None,
    reference: str | None = None,
) -> tuple[MetricInfo, list[AggregateRow]]:
    """Score ``records`` with one scorer (cache-aware) and aggregate: the metric's record and its rows.

    shard=(rank, world_size): score only every world_size-th missing item starting at rank, and
    skip aggregation (the per-image cache is shared; a later unsharded call aggregates).
    reference: the method every other method's rows get a paired ``delta`` against (None: none).
    """
    common = _metrics_module()
    safe_name(spec.label, "metric label")  # RUN/scores/<label>/: never a path out of the run
    info: MetricInfo = {"name": spec.name, "params": dict(spec.params), "prompt_sets": spec.prompt_sets}
    wanted = [r for r in records if spec.prompt_sets is None or r.meta.get("prompt_set") in spec.prompt_sets]
    wanted = [r for r in wanted if scorer.applies(r.meta)]  # e.g. fairness: fairness prompt sets only
    try:
        scorer.check_available()
        config = {"scorer": spec.name, **scorer.config()}
    except common.NotAvailable as exc:
        info.update({"available": False, "reason": str(exc), "config": None, "conventions": {}})
        groups = sorted({(str(r.meta.get("method")), str(r.meta.get("prompt_set"))) for r in wanted})
        return info, [_unavailable_row(spec, m, p, str(exc), n=0, lower_is_better=None) for m, p in groups]

    chash = common.config_hash(config)
    cache = ScoreCache(run.scores_dir, spec.label, chash, config, scorer.value_kind)
    keys = [item_key(r.meta.get("image_sha256", ""), scorer.item_inputs(r.meta)) for r in wanted]
    cached = cache.load()
    from_disk = set(cached)
    newly = _score_missing(cache, cached, list(zip(keys, wanted, strict=True)), scorer, shard=shard,
                           label=spec.label, quiet=quiet)
    info.update({"available": True, "reason": None, "config": config, "config_hash": chash, "newly_scored": newly,
                 "cached": len(wanted) - newly})
    if shard is not None:
        return info, []
    try:
        info["conventions"] = scorer.conventions()
    except common.NotAvailable as exc:  # pragma: no cover - conventions never load more than check_available
        info["conventions"] = {"error": str(exc)}
    values = [cached[k] for k in keys]
    scorer.observe(values, [r.meta for r in wanted])  # pairing across methods (DreamSim)
    try:
        rows, samples = _aggregate_groups(spec, scorer, values, [r.meta for r in wanted], paired=reference is not None)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if not any(k in from_disk for k in keys):
            raise  # values computed just now: a bug of the scorer, keep its traceback
        raise UserError(f"cached scores in {cache.dir} do not fit metric {spec.name!r} ({type(exc).__name__}: "
                        f"{exc}); expected the values `t2ibench score` wrote: delete that folder and score again") from None
    if reference is not None:
        add_deltas(rows, samples, reference, n_boot=int(getattr(scorer, "paired_resamples", 1000)))
    return info, rows


def _score_missing(cache: ScoreCache, cached: dict[str, Any], items: list[tuple[str, Any]], scorer, *,
                   shard: tuple[int, int] | None, label: str, quiet: bool) -> int:
    """Score the ``(key, record)`` items not in ``cached`` (each key once; with ``shard``, this rank's
    share by key), adding them to ``cached`` and the cache on disk; returns how many were scored."""
    todo = _unique_by_key([(k, r) for k, r in items if k not in cached])  # same pixels+inputs twice: once
    if shard is not None:  # by item key: stable whatever other shards have cached already
        todo = [(k, r) for k, r in todo if int(k[:8], 16) % shard[1] == shard[0]]
    t0 = time.perf_counter()
    for batch in chunks(todo, int(getattr(scorer, "batch_size", 16))):
        values = scorer.score([r.load_image() for _, r in batch], [r.meta for _, r in batch])
        new = {k: v for (k, _), v in zip(batch, values, strict=True)}
        cache.add(new)
        cached.update(new)
    if todo and not quiet:
        log.info(f"t2ibench score: {label}: scored {len(todo)} new images in {time.perf_counter() - t0:.1f}s "
                 f"({len(items) - len(todo)} cached)")
    return len(todo)


def _aggregate_groups(spec, scorer, values: list[Any], metas: list[Mapping[str, Any]], *, paired: bool,
                      ) -> tuple[list[AggregateRow], dict[tuple[str, str], tuple[dict, list]]]:
    """The rows of every (method, prompt set) group and, when ``paired``, the column samples the
    paired deltas resample."""
    common = _metrics_module()
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, meta in enumerate(metas):
        groups[(str(meta.get("method")), str(meta.get("prompt_set")))].append(i)
    rows: list[AggregateRow] = []
    samples: dict[tuple[str, str], tuple[dict, list]] = {}
    for (method, pset), idx in sorted(groups.items()):
        group_values, group_metas = [values[i] for i in idx], [metas[i] for i in idx]
        try:
            entries = scorer.aggregate(group_values, group_metas)
            if paired:
                samples[(method, pset)] = (scorer.column_samples(group_values, group_metas), group_metas)
        except common.NotAvailable as exc:
            rows.append(_unavailable_row(spec, method, pset, str(exc), n=len(idx), lower_is_better=scorer.lower_is_better))
            continue
        for col, entry in entries.items():
            rows.append(make_row(method=method, prompt_set=pset, metric=spec.label, metric_name=spec.name,
                                 column=column_id(spec.label, scorer.name, col), **_jsonable(entry)))
    return rows, samples


def _unavailable_row(spec, method: str, prompt_set: str, reason: str, *, n: int,
                     lower_is_better: bool | None) -> AggregateRow:
    return make_row(method=method, prompt_set=prompt_set, metric=spec.label, metric_name=spec.name, column=spec.label,
                    available=False, reason=reason, n=n, lower_is_better=lower_is_better)


def _mark_partial(rows: list[AggregateRow], records: list, expected: Any) -> None:
    """Give each row the images its (method, prompt set) has (``images``) and, where ``run.json``
    records how many the suite asks for, ``expected_images`` and ``partial`` (fewer present);
    one warning line per partial (method, prompt set)."""
    have = Counter(f"{r.meta.get('method')}/{r.meta.get('prompt_set')}" for r in records)
    expected = expected if isinstance(expected, dict) else {}
    for group in sorted(k for k, m in expected.items() if isinstance(m, int) and have[k] < m):
        log.warning(f"t2ibench score: warning: {group} has {have[group]} of {expected[group]} images (the run is "
                    "incomplete: rerun `t2ibench generate`); its rows are marked partial")
    for row in rows:
        group = f"{row['method']}/{row['prompt_set']}"
        row["images"] = have[group]
        if isinstance(expected.get(group), int):
            row["expected_images"] = expected[group]
            row["partial"] = have[group] < expected[group]


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def score_run(
    run_dir: Path | str,
    metrics: list[str] | None = None,
    *,
    quiet: bool = True,
    scorers: dict[str, Any] | None = None,
    shard: tuple[int, int] | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
    suite: Suite | None = None,
) -> Aggregates:
    """Score a run directory incrementally; write and return ``RUN/results/aggregates.json``'s content.

    Every image is read through ``RunDir.records()`` (sidecar checked, PNG bytes against their
    hash): a damaged file is a one-line ``UserError``, never a silently kept or dropped score.
    trust_remote_code: import ``module:attribute`` names the run's suite gives (its metrics,
    judges, feature networks); by default only built-in and installed names resolve, since a
    run directory may come from someone else.

    suite: the ``Suite`` to score with, when the caller holds it (``t2ibench run`` scores the suite
    given on its command line, not the ``suite.yaml`` of an existing directory); it must be the
    suite the run directory records. Default: the run directory's own.

    shard=(rank, world_size): this process scores its share of the missing per-image values
    only and writes no aggregates (ranks of ``accelerate launch``); run once more unsharded
    afterwards (no model forward then) to aggregate.

    metrics: labels or names of the suite's metrics (default all), or registered metric names
    not in the suite (default params). scorers: optional prebuilt ``{label: Scorer}`` (tests,
    callers that already hold models). device: where the scorers' networks run (``cpu``,
    ``cuda``, ...; default CUDA when available); values and their cache do not depend on it.
    """
    where = resolve_device(device)
    with builtins_only(not trust_remote_code):
        return _score_run(run_dir, metrics, quiet=quiet, scorers=scorers, shard=shard, device=where, suite=suite)


def _score_run(run_dir, metrics, *, quiet, scorers, shard, device: torch.device, suite: Suite | None = None) -> Aggregates:
    run = RunDir(run_dir)
    run.check_contained()
    info = run.run_info()
    if suite is None:
        suite = run.suite()
    elif info.get("suite_hash") != suite.hash:
        raise UserError(f"{run.path}: holds suite {info.get('suite_hash')!r}, not the given suite {suite.name!r} "
                        f"({suite.hash}); expected the run directory `t2ibench generate` wrote for that suite")
    records = list(run.records())
    specs = metric_specs(suite, metrics)
    reference = suite.reference_method()
    out: Aggregates = {
        "format": AGGREGATES_FORMAT,
        "run": str(Path(run_dir)),
        "suite": suite.name,
        "suite_hash": suite.hash,
        "model": suite.model,
        "t2ibench": __version__,
        "n_images": len(records),
        "reference": reference,
        "metrics": {},
        "rows": [],
    }
    previous = load_aggregates(run_dir, missing_ok=True, verify=False) if metrics or shard else None
    for i, spec in enumerate(specs):
        scorer = ((scorers or {}).get(spec.label) or build_scorer(spec, where=f"metrics[{i}] ({spec.label})")).to(device)
        t0 = time.perf_counter()
        metric_info, rows = score_metric(run, records, spec, scorer, quiet=quiet, shard=shard, reference=reference)
        metric_info["seconds"] = round(time.perf_counter() - t0, 2)  # wall time: model load, scoring, aggregation
        out["rows"] += rows
        out["metrics"][spec.label] = metric_info
    if shard is not None:
        out["rows"] = []
        return out
    _mark_partial(out["rows"], records, info.get("expected_images"))
    if previous:  # keep the other metrics' results when scoring a subset
        done = set(out["metrics"])
        out["metrics"] = {**{k: v for k, v in previous["metrics"].items() if k not in done}, **out["metrics"]}
        out["rows"] = [r for r in previous["rows"] if r["metric"] not in done] + out["rows"]
    atomic_write_json(run.results_dir / AGGREGATES, seal_aggregates(out, records))
    return out


def inputs_digest(records: list, metrics: Any) -> str:
    """SHA-256 of what aggregates are computed from: every image's key and content hash, and each
    metric's configuration hash."""
    blob = json.dumps({"images": [[r.key, r.meta.get("image_sha256")] for r in records],
                       "metrics": {str(k): (v or {}).get("config_hash") for k, v in sorted(dict(metrics).items())}},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _body_digest(agg: Mapping[str, Any]) -> str:
    body = {k: v for k, v in agg.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def seal_aggregates(agg: Any, records: list) -> Any:
    """``agg`` with its integrity record: ``inputs_digest`` (the images and metric configurations
    it was computed from) and ``digest`` (of everything else in the file, values included)."""
    agg["inputs_digest"] = inputs_digest(records, agg.get("metrics") or {})
    agg["digest"] = _body_digest(json.loads(json.dumps(agg, default=str)))  # as the file reads back
    return agg


def verify_aggregates(run_dir: Path | str, agg: Mapping[str, Any], path: Path) -> None:
    """A ``UserError`` unless ``agg`` is what ``score`` wrote for the run's present images: its
    digest holds (no value edited) and its inputs are the images the run holds now (none deleted,
    added or changed since)."""
    rescore = f"rerun `t2ibench score {run_dir}`"
    if not isinstance(agg.get("digest"), str) or agg["digest"] != _body_digest(agg):
        raise UserError(f"aggregates file {path}: its digest does not match its content (edited, or written by another "
                        f"t2ibench version); expected the file `t2ibench score` wrote: {rescore}")
    records = list(RunDir(run_dir).records(warn=False))
    if agg.get("inputs_digest") != inputs_digest(records, agg.get("metrics") or {}):
        raise UserError(f"aggregates file {path}: stale: the run's images changed since it was scored; {rescore}")


@overload
def load_aggregates(run_dir: Path | str, *, missing_ok: Literal[False] = ..., verify: bool = ...) -> Aggregates: ...
@overload
def load_aggregates(run_dir: Path | str, *, missing_ok: bool, verify: bool = ...) -> Aggregates | None: ...
def load_aggregates(run_dir: Path | str, *, missing_ok: bool = False, verify: bool = True) -> Aggregates | None:
    """``RUN/results/aggregates.json`` checked against the schema (None when absent and
    ``missing_ok``); a ``UserError`` when it is damaged, does not fit the schema or, with
    ``verify``, fails ``verify_aggregates`` (edited, or stale)."""
    RunDir(run_dir).check_contained()
    path = Path(run_dir) / "results" / AGGREGATES
    if not path.exists():
        if missing_ok:
            return None
        raise UserError(f"{path} not found; run `t2ibench score {run_dir}` first")
    agg = read_json_object(path, what="aggregates file", expected=f"its JSON object; re-run `t2ibench score {run_dir}`")
    if verify:
        verify_aggregates(run_dir, agg, path)
    try:
        return validate_aggregates(agg, f"aggregates file {path}")
    except SchemaError as exc:
        raise UserError(f"{exc}; expected the file `t2ibench score` writes: re-run `t2ibench score {run_dir}`") from None
