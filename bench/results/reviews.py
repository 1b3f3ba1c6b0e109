"""Human verdicts stored by ``t2ibench review --import``, read back as aggregate rows for the table.

``RUN/review/<metric label>/verdicts-<config hash>.json`` holds, per row id (``<image key>#<question
id>``), the judge's and the person's verdict (``correct``/``wrong``) and the image they saw. The
rows (:func:`review_rows`) are the ``review-*`` columns of ``t2ibench.metrics.review_agreement``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..fileio import read_json_object
from ..log import get_logger
from ..paths import safe_name
from ..store import RunDir
from .schema import AggregateRow, Aggregates, make_row
from .scoring import column_id

log = get_logger(__name__)

REVIEW_FORMAT = "t2ibench-review/1"
METRIC_NAME = "vqa_alignment"
VERDICTS = ("correct", "wrong")


def stored_verdicts(path: Path, config_hash: str) -> dict[str, dict[str, str]]:
    """The verdicts ``import_verdicts`` stored in ``path`` (one ``UserError`` line when damaged)."""
    expected = "the file `t2ibench review --import` writes (delete it and import the verdicts again)"
    doc = read_json_object(path, what="review verdicts", expected=expected)
    verdicts = doc.get("verdicts")
    if doc.get("format") != REVIEW_FORMAT or doc.get("config") != config_hash or not isinstance(verdicts, dict) or not all(
            isinstance(v, dict) and v.get("human") in VERDICTS and v.get("judge") in VERDICTS
            and all(isinstance(v.get(k), str) for k in ("image", "image_sha256", "method", "prompt_set", "category"))
            for v in verdicts.values()):
        raise UserError(f"review verdicts {path}: not a {REVIEW_FORMAT} file of configuration {config_hash}; expected {expected}")
    return verdicts


def review_rows(run_dir: Path | str, agg: Aggregates) -> list[AggregateRow]:
    """Aggregate rows (``bench.results.schema.AggregateRow`` fields) of the stored reviews of a
    scored run: per (metric, method, prompt set), the columns of
    ``t2ibench.metrics.review_agreement.review_columns``. Verdicts of an image that changed since
    the review are left out, with one warning line."""
    from t2ibench.metrics.review_agreement import review_columns

    run = RunDir(run_dir)
    out: list[AggregateRow] = []
    for label, info in sorted(agg["metrics"].items()):
        chash = info.get("config_hash")
        if info.get("name") != METRIC_NAME or not isinstance(chash, str):
            continue
        path = run.path / "review" / safe_name(label, "metric label") / f"verdicts-{chash}.json"
        if not path.is_file():
            continue
        verdicts = stored_verdicts(path, chash)
        current = {key: (run.read_meta(key) or {}).get("image_sha256") for key in {v["image"] for v in verdicts.values()}}
        fresh = [v for v in verdicts.values() if current[v["image"]] == v["image_sha256"]]
        if len(fresh) < len(verdicts):
            log.warning(f"t2ibench table: warning: {len(verdicts) - len(fresh)} verdicts in {path} are for images that "
                        f"changed since the review; left out (review them again: `t2ibench review {run.path}`)")
        groups: dict[tuple[str, str], list[dict[str, str]]] = {}
        for v in fresh:
            groups.setdefault((v["method"], v["prompt_set"]), []).append(v)
        for (method, pset), vs in sorted(groups.items()):
            cols = review_columns([v["image"] for v in vs], [v["category"] for v in vs],
                                  [v["judge"] == "correct" for v in vs], [v["human"] == "correct" for v in vs])
            for col, entry in cols.items():
                out.append(make_row(method=method, prompt_set=pset, metric=label, metric_name=METRIC_NAME,
                                    column=column_id(label, METRIC_NAME, col), **entry))
    return out
