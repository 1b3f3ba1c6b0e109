"""File reads and writes with one failure mode each: a ``UserError`` naming the file.

- ``read_user_file(path, what=..., expected=...)``: the bytes (or text) of a file the user or a run
  directory supplies; a missing, unreadable or non-UTF-8 file is one line saying what, where
  and what was expected. ``read_bytes_explained(path, explain)``: the same checks with the
  caller's wording (dataset loaders).
- ``write_output_text``: a file the user named with ``-o`` (through links, into devices and FIFOs).
- ``atomic_write_bytes`` / ``_text`` / ``_json``: written to a hidden temporary name unique to
  (host, pid, call) in the same folder, created exclusively, flushed, fsync'ed and renamed over
  the final name (atomic on local filesystems and NFS). Concurrent writers never share a
  temporary file; a full disk or any OS error removes the temporary file and leaves the final
  name as it was; a writer killed midway leaves at most a ``.NAME.*.tmp`` file, never a
  truncated target.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat
import uuid
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, overload

from .errors import UserError

ReadProblem = Literal["missing", "directory", "unreadable"]


def read_bytes_explained(path: Path, explain: Callable[[ReadProblem, str], str]) -> bytes:
    """``path``'s bytes; a missing file, a directory or another OS error is a ``UserError`` worded by
    the caller's ``explain(problem, OS error text)`` (one line: what, where, what was expected)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(explain("missing", "")) from None
    except IsADirectoryError:
        raise UserError(explain("directory", "")) from None
    except OSError as exc:
        raise UserError(explain("unreadable", f"{exc.strerror or exc}")) from None


#: ``.<target name>.<host tag>.<pid>.<12 hex digits>.tmp``; the host tag has no dots, so the
#: fields parse from the right whatever the target name holds.
_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{12}\.tmp$")


class TmpOwner(NamedTuple):
    """The writer of a temporary file: its host tag and process id."""

    host: str
    pid: int


def host_tag() -> str:
    """This machine's host name as it appears in temporary names: every character other than
    ``[A-Za-z0-9_-]`` (the dots of ``node1.cluster.local``) becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "_"


def tmp_name(path: Path) -> Path:
    """A fresh hidden temporary name for ``path``: ``.<name>.<host tag>.<pid>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{host_tag()}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def tmp_owner(name: str) -> TmpOwner | None:
    """Who wrote the temporary file called ``name`` (made by ``tmp_name``); None for any other name."""
    m = _TMP_NAME.match(name)
    return TmpOwner(m["host"], int(m["pid"])) if m else None


@overload
def read_user_file(path: str | Path, *, what: str, expected: str, text: Literal[False] = ...) -> bytes: ...
@overload
def read_user_file(path: str | Path, *, what: str, expected: str, text: Literal[True]) -> str: ...


def read_user_file(path: str | Path, *, what: str, expected: str, text: bool = False) -> bytes | str:
    """The content of ``path`` (bytes, or UTF-8 text with ``text=True``).

    what: the file's role in the message ("suite file", "sidecar"); expected: what it should
    be ("a YAML file", "the JSON written by `t2ibench generate`").
    """
    path = Path(path)

    def explain(problem: ReadProblem, detail: str) -> str:
        return {"missing": f"{what} {path} does not exist; expected {expected}",
                "directory": f"{what} {path} is a directory; expected {expected}",
                "unreadable": f"cannot read {what} {path}: {detail}; expected {expected}"}[problem]

    raw = read_bytes_explained(path, explain)
    if not text:
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path}: not UTF-8 text (byte {exc.start}); expected {expected}") from None


def read_json_object(path: str | Path, *, what: str, expected: str) -> dict:
    """A JSON file whose top level must be an object; anything else is one ``UserError`` line."""
    text = read_user_file(path, what=what, expected=expected, text=True)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path}: damaged JSON ({exc.msg} at line {exc.lineno}); expected {expected}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path}: top level is {type(obj).__name__}, not an object; expected {expected}")
    return obj


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename), creating the parent
    folders; an OS error leaves ``path`` as it was and becomes a ``UserError`` naming the file."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise UserError(f"cannot write {path}: {reason}; nothing already written was changed") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def write_output_text(path: str | Path, text: str) -> None:
    """Write a file the user named (``-o``): atomically for a regular file; through a symbolic link
    to its target (the link stays); straight into a character device or FIFO (``/dev/stdout``,
    a pipe), which a rename would replace with a regular file. Errors as ``atomic_write_bytes``."""
    path = Path(path)
    try:
        mode = path.stat().st_mode  # follows links
    except OSError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"cannot write {path}: it is not a regular file (a directory, socket or block device); "
                        "expected a file path")
    atomic_write_text(Path(os.path.realpath(path)) if path.is_symlink() else path, text)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
