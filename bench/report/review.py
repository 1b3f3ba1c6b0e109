"""``t2ibench review``: a person checks the ``vqa_alignment`` judge's verdicts (Attention Modulation's
semi-manual step), and the table shows the human-checked accuracy beside the judge's.

Layout (inside the run directory)::

    RUN/review/<metric label>/sheet.html                 self-contained sheet (images embedded)
    RUN/review/<metric label>/sheet.csv                  the same rows, ``human`` empty, for a spreadsheet
    RUN/review/<metric label>/verdicts-<config>.json     imported human verdicts of that configuration

A row is one question the judge answered on one image; its ``id`` is ``<image key>#<question id>``.
Each row also names the metric label, the configuration hash of its score cache and the image's
SHA-256, so an import matches rows exactly: a row of another run, another image or another metric
configuration is refused. ``human`` is ``correct`` (the image shows what the question expects),
``wrong``, or empty (not reviewed). Values come from the score cache only (no model is loaded).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..cliargs import trust_remote_code
from ..errors import UserError
from ..fileio import atomic_write_json, atomic_write_text, read_user_file
from ..log import get_logger
from ..paths import safe_name
from ..results.reviews import METRIC_NAME, REVIEW_FORMAT, VERDICTS, stored_verdicts
from ..results.schema import Aggregates, MetricInfo
from ..store import ImageRecord, RunDir

log = get_logger(__name__)

#: the columns of the sheet's CSV and of its export, in order
COLUMNS = ("id", "metric", "config", "image", "image_sha256", "method", "prompt_set", "prompt", "question", "category",
           "expected", "answer", "judge", "human")
#: the columns an import reads (the others are for the person)
REQUIRED = ("id", "metric", "config", "image_sha256", "human")
#: CSV cells a spreadsheet would read as a formula are written with a leading apostrophe
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReviewRow:
    """One question on one image, with the judge's answer and verdict (``correct``/``wrong``)."""

    id: str
    metric: str
    config: str
    image: str
    image_sha256: str
    method: str
    prompt_set: str
    prompt: str
    question: str
    category: str
    expected: str
    answer: str
    judge: str
    human: str = ""


@dataclass(frozen=True)
class Sheet:
    """The rows of one metric of one run, and the images they show (image key → record)."""

    run: RunDir
    label: str
    config_hash: str
    rows: list[ReviewRow]
    images: dict[str, ImageRecord]

    @property
    def folder(self) -> Path:
        return self.run.path / "review" / self.label

    def verdicts_path(self) -> Path:
        return self.folder / f"verdicts-{self.config_hash}.json"


def _metric_info(agg: Aggregates, metric: str, where: str) -> tuple[str, MetricInfo]:
    """(label, info) of the run's ``vqa_alignment`` metric named by label or by name."""
    metrics = agg["metrics"]
    labels = [k for k, v in metrics.items() if v.get("name") == METRIC_NAME]
    if metric in metrics:
        label = metric
    elif metric == METRIC_NAME and len(labels) == 1:
        label = labels[0]
    elif metric == METRIC_NAME and labels:
        raise UserError(f"{where}: several {METRIC_NAME} metrics ({sorted(labels)}); expected --metric LABEL, one of them")
    else:
        raise UserError(f"{where}: no metric {metric!r} in the scored run; expected the label of a {METRIC_NAME} metric "
                        f"({sorted(labels) or 'none scored'})")
    info = metrics[label]
    if info.get("name") != METRIC_NAME:
        raise UserError(f"{where}: metric {label!r} is {info.get('name')!r}; review reads {METRIC_NAME} metrics only")
    if not info.get("available") or not isinstance(info.get("config_hash"), str):
        raise UserError(f"{where}: metric {label!r} was not scored (not available: {info.get('reason')}); "
                        "nothing to review")
    return safe_name(label, "metric label"), info


