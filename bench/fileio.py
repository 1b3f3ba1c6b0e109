"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

The data go to a hidden temporary file in the target's folder whose name is unique to the host,
process and call (``.NAME.<host>.<pid>.<random>.tmp``, created exclusively), are flushed and fsync'ed, and the file is renamed over the target (atomic on local
filesystems and NFS). Concurrent writers never share a temporary file; a writer killed midway
leaves at most a ``.NAME.*.tmp`` file next to the target, never a truncated target.
"""

from __future__ import annotations

import errno
import os
import socket
import uuid
from pathlib import Path

from .errors import UserError

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the parent folders.

    An OS error (full disk, no permission) removes the temporary file, leaves ``path`` as it was,
    and becomes a ``UserError`` naming the file.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise UserError(f"cannot write {path}: {reason}; nothing already written was changed") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
