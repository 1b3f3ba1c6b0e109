"""Result tables: method × metric per (suite, prompt set), from runs' ``results/aggregates.json``.

Formats: ``md`` (leaderboard.md: tables, n, 95 % intervals, conventions, "not available:
reason"), ``csv`` (one wide row per suite × prompt set × method), ``json`` (flat entries; also
the reference format of ``t2ibench check``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, cast

from ..errors import UserError
from ..fileio import write_output_text
from ..log import get_logger
from .schema import TABLE_FORMAT, Aggregates, Delta, TableDoc, TableEntry, has_value, interval_of
from .scoring import load_aggregates

if TYPE_CHECKING:
    from ..suite import Suite

log = get_logger(__name__)

FORMATS = ("md", "csv", "json")
KEY_FIELDS = ("suite", "prompt_set", "method", "column")
MAX_COLUMNS = 10  # per markdown table, the method column included


def entries_of(aggregates: Aggregates) -> list[TableEntry]:
    """Flat entries (one per suite × prompt set × method × column) of one run's aggregates."""
    return [cast(TableEntry, {"suite": aggregates["suite"], "model": aggregates["model"], **row})
            for row in aggregates["rows"]]


def _key(e: TableEntry) -> tuple[str, str, str, str]:
    return e["suite"], e["prompt_set"], e["method"], e["column"]


REVIEW_CONVENTION = ("`t2ibench review`: a person's verdicts on the questions the judge answered; review-human = "
                     "their accuracy, review-judge = the judge's on the same questions, review-kappa = Cohen's kappa of "
                     "the two (undefined when both give every question one verdict), n = images reviewed")


def review_entries(run_dir: Path | str, agg: Aggregates) -> list[TableEntry]:
    """Entries of the human reviews stored in the run directory (``t2ibench review --import``)."""
    from ..report.review import review_rows

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
        keys = {_key(e) for e in entries_of(agg)}
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
            entries[_key(e)] = e
        conv = doc["conventions"].setdefault(suite, {})
        for label, info in agg["metrics"].items():
            conv[label] = {"name": info.get("name"), "available": info.get("available"), "reason": info.get("reason"),
                           **(info.get("conventions") or {})}
        for label in {e["metric"] for e in reviewed}:
            conv[label]["review"] = REVIEW_CONVENTION
        doc["variants"].setdefault(suite, {}).update(_variants(rd))
    doc["entries"] = list(entries.values())
    return doc


def format_value(x: Any, digits: int = 3) -> str:
    """A table cell's number: 3 significant digits; an en dash for a missing value."""
    if x is None:
        return "–"
    if isinstance(x, float):
        s = f"{x:.{digits}g}"
        return "0" if s in ("-0", "0") else s
    return str(x)


def format_delta(d: Delta | None, interval: bool = False) -> str:
    """A delta: signed value, optional paired interval, then ✓ (significantly better), ✗
    (significantly worse) or nothing (the interval contains 0)."""
    if not d:
        return ""
    v = d["value"]
    s = ("+" if v > 0 else "−" if v < 0 else "±") + format_value(abs(float(v)), 2)
    if interval and d["ci"]:
        lo, hi = d["ci"]
        s += f" [{format_value(float(lo), 2)}, {format_value(float(hi), 2)}]"
    return s + MARKERS[d["verdict"]]


MARKERS = {"better": " ✓", "worse": " ✗", "same": ""}


def cell(entry: TableEntry | None, *, accuracy: bool = True, n: bool = True, delta: bool = True) -> str:
    """One detail-table cell: ``value [95 % interval]`` (``(n=…)`` when ``n``), then ``Δ`` against the
    reference with its marker; unavailable metrics say so (the reason is under Conventions);
    ``accuracy``: append the classifier's accuracy on references."""
    if entry is None:
        return ""
    if not entry["available"]:
        return "not available"
    if entry["value"] is None:
        return f"– ({entry.get('note', 'no value')}, n={entry['n']})"
    s = format_value(entry["value"])
    ci = interval_of(entry)
    if ci:
        s += f" [{format_value(ci[0])}, {format_value(ci[1])}]"
    if n:
        s += f" (n={entry['n']})"
    d = entry.get("delta")
    if delta and d and (d["value"] != 0 or d["verdict"] != "same"):  # an exact 0 would only add noise
        s += f" Δ{format_delta(d)}"
    acc = entry.get("classifier_accuracy")
    if accuracy and acc is not None:
        s += f" acc={acc:.3g}"
    return s


