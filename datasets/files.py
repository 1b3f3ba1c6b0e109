"""Plain prompt sets: a prompt file (txt, csv or jsonl) or prompts written inline in the suite.

- ``.txt``: one prompt per line; blank lines skipped; ids ``p00000``, ``p00001``, ... by line.
- ``.csv``: a header row; the prompt in column ``prompt`` (or ``params.column``), optional ``id``.
- ``.jsonl``: one object per line with ``prompt`` (or ``params.column``) and optional ``id``;
  other keys go to the prompt's meta.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from t2ibench.errors import UserError
from t2ibench.types import PromptItem

from ._io import only_params, read_text, require, subsample

#: a prompt file's size before it is read, and the prompts it may hold (a suite's cap on images,
#: 1M, comes later; these keep a wrong ``path`` such as /dev/zero or a 5 GB log from filling memory)
MAX_PROMPT_FILE_BYTES = 256 * 1024 * 1024
MAX_PROMPTS = 1_000_000


def _items(rows: list[tuple[str | None, str, dict]]) -> list[PromptItem]:
    return [PromptItem(id=rid or f"p{i:05d}", text=text, meta=meta) for i, (rid, text, meta) in enumerate(rows)]


def _room_for_one_more(rows: list, path: Path, where: str) -> None:
    """Refuse, while reading, a file with more than ``MAX_PROMPTS`` prompts."""
    if len(rows) >= MAX_PROMPTS:
        raise UserError(f"{where}: {path} has more than {MAX_PROMPTS} prompts; expected at most {MAX_PROMPTS} "
                        "(write a subset file)")


def load_prompt_file(params: dict, *, limit: int | None = None, sample_seed: int = 0, where: str = "prompt_sets") -> list[PromptItem]:
    """Prompts from ``params.path`` (``.txt``, ``.csv`` or ``.jsonl``)."""
    only_params(params, {"path", "column"}, where)
    path = Path(str(require(params, "path", where, "a .txt, .csv or .jsonl prompt file")))
    column = params.get("column", "prompt")
    text = read_text(path, f"{where}.params.path", max_bytes=MAX_PROMPT_FILE_BYTES)
    suffix = path.suffix.lower()
    rows: list[tuple[str | None, str, dict]] = []
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if column not in (reader.fieldnames or []):
            raise UserError(f"{where}: {path} has no column {column!r}; expected a header with {column!r} (columns: {reader.fieldnames})")
        for row in reader:
            _room_for_one_more(rows, path, where)
            if (row.get(column) or "").strip():
                rows.append((row.get("id") or None, row[column].strip(), {}))
    elif suffix == ".jsonl":
        for n, line in enumerate(io.StringIO(text), 1):  # streamed: the prompt cap stops it early
            if not line.strip():
                continue
            _room_for_one_more(rows, path, where)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: {path}:{n}: invalid JSON ({exc.msg}); expected one object per line") from None
            if not isinstance(obj, dict) or not isinstance(obj.get(column), str):
                raise UserError(f"{where}: {path}:{n}: expected an object with a string {column!r}")
            meta = {k: v for k, v in obj.items() if k not in (column, "id")}
            rows.append((str(obj["id"]) if "id" in obj else None, obj[column].strip(), meta))
    elif suffix in (".txt", ""):
        for line in io.StringIO(text):  # streamed: the prompt cap stops it early
            if line.strip():
                _room_for_one_more(rows, path, where)
                rows.append((None, line.strip(), {}))
    else:
        raise UserError(f"{where}: {path} has suffix {suffix!r}; expected .txt, .csv or .jsonl")
    if not rows:
        raise UserError(f"{where}: {path} has no prompts; expected at least one")
    return subsample(_items(rows), limit, sample_seed)


def inline_prompts(params: dict, *, limit: int | None = None, sample_seed: int = 0, where: str = "prompt_sets") -> list[PromptItem]:
    """Prompts listed in the suite: ``params.prompts`` is a list of strings."""
    only_params(params, {"prompts"}, where)
    prompts = require(params, "prompts", where, "a list of prompt strings")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise UserError(f"{where}.params.prompts: expected a non-empty list of non-empty strings")
    return subsample(_items([(None, p.strip(), {}) for p in prompts]), limit, sample_seed)
