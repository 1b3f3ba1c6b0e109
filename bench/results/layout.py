"""The layout of result tables, shared by the markdown table and the HTML report.

Entries are grouped per (suite, prompt set) (:class:`PromptSetTable`); each prompt set's section
is a list of :class:`TableBlock`: the headline (quality and main score with their deltas against
the reference method), then detail tables of at most ``MAX_COLUMNS`` columns, main methods
first, ablations and variants after. Cells are formatted here (3 significant digits, intervals,
deltas with ✓/✗).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from .schema import Delta, TableEntry, has_value, interval_of

MAX_COLUMNS = 10  # per table, the method column included


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
    ``opens_ablations``: the first table whose rows are ablations and variants (renderers title
    that part of the section there)."""

    kind: Literal["headline", "detail"]
    columns: list[str]
    methods: list[str]
    label: str = ""
    opens_ablations: bool = False

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
    main, ablation = split_variants(reference_first(g.methods, reference), variants)
    blocks = []
    head = headline_columns(g)
    if head:
        blocks.append(TableBlock("headline", head, main + ablation))
    for rows, is_ablation in ((main, False), (ablation, True)):
        if rows:
            parts = [(label, part) for label, cols in column_blocks(g.live_columns()) for part in chunks(cols)]
            blocks += [TableBlock("detail", part, rows, label, opens_ablations=is_ablation and i == 0)
                       for i, (label, part) in enumerate(parts)]
    return blocks


def column_blocks(columns: list[str]) -> list[tuple[str, list[str]]]:
    """Columns split into blocks: ungrouped ones first (block ""), then one block per metric label
    of a multi-column metric (columns ``label.column``), in order of first appearance."""
    blocks: dict[str, list[str]] = {"": []}
    for c in columns:
        label = c.split(".", 1)[0] if "." in c else ""
        blocks.setdefault(label, []).append(c)
    return [(k, v) for k, v in blocks.items() if v]


def chunks(cols: list[str], size: int = MAX_COLUMNS - 1) -> list[list[str]]:
    return [cols[i:i + size] for i in range(0, len(cols), size)] or [[]]


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


def reference_first(methods: Iterable[str], reference: str | None) -> list[str]:
    """``methods`` with the reference method first (when among them), the others in their order."""
    methods = list(methods)
    return ([reference] if reference is not None and reference in methods else []) + [m for m in methods if m != reference]


def split_variants(methods: list[str], variants: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(main rows, ablation rows): each variant listed after the others of its base method."""
    main = [m for m in methods if m not in variants]
    ablation: list[str] = []
    for base in main:
        ablation += [m for m in methods if variants.get(m) == base]
    return main, ablation