@dataclass
class PromptSetTable:
    """The entries of one (suite, prompt set): methods and columns in order of first appearance,
    the entry of each (method, column) present."""

    model: str
    methods: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], TableEntry] = field(default_factory=dict)

    def column_entries(self, column: str) -> list[TableEntry]:
        return [e for e in self.cells.values() if e["column"] == column]

    def arrow(self, column: str) -> str:
        """`` ↓`` (lower is better), `` ↑`` or nothing, from the column's entries."""
        lower = next((e["lower_is_better"] for e in self.column_entries(column) if e["lower_is_better"] is not None), None)
        return "" if lower is None else " ↓" if lower else " ↑"

    def method_label(self, method: str) -> str:
        """A row's method, with "(partial: N of M images)" when the run holds fewer of its images than
        the suite asks for: its values are over a subset of the prompts, its deltas over the shared ones."""
        partial = next((e for (m, _), e in self.cells.items() if m == method and e.get("partial")), None)
        if partial is None:
            return method
        return f"{method} (partial: {partial.get('images')} of {partial.get('expected_images')} images)"

    def live_columns(self) -> list[str]:
        """The columns some row has a number (or an explicit no-value note) in; a metric that no row
        has is listed once under Conventions instead."""
        return [c for c in self.columns if any(e["available"] for e in self.column_entries(c))]


def prompt_set_tables(entries: Iterable[TableEntry]) -> dict[tuple[str, str], PromptSetTable]:
    """The entries grouped by (suite, prompt set)."""
    groups: dict[tuple[str, str], PromptSetTable] = {}
    for e in entries:
        g = groups.setdefault((e["suite"], e["prompt_set"]), PromptSetTable(model=e["model"]))
        if e["method"] not in g.methods:
            g.methods.append(e["method"])
        if e["column"] not in g.columns:
            g.columns.append(e["column"])
        g.cells[(e["method"], e["column"])] = e
    return groups


@dataclass(frozen=True)
class TableBlock:
    """One table of a prompt set's section: the headline, or a detail table of at most
    ``MAX_COLUMNS`` columns; ``label``: the metric whose columns (``label.column``) it shows;
    ``ablation``: its rows are ablations and variants."""

    kind: Literal["headline", "detail"]
    columns: list[str]
    methods: list[str]
    label: str = ""
    ablation: bool = False

    def heading(self, column: str) -> str:
        """A column's heading in this table: ``fd:smiling (fd-evaluator)`` in the headline, the
        column less ``label.`` in a detail table."""
        if self.kind == "headline":
            return headline_label(column)
        strip = f"{self.label}." if self.label else ""
        return column[len(strip):] if strip and column.startswith(strip) else column


def section_blocks(g: PromptSetTable, reference: str | None, variants: Mapping[str, str]) -> list[TableBlock]:
    """The tables of a prompt set's section, in order: the headline (quality and main score with
    deltas), then detail tables of the main methods, then of the ablations and variants."""
    main, ablation = _split_variants(reference_first(g.methods, reference), variants)
    blocks = []
    head = headline_columns(g)
    if head:
        blocks.append(TableBlock("headline", head, main + ablation))
    for rows, is_ablation in ((main, False), (ablation, True)):
        if rows:
            blocks += [TableBlock("detail", part, rows, label, is_ablation)
                       for label, cols in _column_blocks(g.live_columns()) for part in _chunks(cols)]
    return blocks


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _column_blocks(columns: list[str]) -> list[tuple[str, list[str]]]:
    """Columns split into blocks: ungrouped ones first (block ""), then one block per metric label
    of a multi-column metric (columns ``label.column``), in order of first appearance."""
    blocks: dict[str, list[str]] = {"": []}
    for c in columns:
        label = c.split(".", 1)[0] if "." in c else ""
        blocks.setdefault(label, []).append(c)
    return [(k, v) for k, v in blocks.items() if v]


