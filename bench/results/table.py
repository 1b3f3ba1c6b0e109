"""Result tables: method × metric per (suite, prompt set), from runs' ``results/aggregates.json``.

Formats: ``md`` (leaderboard.md: tables, n, 95 % intervals, conventions, "not available:
reason"), ``csv`` (one wide row per suite × prompt set × method), ``json`` (flat entries; also
the reference format of ``t2ibench check``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, cast

from ..errors import UserError
from ..fileio import write_output_text
from ..log import get_logger
from .layout import (
    PromptSetTable,
    TableBlock,
    cell,
    headline_cell,
    prompt_set_tables,
    section_blocks,
)
from .reviews import review_rows
from .schema import TABLE_FORMAT, Aggregates, ReferenceEntry, TableDoc, TableEntry, has_value
from .scoring import load_aggregates

if TYPE_CHECKING:
    from ..suite import Suite

log = get_logger(__name__)

FORMATS = ("md", "csv", "json")
KEY_FIELDS = ("suite", "prompt_set", "method", "column")


def entries_of(aggregates: Aggregates) -> list[TableEntry]:
    """Flat entries (one per suite × prompt set × method × column) of one run's aggregates."""
    return [cast(TableEntry, {"suite": aggregates["suite"], "model": aggregates["model"], **row})
            for row in aggregates["rows"]]


def entry_key(e: TableEntry | ReferenceEntry) -> tuple[str, str, str, str]:
    """An entry's place in a table: (suite, prompt set, method, column) (``KEY_FIELDS``)."""
    return e["suite"], e["prompt_set"], e["method"], e["column"]


REVIEW_CONVENTION = ("`t2ibench review`: a person's verdicts on the questions the judge answered; review-human = "
                     "their accuracy, review-judge = the judge's on the same questions, review-kappa = Cohen's kappa of "
                     "the two (undefined when both give every question one verdict), n = images reviewed")


def review_entries(run_dir: Path | str, agg: Aggregates) -> list[TableEntry]:
    """Entries of the human reviews stored in the run directory (``t2ibench review --import``)."""
    return entries_of(cast(Aggregates, {**agg, "rows": review_rows(run_dir, agg)}))


def _variants(run_dir: Path | str) -> dict[str, str]:
    """``{label: method name}`` of the run's suite methods whose label differs from the name
    (ablations and other configured variants); empty when the suite cannot be read."""
    from ..store import RunDir

    try:
        suite = RunDir(run_dir).suite()
    except Exception:  # tables of aggregates copied without their run directory
        return {}
    return suite_variants(suite)


def suite_variants(suite: Suite) -> dict[str, str]:
    """``{label: method name}`` of the suite's methods run under a label of their own (ablations)."""
    names = {m.label for m in suite.methods}
    return {m.label: m.name for m in suite.methods if m.label != m.name and m.name in names}


def _suites_with_overlapping_runs(loaded: list[tuple[Path | str, Aggregates]]) -> set[str]:
    """Suite names of which two runs hold a row with the same (prompt set, method, column); runs of
    one suite that add rows to one another (methods scored apart) merge into one table."""
    seen: dict[str, set[tuple]] = {}
    clashing = set()
    for _, agg in loaded:
        keys = {entry_key(e) for e in entries_of(agg)}
        if keys & seen.get(agg["suite"], set()):
            clashing.add(agg["suite"])
        seen.setdefault(agg["suite"], set()).update(keys)
    return clashing