def load_sheet(run_dir: Path | str, metric: str = METRIC_NAME) -> Sheet:
    """The review rows of metric ``metric`` (label, or the name when one metric has it) of a scored
    run, read from its score cache (digests checked by ``ScoreCache.load``)."""
    from t2ibench.metrics.vqa_alignment import VQAAlignmentScorer

    from ..results.cache import ScoreCache, item_key
    from ..results.scoring import load_aggregates

    run = RunDir(run_dir)
    agg = load_aggregates(run.path)  # checks containment, digest and that the images are the scored ones
    label, info = _metric_info(agg, metric, str(run.path))
    try:
        scorer = VQAAlignmentScorer(**dict(info.get("params") or {}))  # item_inputs and applies only: no model
    except (TypeError, ValueError) as exc:
        raise UserError(f"{run.path}: metric {label!r} was scored with params this version does not take ({exc}); "
                        f"expected a run scored by this t2ibench: rerun `t2ibench score {run.path}`") from None
    cache = ScoreCache(run.scores_dir, label, info["config_hash"], info.get("config") or {})
    values = cache.load()
    sets = info.get("prompt_sets")
    rows: list[ReviewRow] = []
    images: dict[str, ImageRecord] = {}
    for rec in run.records(warn=False):
        if (sets is not None and rec.meta.get("prompt_set") not in sets) or not scorer.applies(rec.meta):
            continue
        value = values.get(item_key(rec.meta["image_sha256"], scorer.item_inputs(rec.meta)))
        if value is None:
            raise UserError(f"{rec.key}: no {label} score in {cache.dir} (cache part missing or damaged); "
                            f"expected a scored run: rerun `t2ibench score {run.path}`")
        try:
            new = list(_rows_of(rec, value, label, info["config_hash"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"cached scores in {cache.dir} do not fit metric {METRIC_NAME!r} ({type(exc).__name__}: {exc}); "
                            "expected the values `t2ibench score` wrote: delete that folder and score again") from None
        if new:
            rows += new
            images[rec.key] = rec
    return Sheet(run, label, info["config_hash"], rows, images)


def _rows_of(rec: ImageRecord, value: Mapping[str, Any], label: str, config_hash: str) -> Iterable[ReviewRow]:
    from t2ibench.metrics.common import prompt_of

    for q, answer, ok in zip(value["questions"], value["answers"], value["verdicts"], strict=True):
        if ok is None:  # the judge did not answer: the question counts nowhere
            continue
        yield ReviewRow(id=f"{rec.key}#{q['id']}", metric=label, config=config_hash, image=rec.key,
                        image_sha256=rec.meta["image_sha256"], method=rec.meta["method"],
                        prompt_set=rec.meta["prompt_set"], prompt=prompt_of(rec.meta), question=q["text"],
                        category=q["category"], expected=str(q["answer"]), answer=str(answer),
                        judge=VERDICTS[0] if ok else VERDICTS[1])


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows_csv(rows: Iterable[ReviewRow]) -> str:
    """The rows as CSV (``COLUMNS``; text a spreadsheet would run as a formula gets a leading ``'``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(str(v)) for v in asdict(r).values()])
    return buf.getvalue()


def write_review(run_dir: Path | str, metric: str = METRIC_NAME, out: Path | str | None = None) -> tuple[Path, Path, int]:
    """Write the sheet (HTML) and its CSV; returns (html path, csv path, rows)."""
    from .review_sheet import render_sheet

    sheet = load_sheet(run_dir, metric)
    if not sheet.rows:
        raise UserError(f"{sheet.run.path}: metric {sheet.label!r} has no answered question to review")
    if sheet.verdicts_path().is_file():  # verdicts imported earlier are shown checked
        stored = stored_verdicts(sheet.verdicts_path(), sheet.config_hash)
        sheet = replace(sheet, rows=[replace(r, human=stored[r.id]["human"]) if stored.get(r.id, {}).get("image_sha256")
                                     == r.image_sha256 else r for r in sheet.rows])
    folder = Path(out) if out is not None else sheet.folder
    html, table = folder / "sheet.html", folder / "sheet.csv"
    atomic_write_text(html, render_sheet(sheet))
    atomic_write_text(table, rows_csv(sheet.rows))
    return html, table, len(sheet.rows)


def _read_csv(path: Path) -> list[dict[str, str]]:
    expected = "the CSV that `t2ibench review` wrote or its sheet exported"
    text = read_user_file(path, what="review file", expected=expected, text=True).lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t") if d in header), ",")  # spreadsheets in some locales save with ;
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"review file {path}: no column {missing[0]!r}; expected {expected} (columns {list(REQUIRED)})")
        rows = [{k: (v or "").strip() for k, v in row.items() if isinstance(k, str)} for row in reader]
        return [r for r in rows if any(r.values())]  # a spreadsheet's trailing empty rows
    except csv.Error as exc:
        raise UserError(f"review file {path}: damaged CSV ({exc}); expected {expected}") from None


def _human(value: str, where: str) -> str | None:
    v = value.lower()
    if v == "":
        return None
    if v not in VERDICTS:
        raise UserError(f"{where}: human verdict {value!r:.40}; expected 'correct', 'wrong' or empty (not reviewed)")
    return v


def import_verdicts(run_dir: Path | str, file: Path | str) -> tuple[Path, int]:
    """Check every row of ``file`` against the run's sheet and store the human verdicts (merged with
    those already stored for the same configuration; the file's wins). Returns (path, rows stored).
    Any problem is one ``UserError`` line and nothing is written."""
    path = Path(file)
    table = _read_csv(path)
    metrics = {(r["metric"], r["config"]) for r in table}
    if len(metrics) > 1:
        raise UserError(f"review file {path}: rows of several metrics or configurations {sorted(metrics)[:2]}; "
                        "expected the rows of one sheet")
    if not metrics:
        raise UserError(f"review file {path}: no rows; expected the rows of a sheet with the human column filled")
    label, config = metrics.pop()
    if not label:
        raise UserError(f"review file {path}: empty metric column; expected the metric label the sheet was written for")
    sheet = load_sheet(run_dir, label)
    if config != sheet.config_hash:
        raise UserError(f"review file {path}: rows of {label} configuration {config!r:.40}, but {sheet.run.path} holds "
                        f"{sheet.config_hash!r} (another run, or rescored with other settings); expected a sheet "
                        f"written from this run: `t2ibench review {sheet.run.path} --metric {label}`")
    by_id = {r.id: r for r in sheet.rows}
    new: dict[str, dict[str, str]] = {}
    for line, r in enumerate(table, start=2):
        where = f"review file {path} line {line}"
        row = by_id.get(r["id"])
        if row is None:
            raise UserError(f"{where}: row id {r['id']!r:.80} is not in the sheet of {sheet.run.path} ({label}); "
                            "expected a row of this run's sheet")
        if r["image_sha256"] != row.image_sha256:
            raise UserError(f"{where}: row {row.id!r} is for another image (SHA-256 {r['image_sha256']!r:.20}…, the run's "
                            f"is {row.image_sha256[:16]}…: another run, or the image was regenerated); expected a row "
                            "of this run's sheet")
        human = _human(r["human"], where)
        if human is None:
            continue
        if row.id in new and new[row.id]["human"] != human:
            raise UserError(f"{where}: row {row.id!r} is listed twice with different verdicts; expected one verdict a row")
        new[row.id] = {"human": human, "judge": row.judge, "image": row.image, "image_sha256": row.image_sha256,
                       "method": row.method, "prompt_set": row.prompt_set, "category": row.category}
    if not new:
        raise UserError(f"review file {path}: the human column is empty in every row; expected 'correct' or 'wrong' "
                        "in the rows reviewed")
    sheet.run.check_contained()
    target = sheet.verdicts_path()
    stored = stored_verdicts(target, sheet.config_hash) if target.exists() else {}
    stored.update(new)
    atomic_write_json(target, {"format": REVIEW_FORMAT, "metric": label, "config": sheet.config_hash,
                               "verdicts": dict(sorted(stored.items()))})
    return target, len(new)


def cmd_review(args) -> int:
    if args.import_file:
        if args.out:
            raise UserError("--out is for writing a sheet; --import stores verdicts in the run directory (drop --out)")
        path, n = import_verdicts(Path(args.run), Path(args.import_file))
        print(f"t2ibench: {n} human verdicts stored in {path}; `t2ibench table {args.run}` shows them")
        return 0
    html, table, n = write_review(Path(args.run), args.metric or METRIC_NAME, Path(args.out) if args.out else None)
    print(f"t2ibench: review sheet {html} ({n} rows; open it in a browser) and {table} (for a spreadsheet)")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("review", parents=[trust_remote_code()], help="a person checks the vqa_alignment judge: write a review sheet, "
                                             "or import its verdicts (the table then shows human accuracy and kappa)")
    p.add_argument("run", help="run directory (scored)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--metric", help=f"write the sheet of this metric (label or name; default {METRIC_NAME})")
    what.add_argument("--import", dest="import_file", metavar="FILE",
                      help="store the human verdicts of an exported or filled-in sheet CSV")
    p.add_argument("--out", help="folder for sheet.html and sheet.csv (default RUN/review/<metric label>)")
    p.set_defaults(func=cmd_review)
