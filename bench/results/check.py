"""Regression gate: compare a run's aggregates with a reference table (``t2ibench table --format json``).

An entry (suite, prompt set, method, column) fails when it got worse than the reference by
more than its tolerance, direction-aware (FID, FD, KL: lower is better; the rest higher), or
when the reference has a number and the run has none. Tolerance = max(abs, rel·|reference|).

Tolerance file (JSON or YAML)::

    default: {abs: 0.0, rel: 0.05}
    columns:                      # fnmatch patterns on the column, or on "method/prompt_set/column"
      fid: {abs: 2.0}
      "fd:*": {abs: 0.05}
      "sd/align/clip_score": {rel: 0.02}

The first matching pattern wins (full-key patterns are tried before column patterns); a
pattern's entry is merged over ``default``. Without a file (or without ``default``) the default
is abs 0, rel 0.05.

Comparisons between methods of the checked run itself (not against the reference file)::

    comparisons:
      # fairqueue's FD is at most iti-gen's + 0.1 on every tSA (direction-aware: "at most" for
      # lower-is-better columns, "at least" for higher-is-better ones)
      - {method: fairqueue, than: iti-gen, columns: "fd-evaluator.fd:*", prompt_set: fair, margin: 0.1}
      # iti-gen's paired delta against the suite's reference method is significantly better
      - {method: iti-gen, columns: "fd-evaluator.fd:eyeglasses", verdict: better}
      # ... or at least not significantly worse (its interval does not exclude 0 on the bad side)
      - {method: fairqueue, columns: "fid-faces", verdict: not-worse}

``columns`` is an fnmatch pattern on the column; ``prompt_set`` (optional) limits it to one
prompt set; ``margin`` defaults to 0. A comparison that matches no entry fails (a typo must not
pass silently); so does one whose entries have no number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Mapping

from ..errors import UserError
from ..fileio import read_user_file
from ..yaml_input import load_yaml
from .schema import ReferenceEntry, TableEntry
from .scoring import load_aggregates
from .table import KEY_FIELDS, TABLE_FORMAT, entries_of, entry_key

COMPARISON_KEYS = {"method", "than", "columns", "prompt_set", "margin", "verdict"}
VERDICTS = ("better", "not-worse")

DEFAULT_TOLERANCE = {"abs": 0.0, "rel": 0.05}


@dataclass
class Finding:
    key: tuple
    reference: float | None
    current: float | None
    tolerance: float
    lower_is_better: bool | None
    why: str

    def line(self) -> str:
        suite, pset, method, col = self.key
        return f"{suite}/{pset}/{method}/{col}: {self.why}"


def _read(path: Path | str, what: str, expected: str) -> Any:
    """A gate file's content: YAML (``.yaml``/``.yml``, bounded: ``t2ibench.yaml_input``) or JSON."""
    p = Path(path)
    text = read_user_file(p, what=what, expected=expected, text=True)
    if p.suffix in (".yaml", ".yml"):
        return load_yaml(text, f"{what} {p}", expected)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {p}: damaged JSON ({exc.msg} at line {exc.lineno}); expected {expected}") from None


