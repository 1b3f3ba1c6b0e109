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
from typing import Any, Iterable

from ..errors import UserError
from ..store import atomic_write_text
from .scoring import load_aggregates

FORMATS = ("md", "csv", "json")
TABLE_FORMAT = "t2ibench-table/1"
KEY_FIELDS = ("suite", "prompt_set", "method", "column")


def entries_of(aggregates: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat entries (one per suite × prompt set × method × column) of one run's aggregates."""
    out = []
    for row in aggregates.get("rows", []):
        out.append({"suite": aggregates.get("suite"), "model": aggregates.get("model"), **row})
    return out


def collect(run_dirs: Iterable[Path | str]) -> dict[str, Any]:
    """The table document (the ``json`` format) of several runs."""
    runs, entries, conventions = [], [], {}
    for rd in run_dirs:
        agg = load_aggregates(rd)
        runs.append({k: agg.get(k) for k in ("run", "suite", "suite_hash", "model", "t2ibench", "n_images")})
        entries += entries_of(agg)
        conv = conventions.setdefault(agg.get("suite"), {})
        for label, info in agg.get("metrics", {}).items():
            conv[label] = {"name": info.get("name"), "available": info.get("available"), "reason": info.get("reason"),
                           **(info.get("conventions") or {})}
    seen: dict[tuple, dict] = {}
    for e in entries:  # later runs override earlier ones for the same key
        seen[tuple(e.get(k) for k in KEY_FIELDS)] = e
    return {"format": TABLE_FORMAT, "runs": runs, "conventions": conventions, "entries": list(seen.values())}


def format_value(x: Any) -> str:
    """A table cell's number: 4 significant digits; an en dash for a missing value."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    if not entry.get("available", True):
        return f"not available: {entry.get('reason')}"
    if entry.get("value") is None:
        return f"– ({entry.get('note', 'no value')}, n={entry.get('n')})"
    s = format_value(entry["value"])
    if entry.get("ci"):
        lo, hi = entry["ci"]
        s += f" [{format_value(lo)}, {format_value(hi)}]"
    s += f" (n={entry.get('n')})"
    acc = entry.get("classifier_accuracy")
    if acc is not None:
        s += f" acc={acc:.3g}"
    return s


def _groups(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
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


def to_markdown(doc: dict[str, Any]) -> str:
    lines = ["# t2ibench results", "",
             "Cells: value [95 % interval] (n images). Lower is better for fid, fd and kl; higher for the others.", ""]
    groups = _groups(doc)
    for suite in sorted({s for s, _ in groups}):
        lines += [f"## Suite `{suite}`", ""]
        for (s, pset), g in sorted(groups.items()):
            if s != suite:
                continue
            lines += [f"### Prompt set `{pset}` (model `{g['model']}`)", ""]
            cols = g["columns"]
            lines.append("| method | " + " | ".join(_md_escape(c) + _arrow(g, c) for c in cols) + " |")
            lines.append("|---|" + "---|" * len(cols))
            for m in g["methods"]:
                lines.append(f"| {_md_escape(m)} | " + " | ".join(_md_escape(cell(g["cells"].get((m, c)))) for c in cols) + " |")
            lines.append("")
        conv = doc.get("conventions", {}).get(suite, {})
        if conv:
            lines += ["Conventions:", ""]
            for label, c in sorted(conv.items()):
                if not c.get("available", True):
                    lines.append(f"- `{label}`: not available: {c.get('reason')}")
                    continue
                rest = "; ".join(f"{k}: {v}" for k, v in c.items() if k not in ("name", "available", "reason"))
                lines.append(f"- `{label}` ({c.get('name')}): {rest}")
            lines.append("")
    runs = ", ".join(f"`{r['run']}` (suite hash {r['suite_hash']}, t2ibench {r['t2ibench']})" for r in doc["runs"])
    lines += [f"Runs: {runs}. Produced by `t2ibench table`.", ""]
    return "\n".join(lines)


def _arrow(g: dict[str, Any], col: str) -> str:
    for e in g["cells"].values():
        if e["column"] == col and e.get("lower_is_better") is not None:
            return " ↓" if e["lower_is_better"] else " ↑"
    return ""


def to_csv(doc: dict[str, Any]) -> str:
    groups = _groups(doc)
    all_cols: list[str] = []
    for g in groups.values():
        for c in g["columns"]:
            if c not in all_cols:
                all_cols.append(c)
    header = ["suite", "prompt_set", "method"]
    for c in all_cols:
        header += [c, f"{c} ci_low", f"{c} ci_high", f"{c} n"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for (suite, pset), g in sorted(groups.items()):
        for m in g["methods"]:
            row: list[Any] = [suite, pset, m]
            for c in all_cols:
                e = g["cells"].get((m, c))
                if e is None:
                    row += ["", "", "", ""]
                elif not e.get("available", True):
                    row += [f"not available: {e.get('reason')}", "", "", ""]
                else:
                    ci = e.get("ci") or ["", ""]
                    row += [e.get("value"), ci[0], ci[1], e.get("n")]
            w.writerow(row)
    return buf.getvalue()


def render(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "md":
        return to_markdown(doc)
    if fmt == "csv":
        return to_csv(doc)
    if fmt == "json":
        return json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n"
    raise UserError(f"--format {fmt!r}; expected one of {list(FORMATS)}")


def write_tables(run_dirs: list[Path | str], out: Path | str | None, fmt: str = "md") -> str:
    """Render the tables of ``run_dirs`` in ``fmt`` and write them to ``out`` (atomically) if given."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}; expected one of {list(FORMATS)}")
    text = render(collect(run_dirs), fmt)
    if out is not None:
        atomic_write_text(out, text)
    return text