def _chunks(cols: list[str], size: int = MAX_COLUMNS - 1) -> list[list[str]]:
    return [cols[i:i + size] for i in range(0, len(cols), size)] or [[]]


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


def headline_columns(g: PromptSetTable) -> list[str]:
    """A prompt set's headline: its quality column (the first Fréchet distance), then its main
    score: ``accuracy:all`` of an alignment metric (else ``vqa:all`` of vqa_alignment), else the FD
    per tSA of the first fairness metric, else CLIP Score, else ImageReward; at most MAX_COLUMNS - 1
    columns."""
    live = g.live_columns()

    def by_name(name: str) -> list[str]:
        return [c for c in live if any(e["metric_name"] == name for e in g.column_entries(c))]

    quality = by_name("fid")[:1]
    main = [c for c in by_name("alignment") if c.endswith("accuracy:all")][:1]
    main = main or [c for c in by_name("vqa_alignment") if c.endswith("vqa:all")][:1]
    if not main:
        fair = by_name("fairness")
        first = fair[0].split(".", 1)[0] if fair and "." in fair[0] else None
        main = [c for c in fair if ("fd:" in c) and (first is None or c.startswith(first + "."))]
    if not main:
        main = (by_name("clip_score") or by_name("image_reward"))[:1]
    return (quality + main)[: MAX_COLUMNS - 1]


def headline_cell(e: TableEntry | None, reference: str | None, method: str) -> str:
    """A headline cell: ``value (Δ marker)``, ``value (ref.)`` for the reference method, – without a number."""
    if e is None:
        return ""
    if not has_value(e):
        return "–"
    s = format_value(e["value"])
    d = e.get("delta")
    if d:
        s += f" ({format_delta(d)})"
    elif method == reference:
        s += " (ref.)"
    return s


def headline_label(column: str) -> str:
    """A headline column's heading: ``fd:smiling (fd-evaluator)`` for ``fd-evaluator.fd:smiling``."""
    label, _, tail = column.partition(".")
    return f"{tail} ({label})" if tail else column


def _md_headline(g: PromptSetTable, block: TableBlock, reference: str | None) -> list[str]:
    lines = ["| method | " + " | ".join(_md_escape(block.heading(c)) + g.arrow(c) for c in block.columns) + " |",
             "|---|" + "---|" * len(block.columns)]
    for m in block.methods:
        cells = [headline_cell(g.cells.get((m, c)), reference, m) for c in block.columns]
        if any(cells):
            lines.append(f"| {_md_escape(g.method_label(m))} | " + " | ".join(_md_escape(x) for x in cells) + " |")
    return lines


def reference_first(methods: Iterable[str], reference: str | None) -> list[str]:
    """``methods`` with the reference method first (when among them), the others in their order."""
    methods = list(methods)
    return ([reference] if reference is not None and reference in methods else []) + [m for m in methods if m != reference]


def _split_variants(methods: list[str], variants: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(main rows, ablation rows): each variant listed after the others of its base method."""
    main = [m for m in methods if m not in variants]
    ablation: list[str] = []
    for base in main:
        ablation += [m for m in methods if variants.get(m) == base]
    return main, ablation


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
    ablation_titled = False
    for block in section_blocks(g, reference, variants):
        if block.kind == "headline":
            ref_txt = f"Δ against `{reference}`" if reference in g.methods else "no reference method in this set"
            lines += [f"Headline ({ref_txt}; ablations and variants included):", ""]
            lines += _md_headline(g, block, reference) + [""]
            continue
        if block.ablation and not ablation_titled:
            lines += [f"#### Ablations and variants (prompt set `{pset}`)", ""]
            ablation_titled = True
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