def _finite(value: Any, where: str, expected: str = "a finite number") -> float:
    """``value`` as a float; a bool, a string, null, NaN or an infinity is a ``UserError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where} = {value!r:.40}; expected {expected}")
    return float(value)


def _mapping(value: Any, where: str, allowed: set[str], expected: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: a {type(value).__name__}; expected {expected}")
    unknown = sorted(str(k) for k in set(value) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; expected some of {sorted(allowed)}")
    return value


def _tolerance_spec(value: Any, where: str) -> dict[str, float]:
    """``{abs, rel}``: each a finite number >= 0 (a NaN would make every regression pass)."""
    spec = _mapping(value, where, {"abs", "rel"}, "a mapping {abs: number, rel: number}")
    out = {}
    for k, v in spec.items():
        out[k] = _finite(v, f"{where}.{k}", "a finite number >= 0")
        if out[k] < 0:
            raise UserError(f"{where}.{k} = {v!r}; expected a finite number >= 0")
    return out


def load_tolerance(path: Path | str | None) -> dict[str, Any]:
    """The tolerance file, validated (see the module docstring); without a file the defaults."""
    if path is None:
        return {"default": dict(DEFAULT_TOLERANCE), "columns": {}, "comparisons": []}
    expected = "a tolerance file (default / columns / comparisons; see `t2ibench check --help`)"
    data = _read(path, "tolerance file", expected)
    data = _mapping({} if data is None else data, f"tolerance file {path}", {"default", "columns", "comparisons"}, expected)
    given = data.get("default")
    default = _tolerance_spec(given, f"{path}: default") if given not in (None, {}) else dict(DEFAULT_TOLERANCE)
    columns_in = data.get("columns") or {}
    if not isinstance(columns_in, dict):
        raise UserError(f"{path}: columns is a {type(columns_in).__name__}; expected a mapping pattern -> {{abs, rel}}")
    columns = {str(pat): _tolerance_spec(spec, f"{path}: columns[{pat!r}]") for pat, spec in columns_in.items()}
    comparisons = data.get("comparisons") or []
    if not isinstance(comparisons, list):
        raise UserError(f"{path}: comparisons must be a list of mappings (method, columns, than/verdict, ...)")
    for i, c in enumerate(comparisons):
        where = f"{path}: comparisons[{i}]"
        if not isinstance(c, dict) or "method" not in c or "columns" not in c:
            raise UserError(f"{where}: expected a mapping with method and columns (and than and/or verdict)")
        unknown = set(c) - COMPARISON_KEYS
        if unknown:
            raise UserError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r}; expected some of {sorted(COMPARISON_KEYS)}")
        for key in ("method", "columns", "than", "prompt_set"):
            if key in c and not isinstance(c[key], str):
                raise UserError(f"{where}.{key} = {c[key]!r:.40}; expected a string")
        if "than" not in c and "verdict" not in c:
            raise UserError(f"{where}: needs than (another method) or verdict ({' or '.join(VERDICTS)})")
        if "verdict" in c and c["verdict"] not in VERDICTS:
            raise UserError(f"{where}: verdict {c['verdict']!r}; expected {' or '.join(VERDICTS)}")
        if "margin" in c:
            _finite(c["margin"], f"{where}.margin")
    return {"default": default, "columns": columns, "comparisons": comparisons}


def load_reference(path: Path | str) -> list[ReferenceEntry]:
    """The entries of a reference table (``t2ibench table --format json``), validated: each has the
    key fields as strings and a value that is null or a finite number."""
    expected = f"a t2ibench reference table (format {TABLE_FORMAT!r}; write one with `t2ibench table RUN --format json -o FILE`)"
    ref = _read(path, "reference table", expected)
    if not isinstance(ref, dict) or ref.get("format") != TABLE_FORMAT:
        raise UserError(f"reference table {path}: not a t2ibench reference table; expected {expected}")
    entries = ref.get("entries", [])
    if not isinstance(entries, list):
        raise UserError(f"reference table {path}: entries is a {type(entries).__name__}; expected a list of entries")
    return [_reference_entry(e, f"reference table {path}: entries[{i}]") for i, e in enumerate(entries)]


def _reference_entry(e: Any, where: str) -> ReferenceEntry:
    if not isinstance(e, dict):
        raise UserError(f"{where}: a {type(e).__name__}; expected a mapping with {', '.join(KEY_FIELDS)} and value")
    for k in KEY_FIELDS:
        if not isinstance(e.get(k), str):
            raise UserError(f"{where}.{k} = {e.get(k)!r:.40}; expected a string")
    value = None if e.get("value") is None else _finite(e["value"], f"{where}.value", "null or a finite number")
    available, lower = e.get("available", True), e.get("lower_is_better")
    if not isinstance(available, bool) or not isinstance(lower, (bool, type(None))):
        raise UserError(f"{where}: available / lower_is_better must be true, false (or null for lower_is_better)")
    return {"suite": e["suite"], "prompt_set": e["prompt_set"], "method": e["method"], "column": e["column"],
            "value": value, "available": available, "lower_is_better": lower}


def tolerance_for(tol: dict[str, Any], method: str, pset: str, column: str, reference: float) -> float:
    spec = None
    full = f"{method}/{pset}/{column}"
    for pat, s in tol["columns"].items():
        if "/" in pat and fnmatchcase(full, pat):
            spec = s
            break
    if spec is None:
        for pat, s in tol["columns"].items():
            if "/" not in pat and fnmatchcase(column, pat):
                spec = s
                break
    spec = {**tol["default"], **(spec or {})} if spec is not None else tol["default"]
    return max(float(spec.get("abs", 0.0)), float(spec.get("rel", 0.0)) * abs(reference))


def worse_by(value: float, than: float, lower_is_better: bool | None) -> float:
    """How much worse ``value`` is than ``than`` in the column's direction (negative: better)."""
    return (value - than) if lower_is_better else (than - value)