def collect(run_dirs: Iterable[Path | str]) -> TableDoc:
    """The table document (the ``json`` format) of several runs."""
    doc: TableDoc = {"format": TABLE_FORMAT, "runs": [], "conventions": {}, "variants": {}, "references": {},
                     "entries": []}
    loaded = [(rd, load_aggregates(rd)) for rd in run_dirs]
    clashing = _suites_with_overlapping_runs(loaded)
    entries: dict[tuple[str, str, str, str], TableEntry] = {}
    for rd, agg in loaded:
        suite = agg["suite"]
        if suite in clashing:  # two runs with the same rows (two machines, two versions): both kept, told apart
            suite = f"{suite} ({rd})"
            log.warning(f"t2ibench table: warning: runs of suite {agg['suite']!r} hold the same rows; "
                        f"this one is labelled {suite!r}")
        doc["references"][suite] = agg["reference"]
        doc["runs"].append({"run": agg["run"], "suite": suite, "suite_hash": agg["suite_hash"], "model": agg["model"],
                            "t2ibench": agg["t2ibench"], "n_images": agg["n_images"]})
        reviewed = review_entries(rd, agg)
        for e in entries_of(agg) + reviewed:  # later runs override earlier ones for the same key
            e["suite"] = suite
            entries[entry_key(e)] = e
        conv = doc["conventions"].setdefault(suite, {})
        for label, info in agg["metrics"].items():
            conv[label] = {"name": info.get("name"), "available": info.get("available"), "reason": info.get("reason"),
                           **(info.get("conventions") or {})}
        for label in {e["metric"] for e in reviewed}:
            conv[label]["review"] = REVIEW_CONVENTION
        doc["variants"].setdefault(suite, {}).update(_variants(rd))
    doc["entries"] = list(entries.values())
    return doc


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_detail(g: PromptSetTable, block: TableBlock) -> list[str]:
    cols, methods = block.columns, block.methods
    accs = {c: next((e.get("classifier_accuracy") for e in g.column_entries(c)
                     if e.get("classifier_accuracy") is not None), None) for c in cols}
    per_column_acc = any(a is not None for a in accs.values())
    # n once per column (a last row) when every method has the same n there; else in each cell
    ns = {c: {g.cells[(m, c)]["n"] for m in methods if (m, c) in g.cells and has_value(g.cells[(m, c)])} for c in cols}
    same_n = {c: len(v) == 1 for c, v in ns.items()}
    lines = ["| method | " + " | ".join(_md_escape(block.heading(c)) + g.arrow(c) for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = [cell(g.cells.get((m, c)), accuracy=not per_column_acc, n=not same_n[c]) for c in cols]
        if any(cells):
            lines.append(f"| {_md_escape(g.method_label(m))} | " + " | ".join(_md_escape(x) for x in cells) + " |")
    if any(same_n.values()):
        lines.append("| *n (images)* | " + " | ".join(str(next(iter(ns[c]))) if same_n[c] else "" for c in cols) + " |")
    if per_column_acc:
        lines.append("| *classifier accuracy on labelled references* | "
                     + " | ".join("" if accs[c] is None else f"{accs[c]:.3g}" for c in cols) + " |")
    return lines


def _md_headline(g: PromptSetTable, block: TableBlock, reference: str | None) -> list[str]:
    lines = ["| method | " + " | ".join(_md_escape(block.heading(c)) + g.arrow(c) for c in block.columns) + " |",
             "|---|" + "---|" * len(block.columns)]
    for m in block.methods:
        cells = [headline_cell(g.cells.get((m, c)), reference, m) for c in block.columns]
        if any(cells):
            lines.append(f"| {_md_escape(g.method_label(m))} | " + " | ".join(_md_escape(x) for x in cells) + " |")
    return lines


def _pending_section(name_or_path: str) -> list[str]:
    """A section for a suite that has not been run: what it is, what it needs, how to run it."""
    from ..suite import resolve_suite, shipped_suites

    suite = resolve_suite(name_or_path)
    path = shipped_suites().get(name_or_path) or Path(name_or_path)
    comment = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    lines = [f"## Suite `{suite.name}` (not run yet)", "", f"{suite.description}. Model `{suite.model}`, "
             f"{suite.sampler.steps} {suite.sampler.scheduler} steps, guidance {suite.sampler.guidance:g}, "
             f"{suite.sampler.width}x{suite.sampler.height}, seed {suite.seed}.", ""]
    if comment:  # the suite file's own header: what it needs (weights, data) and where
        lines += ["From the suite file:", "", "```text", *comment, "```", ""]
    lines += ["No numbers until someone has run it (a GPU is needed):", "", "```bash",
              f"t2ibench run {suite.name} --out runs/{suite.name}",
              "```", "",
              f"then add `runs/{suite.name}` to the `t2ibench table` command at the end of this file "
              f"(and drop `--pending {suite.name}`).", ""]
    return lines


def to_markdown(doc: TableDoc, pending: Iterable[str] = (), command: str | None = None,
                notes: str | None = None) -> str:
    """Markdown tables; ``pending``: suites without a run (sections say how to produce them);
    ``command``: the command line that wrote the file (printed at the end); ``notes``: hand-written
    markdown (what the numbers say) placed after the introduction, before the tables."""
    lines = ["# t2ibench results", "",
             "Each prompt set opens with a **headline** table: quality and the set's main score, each "
             "with its difference from the reference method on the same prompts and seeds: "
             "`value (Δ ✓)`, where ✓ = significantly better than the reference, ✗ = significantly worse "
             "(the 95 % paired interval excludes 0), no mark = no detectable difference. "
             "Detail tables follow: `value [95 % interval] Δ…`, n images per column in the last row. "
             "↓ lower is better, ↑ higher is better. Ablations and variants (a method under a label of its "
             "own) are listed separately; metrics that could not run, FID variants and interval methods "
             "are under Conventions.", ""]
    if notes:
        lines += [notes.strip(), ""]
    groups = prompt_set_tables(doc["entries"])
    for suite in sorted({s for s, _ in groups}):
        lines += [f"## Suite `{suite}`", ""]
        reference = doc["references"].get(suite)
        for (s, pset), g in sorted(groups.items()):
            if s == suite:
                lines += _md_prompt_set(g, pset, reference, doc["variants"].get(suite, {}))
        lines += _conventions(doc, suite, reference)
    for name in pending:
        lines += _pending_section(name)
    runs = ", ".join(f"`{r['run']}` (suite hash {r['suite_hash']}, t2ibench {r['t2ibench']})" for r in doc["runs"])
    lines += [f"Runs: {runs}.", "", f"Produced by `{command}`." if command else "Produced by `t2ibench table`.", ""]
    return "\n".join(lines)


def _md_prompt_set(g: PromptSetTable, pset: str, reference: str | None, variants: Mapping[str, str]) -> list[str]:
    lines = [f"### Prompt set `{pset}` (model `{g.model}`)", ""]
    for block in section_blocks(g, reference, variants):
        if block.kind == "headline":
            ref_txt = f"Δ against `{reference}`" if reference in g.methods else "no reference method in this set"
            lines += [f"Headline ({ref_txt}; ablations and variants included):", ""]
            lines += _md_headline(g, block, reference) + [""]
            continue
        if block.opens_ablations:
            lines += [f"#### Ablations and variants (prompt set `{pset}`)", ""]
        if block.label:
            lines += [f"`{block.label}`:", ""]
        lines += _md_detail(g, block) + [""]
    return lines


DELTA_CONVENTION = ("paired: method − reference on the (prompt, seed) pairs both have; 95 % interval: the percentile "
                    "interval of the same resamples applied to both (1000; Fréchet distance 100), for FD and KL MOVER "
                    "from the two methods' own intervals with their correlation over those resamples; ✓/✗ when it "
                    "excludes 0")


def _conventions(doc: TableDoc, suite: str, reference: str | None) -> list[str]:
    lines = ["Conventions:", ""]
    if reference:
        lines.append(f"- Δ (reference `{reference}`): {DELTA_CONVENTION}")
    for label, c in sorted(doc["conventions"].get(suite, {}).items()):
        if not c.get("available", True):
            lines.append(f"- `{label}`: not available: {c.get('reason')}")
            continue
        rest = "; ".join(f"{k}: {v}" for k, v in c.items() if k not in ("name", "available", "reason"))
        lines.append(f"- `{label}` ({c.get('name')}): {rest}")
    return lines + [""]


CSV_FIELDS = ("", "ci_low", "ci_high", "n", "delta", "delta_ci_low", "delta_ci_high", "delta_verdict", "plugin")


def _csv_cells(e: TableEntry | None) -> list[Any]:
    """A column's CSV cells (``CSV_FIELDS``) for one entry."""
    if e is None:
        return [""] * len(CSV_FIELDS)
    if not e["available"]:
        return [f"not available: {e['reason']}"] + [""] * (len(CSV_FIELDS) - 1)
    d = e.get("delta")
    dci = d["ci"] if d else None
    return [e["value"], *(e["ci"] or ("", "")), e["n"], d["value"] if d else "", *(dci or ("", "")),
            d["verdict"] if d else "", e.get("plugin", "")]


def to_csv(doc: TableDoc) -> str:
    """One wide row per (suite, prompt set, method); per column its value, interval, n, delta and plug-in value."""
    groups = prompt_set_tables(doc["entries"])
    all_cols = list(dict.fromkeys(c for g in groups.values() for c in g.columns))
    header = ["suite", "prompt_set", "method"] + [f"{c} {f}".rstrip() for c in all_cols for f in CSV_FIELDS]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for (suite, pset), g in sorted(groups.items()):
        for m in g.methods:
            w.writerow([suite, pset, m] + [x for c in all_cols for x in _csv_cells(g.cells.get((m, c)))])
    return buf.getvalue()


def render(doc: TableDoc, fmt: str, pending: Iterable[str] = (), command: str | None = None,
           notes: str | None = None) -> str:
    if fmt == "md":
        return to_markdown(doc, pending, command, notes)
    if fmt == "csv":
        return to_csv(doc)
    if fmt == "json":
        return json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n"
    raise UserError(f"--format {fmt!r}; expected one of {list(FORMATS)}")


def write_tables(run_dirs: list[Path | str], out: Path | str | None, fmt: str = "md", *,
                 pending: Iterable[str] = (), command: str | None = None, notes: Path | str | None = None) -> str:
    """Render the tables of ``run_dirs`` in ``fmt`` and write them to ``out`` (atomically) if given
    (md only: ``pending`` suites get a how-to-run section, ``command`` is printed at the end, the
    markdown file ``notes`` is included before the tables)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}; expected one of {list(FORMATS)}")
    notes_text = None
    if notes is not None:
        if fmt != "md":
            raise UserError(f"--notes {notes}: only the md format takes notes, not {fmt}")
        try:
            notes_text = Path(notes).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"--notes {notes}: cannot read it ({e.strerror or e}); expected a markdown file") from None
    text = render(collect(run_dirs), fmt, pending, command, notes_text)
    if out is not None:
        write_output_text(out, text)
    return text
