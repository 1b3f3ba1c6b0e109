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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..errors import UserError
from .scoring import load_aggregates
from .table import KEY_FIELDS, TABLE_FORMAT, entries_of

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


def _read(path: Path | str) -> Any:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UserError(f"{p} does not exist") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:
        raise UserError(f"{p}: cannot parse ({str(exc).splitlines()[0]}); expected {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}") from None


def load_tolerance(path: Path | str | None) -> dict[str, Any]:
    if path is None:
        return {"default": dict(DEFAULT_TOLERANCE), "columns": {}}
    data = _read(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with 'default' and 'columns'")
    default = dict(data["default"]) if data.get("default") else dict(DEFAULT_TOLERANCE)
    return {"default": default, "columns": dict(data.get("columns") or {})}


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


def check_run(run_dir: Path | str, reference: Path | str, tolerance: Path | str | None = None) -> tuple[list[Finding], int]:
    """(findings that fail, number of entries compared)."""
    ref = _read(reference)
    if not isinstance(ref, dict) or ref.get("format") != TABLE_FORMAT:
        raise UserError(f"{reference}: not a t2ibench reference table (expected format {TABLE_FORMAT!r}; write one with `t2ibench table RUN --format json -o FILE`)")
    tol = load_tolerance(tolerance)
    current = {tuple(e.get(k) for k in KEY_FIELDS): e for e in entries_of(load_aggregates(run_dir))}
    failures: list[Finding] = []
    compared = 0
    for e in ref.get("entries", []):
        if not e.get("available", True) or e.get("value") is None:
            continue
        key = tuple(e.get(k) for k in KEY_FIELDS)
        r = float(e["value"])
        lib = e.get("lower_is_better")
        t = tolerance_for(tol, e["method"], e["prompt_set"], e["column"], r)
        compared += 1
        cur = current.get(key)
        if cur is None or not cur.get("available", True) or cur.get("value") is None:
            why = "missing in this run" if cur is None else f"no value in this run ({cur.get('reason') or cur.get('note')})"
            failures.append(Finding(key, r, None, t, lib, f"{why}; reference {r:.6g}"))
            continue
        c = float(cur["value"])
        worse = (c - r) if lib else (r - c)
        if worse > t:
            direction = "lower is better" if lib else "higher is better"
            failures.append(Finding(key, r, c, t, lib, f"{c:.6g} vs reference {r:.6g} ({direction}; worse by {worse:.4g} > tolerance {t:.4g})"))
    return failures, compared
