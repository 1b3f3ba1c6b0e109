"""Reading user-supplied text files with the checks every loader needs."""

from __future__ import annotations

import random
import stat
from pathlib import Path
from typing import Sequence, TypeVar

from t2ibench.errors import UserError
from t2ibench.fileio import ReadProblem, read_bytes_explained

T = TypeVar("T")


def read_text(path: str | Path, where: str, max_bytes: int | None = None) -> str:
    """The file's UTF-8 text; missing, unreadable, not a regular file, larger than ``max_bytes``,
    non-UTF-8 or empty is a ``UserError``. The size is checked before anything is read."""
    path = Path(path).expanduser()
    if max_bytes is not None:
        try:
            st = path.stat()
        except OSError:
            st = None  # missing or unreadable: read_bytes_explained words it
        if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            raise UserError(f"{where}: {path} is not a regular file (a device, FIFO or socket); expected a prompt file")
        if st is not None and st.st_size > max_bytes:
            raise UserError(f"{where}: {path} has {st.st_size} bytes; expected at most {max_bytes} "
                            f"({max_bytes // (1024 * 1024)} MiB)")

    def explain(problem: ReadProblem, detail: str) -> str:
        return {"missing": f"{where}: file {path} does not exist",
                "directory": f"{where}: {path} is a directory; expected a file",
                "unreadable": f"{where}: cannot read {path}: {detail}"}[problem]

    raw = read_bytes_explained(path, explain)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: {path} is not UTF-8 (invalid byte at offset {exc.start}); expected UTF-8 text") from None
    if not text.strip():
        raise UserError(f"{where}: {path} is empty; expected at least one prompt")
    return text


def subsample(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """``limit`` items drawn without replacement with ``random.Random(seed)``, in original order."""
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def require(params: dict, key: str, where: str, expected: str):
    if key not in params:
        raise UserError(f"{where}.params.{key}: missing; expected {expected}")
    return params[key]


def only_params(params: dict, allowed: set[str], where: str) -> None:
    """A ``UserError`` for a key of ``params`` the loader does not read (a typo must not pass)."""
    unknown = sorted(str(k) for k in set(params) - allowed)
    if unknown:
        raise UserError(f"{where}.params: unknown key {unknown[0]!r}; expected only {sorted(allowed)}")
