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
from typing import Any, Iterable, Mapping, cast

from ..errors import UserError
from ..fileio import write_output_text
from ..log import get_logger
from .schema import TABLE_FORMAT, TableDoc, TableEntry, delta_of, has_value, interval_of
from .scoring import load_aggregates

log = get_logger(__name__)

FORMATS = ("md", "csv", "json")
KEY_FIELDS = ("suite", "prompt_set", "method", "column")
MAX_COLUMNS = 10  # per markdown table, the method column included


def entries_of(aggregates: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat entries (one per suite × prompt set × method × column) of one run's aggregates."""
    out = []
    for row in aggregates.get("rows", []):
        out.append({"suite": aggregates.get("suite"), "model": aggregates.get("model"), **row})
    return out


REVIEW_CONVENTION = ("`t2ibench review`: a person's verdicts on the questions the judge answered; review-human = "
                     "their accuracy, review-judge = the judge's on the same questions, review-kappa = Cohen's kappa of "
                     "the two (undefined when both give every question one verdict), n = images reviewed")


def review_entries(run_dir: Path | str, agg: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries of the human reviews stored in the run directory (``t2ibench review --import``)."""
    from ..report.review import review_rows

    return entries_of({**agg, "rows": review_rows(run_dir, agg)})


def _variants(run_dir: Path | str) -> dict[str, str]:
    """``{label: method name}`` of the run's suite methods whose label differs from the name
    (ablations and other configured variants); empty when the suite cannot be read."""
    from ..store import RunDir

    try:
        suite = RunDir(run_dir).suite()
    except Exception:  # tables of aggregates copied without their run directory
        return {}
    names = {m.label for m in suite.methods}
    return {m.label: m.name for m in suite.methods if m.label != m.name and m.name in names}


def _suites_with_overlapping_runs(loaded: list[tuple[Path | str, dict[str, Any]]]) -> set[str]:
    """Suite names of which two runs hold a row with the same (prompt set, method, column); runs of
    one suite that add rows to one another (methods scored apart) merge into one table."""
    seen: dict[str, set[tuple]] = {}
    clashing = set()
    for _, agg in loaded:
        keys = {tuple(e.get(k) for k in KEY_FIELDS) for e in entries_of(agg)}
        if keys & seen.get(agg["suite"], set()):
            clashing.add(agg["suite"])
        seen.setdefault(agg["suite"], set()).update(keys)
    return clashing


def collect(run_dirs: Iterable[Path | str]) -> TableDoc:
    """The table document (the ``json`` format) of several runs."""
    runs: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    conventions: dict[str, dict[str, dict[str, Any]]] = {}
    variants: dict[str, dict[str, str]] = {}
    references: dict[str, str | None] = {}
    loaded = []
    for rd in run_dirs:
        agg = load_aggregates(rd)
        if not isinstance(agg.get("suite"), str):
            raise UserError(f"{Path(rd) / 'results' / 'aggregates.json'}: no suite name; expected the file `t2ibench score` "
                            f"writes (re-run `t2ibench score {rd}`)")
        loaded.append((rd, agg))
    clashing = _suites_with_overlapping_runs(loaded)
    for rd, agg in loaded:
        suite = agg["suite"]
        if suite in clashing:  # two runs with the same rows (two machines, two versions): both kept, told apart
            suite = f"{suite} ({rd})"
            log.warning(f"t2ibench table: warning: runs of suite {agg['suite']!r} hold the same rows; "
                        f"this one is labelled {suite!r}")
        references[suite] = agg.get("reference")
        runs.append({**{k: agg.get(k) for k in ("run", "suite_hash", "model", "t2ibench", "n_images")}, "suite": suite})
        reviewed = review_entries(rd, agg)
        entries += [{**e, "suite": suite} for e in entries_of(agg) + reviewed]
        conv = conventions.setdefault(suite, {})
        for label, info in agg.get("metrics", {}).items():
            conv[label] = {"name": info.get("name"), "available": info.get("available"), "reason": info.get("reason"),
                           **(info.get("conventions") or {})}
        for label in {e["metric"] for e in reviewed}:
            conv[label]["review"] = REVIEW_CONVENTION
        variants.setdefault(suite, {}).update(_variants(rd))
    seen: dict[tuple, dict[str, Any]] = {}
    for e in entries:  # later runs override earlier ones for the same key
        seen[tuple(e.get(k) for k in KEY_FIELDS)] = e
    doc: TableDoc = {"format": TABLE_FORMAT, "runs": runs, "conventions": conventions, "variants": variants,
                     "references": references,
                     "entries": cast(list[TableEntry], list(seen.values()))}  # rows as scoring wrote them + suite, model
    return doc


def format_value(x: Any, digits: int = 3) -> str:
    """A table cell's number: 3 significant digits; an en dash for a missing value."""
    if x is None:
        return "–"
    if isinstance(x, float):
        s = f"{x:.{digits}g}"
        return "0" if s in ("-0", "0") else s
    return str(x)


def format_delta(d: Mapping[str, Any] | None, interval: bool = False) -> str:
    """A delta: signed value, optional paired interval, then ✓ (significantly better), ✗
    (significantly worse) or nothing (the interval contains 0)."""
    if not d:
        return ""
    v = d["value"]
    s = ("+" if v > 0 else "−" if v < 0 else "±") + format_value(abs(float(v)), 2)
    if interval and d.get("ci"):
        lo, hi = d["ci"]
        s += f" [{format_value(float(lo), 2)}, {format_value(float(hi), 2)}]"
    return s + MARKERS.get(d.get("verdict", "same"), "")


MARKERS = {"better": " ✓", "worse": " ✗", "same": ""}


def cell(entry: Mapping[str, Any] | None, *, accuracy: bool = True, n: bool = True, delta: bool = True) -> str:
    """One detail-table cell: ``value [95 % interval]`` (``(n=…)`` when ``n``), then ``Δ`` against the
    reference with its marker; unavailable metrics say so (the reason is under Conventions);
    ``accuracy``: append the classifier's accuracy on references."""
    if entry is None:
        return ""
    if not entry.get("available", True):
        return "not available"
    if entry.get("value") is None:
        return f"– ({entry.get('note', 'no value')}, n={entry.get('n')})"
    s = format_value(entry["value"])
    ci = interval_of(entry)
    if ci:
        s += f" [{format_value(ci[0])}, {format_value(ci[1])}]"
    if n:
        s += f" (n={entry.get('n')})"
    d = delta_of(entry)
    if delta and d and (d["value"] != 0 or d.get("verdict") != "same"):  # an exact 0 would only add noise
        s += f" Δ{format_delta(d)}"
    acc = entry.get("classifier_accuracy")
    if accuracy and acc is not None:
        s += f" acc={acc:.3g}"
    return s


def _groups(doc: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for e in doc["entries"]:
        g = groups.setdefault((e["suite"], e["prompt_set"]), {"methods": [], "columns": [], "cells": {}, "model": e.get("model")})
        if e["method"] not in g["methods"]:
            g["methods"].append(e["method"])
        if e["column"] not in g["columns"]:
            g["columns"].append(e["column"])
        g["cells"][(e["method"], e["column"])] = e
    return groups


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


def _live_columns(g: Mapping[str, Any]) -> list[str]:
    """The columns some row has a number (or an explicit no-value note) in; a metric that no row
    has is listed once under Conventions instead."""
    return [c for c in g["columns"] if any(e["column"] == c and e.get("available", True) for e in g["cells"].values())]


def _chunks(cols: list[str], size: int = MAX_COLUMNS - 1) -> list[list[str]]:
    return [cols[i:i + size] for i in range(0, len(cols), size)] or [[]]


def method_label(g: Mapping[str, Any], method: str) -> str:
    """A row's method, with "(partial: N of M images)" when the run holds fewer of its images than
    the suite asks for: its values are over a subset of the prompts, its deltas over the shared ones."""
    partial = next((e for (m, _), e in g["cells"].items() if m == method and e.get("partial")), None)
    if partial is None:
        return method
    return f"{method} (partial: {partial.get('images')} of {partial.get('expected_images')} images)"


def _md_table(g: dict[str, Any], cols: list[str], methods: list[str], strip: str = "") -> list[str]:
    heads = [c[len(strip):] if strip and c.startswith(strip) else c for c in cols]
    accs = {c: next((e.get("classifier_accuracy") for e in g["cells"].values()
                     if e["column"] == c and e.get("classifier_accuracy") is not None), None) for c in cols}
    per_column_acc = any(a is not None for a in accs.values())
    # n once per column (a last row) when every method has the same n there; else in each cell
    ns = {c: {g["cells"][(m, c)].get("n") for m in methods if (m, c) in g["cells"] and has_value(g["cells"][(m, c)])}
          for c in cols}
    same_n = {c: len(v) == 1 for c, v in ns.items()}
    lines = ["| method | " + " | ".join(_md_escape(h) + _arrow(g, c) for h, c in zip(heads, cols)) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = [cell(g["cells"].get((m, c)), accuracy=not per_column_acc, n=not same_n[c]) for c in cols]
        if any(cells):
            lines.append(f"| {_md_escape(method_label(g, m))} | " + " | ".join(_md_escape(x) for x in cells) + " |")
    if any(same_n.values()):
        lines.append("| *n (images)* | " + " | ".join(str(next(iter(ns[c]))) if same_n[c] else "" for c in cols) + " |")
    if per_column_acc:
        lines.append("| *classifier accuracy on labelled references* | "
                     + " | ".join("" if accs[c] is None else f"{accs[c]:.3g}" for c in cols) + " |")
    return lines


def headline_columns(g: Mapping[str, Any]) -> list[str]:
    """A prompt set's headline: its quality column (the first Fréchet distance), then its main
    score: ``accuracy:all`` of an alignment metric (else ``vqa:all`` of vqa_alignment), else the FD
    per tSA of the first fairness metric, else CLIP Score, else ImageReward; at most MAX_COLUMNS - 1
    columns."""
    live = _live_columns(g)

    def by_name(name: str) -> list[str]:
        return [c for c in live if any(e["column"] == c and e.get("metric_name") == name for e in g["cells"].values())]

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


def _headline_cell(e: Mapping[str, Any] | None, reference: str | None, method: str) -> str:
    if e is None:
        return ""
    if not has_value(e):
        return "–"
    s = format_value(e["value"])
    d = delta_of(e)
    if d:
        s += f" ({format_delta(d)})"
    elif method == reference:
        s += " (ref.)"
    return s


def headline_label(column: str) -> str:
    """A headline column's heading: ``fd:smiling (fd-evaluator)`` for ``fd-evaluator.fd:smiling``."""
    label, _, tail = column.partition(".")
    return f"{tail} ({label})" if tail else column


def _headline_table(g: dict[str, Any], cols: list[str], methods: list[str], reference: str | None) -> list[str]:
    lines = ["| method | " + " | ".join(_md_escape(headline_label(c)) + _arrow(g, c) for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in reference_first(methods, reference):
        cells = [_headline_cell(g["cells"].get((m, c)), reference, m) for c in cols]
        if any(cells):
            lines.append(f"| {_md_escape(method_label(g, m))} | " + " | ".join(_md_escape(x) for x in cells) + " |")
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


def to_markdown(doc: Mapping[str, Any], pending: Iterable[str] = (), command: str | None = None,
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
    groups = _groups(doc)
    for suite in sorted({s for s, _ in groups}):
        lines += [f"## Suite `{suite}`", ""]
        variants = doc.get("variants", {}).get(suite, {})
        reference = (doc.get("references") or {}).get(suite)
        for (s, pset), g in sorted(groups.items()):
            if s != suite:
                continue
            lines += [f"### Prompt set `{pset}` (model `{g['model']}`)", ""]
            methods = reference_first(g["methods"], reference)
            main, ablation = _split_variants(methods, variants)
            head = headline_columns(g)
            if head:
                ref_txt = f"Δ against `{reference}`" if reference in g["methods"] else "no reference method in this set"
                lines += [f"Headline ({ref_txt}; ablations and variants included):", ""]
                lines += _headline_table(g, head, main + ablation, reference) + [""]
            live = _live_columns(g)
            for title, rows in (("", main), ("Ablations and variants", ablation)):
                if not rows:
                    continue
                if title:
                    lines += [f"#### {title} (prompt set `{pset}`)", ""]
                for label, cols in _column_blocks(live):
                    for part in _chunks(cols):
                        if label:
                            lines += [f"`{label}`:", ""]
                        lines += _md_table(g, part, rows, strip=f"{label}." if label else "") + [""]
        lines += _conventions(doc, suite, reference)
    for name in pending:
        lines += _pending_section(name)
    runs = ", ".join(f"`{r['run']}` (suite hash {r['suite_hash']}, t2ibench {r['t2ibench']})" for r in doc["runs"])
    lines += [f"Runs: {runs}.", "", f"Produced by `{command}`." if command else "Produced by `t2ibench table`.", ""]
    return "\n".join(lines)


DELTA_CONVENTION = ("paired: method − reference on the (prompt, seed) pairs both have; 95 % interval: the percentile "
                    "interval of the same resamples applied to both (1000; Fréchet distance 100), for FD and KL MOVER "
                    "from the two methods' own intervals with their correlation over those resamples; ✓/✗ when it "
                    "excludes 0")


def _conventions(doc: Mapping[str, Any], suite: str, reference: str | None) -> list[str]:
    conv = doc.get("conventions", {}).get(suite, {})
    lines = ["Conventions:", ""]
    if reference:
        lines.append(f"- Δ (reference `{reference}`): {DELTA_CONVENTION}")
    for label, c in sorted(conv.items()):
        if not c.get("available", True):
            lines.append(f"- `{label}`: not available: {c.get('reason')}")
            continue
        rest = "; ".join(f"{k}: {v}" for k, v in c.items() if k not in ("name", "available", "reason"))
        lines.append(f"- `{label}` ({c.get('name')}): {rest}")
    return lines + [""]


def _arrow(g: Mapping[str, Any], col: str) -> str:
    for e in g["cells"].values():
        if e["column"] == col and e.get("lower_is_better") is not None:
            return " ↓" if e["lower_is_better"] else " ↑"
    return ""


def to_csv(doc: Mapping[str, Any]) -> str:
    groups = _groups(doc)
    all_cols: list[str] = []
    for g in groups.values():
        for c in g["columns"]:
            if c not in all_cols:
                all_cols.append(c)
    header = ["suite", "prompt_set", "method"]
    for c in all_cols:
        header += [c, f"{c} ci_low", f"{c} ci_high", f"{c} n", f"{c} delta", f"{c} delta_ci_low",
                   f"{c} delta_ci_high", f"{c} delta_verdict", f"{c} plugin"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for (suite, pset), g in sorted(groups.items()):
        for m in g["methods"]:
            row: list[Any] = [suite, pset, m]
            for c in all_cols:
                e = g["cells"].get((m, c))
                if e is None:
                    row += [""] * 9
                elif not e.get("available", True):
                    row += [f"not available: {e.get('reason')}"] + [""] * 8
                else:
                    ci = e.get("ci") or ["", ""]
                    d: Mapping[str, Any] = delta_of(e) or {}
                    dci = d.get("ci") or ["", ""]
                    row += [e.get("value"), ci[0], ci[1], e.get("n"), d.get("value", ""), dci[0], dci[1],
                            d.get("verdict", ""), e.get("plugin", "")]
            w.writerow(row)
    return buf.getvalue()


def render(doc: Mapping[str, Any], fmt: str, pending: Iterable[str] = (), command: str | None = None,
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