def _comparison_findings(c: dict[str, Any], e: TableEntry, by_key: Mapping[tuple[str, str, str], TableEntry],
                         label: str) -> list[Finding]:
    """Why entry ``e`` fails comparison ``c`` (none when it holds)."""
    than, margin = c.get("than"), float(c.get("margin", 0.0))
    key = entry_key(e)
    lib = e["lower_is_better"]
    v = e["value"]
    if not e["available"] or v is None:
        return [Finding(key, None, None, margin, lib, f"no value in this run ({label})")]
    if not math.isfinite(v):
        return [Finding(key, None, v, margin, lib, f"{v} in this run, not a finite number ({label})")]
    out = []
    if than is not None:
        other = by_key.get((e["prompt_set"], str(than), e["column"]))
        o = other["value"] if other is not None and other["available"] else None
        if o is None:
            return [Finding(key, None, v, margin, lib, f"{than} has no value here ({label})")]
        if not math.isfinite(o) or worse_by(v, o, lib) > margin:
            bound = "at most" if lib else "at least"
            out.append(Finding(key, o, v, margin, lib, f"{v:.6g} vs {than}'s {o:.6g}: expected {bound} "
                                                       f"{than}'s {'+' if lib else '-'} {margin:g}"))
    if "verdict" in c:
        d = e.get("delta")
        if d is None:
            return out + [Finding(key, None, v, margin, lib, f"no paired delta against the reference ({label})")]
        ok = d["verdict"] == "better" if c["verdict"] == "better" else d["verdict"] != "worse"
        if not ok:
            ci = d["ci"] or [float("nan"), float("nan")]
            out.append(Finding(key, None, v, margin, lib, f"delta against {d['reference']} {d['value']:+.4g} "
                                                          f"[{ci[0]:.4g}, {ci[1]:.4g}] is '{d['verdict']}', expected {c['verdict']}"))
    return out


def check_comparisons(entries: list[TableEntry], comparisons: list[dict[str, Any]]) -> tuple[list[Finding], int]:
    """Findings of the tolerance file's ``comparisons`` on one run's entries; (failures, number checked)."""
    by_key = {(e["prompt_set"], e["method"], e["column"]): e for e in entries}
    failures: list[Finding] = []
    checked = 0
    for c in comparisons:
        method = str(c["method"])
        mine = [e for e in entries if e["method"] == method and fnmatchcase(e["column"], str(c["columns"]))
                and c.get("prompt_set") in (None, e["prompt_set"])]
        label = f"{method} vs {c.get('than') or 'reference'} on {c['columns']}"
        if not mine:
            failures.append(Finding(("comparison", c.get("prompt_set") or "*", method, str(c["columns"])), None, None,
                                    float(c.get("margin", 0.0)), None, f"comparison {label}: no entry of this run matches"))
            continue
        checked += len(mine)
        for e in mine:
            failures += _comparison_findings(c, e, by_key, label)
    return failures, checked


def check_run(run_dir: Path | str, reference: Path | str, tolerance: Path | str | None = None) -> tuple[list[Finding], int]:
    """(findings that fail, number of entries and comparisons checked)."""
    ref_entries = load_reference(reference)
    tol = load_tolerance(tolerance)
    run_entries = entries_of(load_aggregates(run_dir))
    current = {entry_key(e): e for e in run_entries}
    failures: list[Finding] = []
    compared = 0
    for e in ref_entries:
        r = e["value"]
        if not e["available"] or r is None:
            continue
        key = entry_key(e)
        lib = e["lower_is_better"]
        t = tolerance_for(tol, e["method"], e["prompt_set"], e["column"], r)
        compared += 1
        cur = current.get(key)
        c = cur["value"] if cur is not None and cur["available"] else None
        if cur is None or c is None:
            why = "missing in this run" if cur is None else f"no value in this run ({cur['reason'] or cur.get('note')})"
            failures.append(Finding(key, r, None, t, lib, f"{why}; reference {r:.6g}"))
            continue
        if not math.isfinite(c):
            failures.append(Finding(key, r, c, t, lib, f"{c} in this run (not a finite number); reference {r:.6g}"))
            continue
        worse = worse_by(c, r, lib)
        if worse > t:
            direction = "lower is better" if lib else "higher is better"
            failures.append(Finding(key, r, c, t, lib, f"{c:.6g} vs reference {r:.6g} ({direction}; worse by {worse:.4g} > tolerance {t:.4g})"))
    more, checked = check_comparisons(run_entries, tol["comparisons"])
    return failures + more, compared + checked
