"""The run directory: images and their metadata on disk, written so a crash never corrupts it.

Layout (the files are the truth; nothing else is needed to read a run)::

    RUN/run.json                       suite name and hash, t2ibench version
    RUN/suite.yaml                     the resolved suite (latest); RUN/suites/<hash>.yaml all used
    RUN/images/<method>/<set>/<prompt id>-<index>.png
    RUN/images/<method>/<set>/<prompt id>-<index>.json   sidecar, written after the PNG
    RUN/scores/ ...                    scorer caches (t2ibench.results)
    RUN/results/ ...                   tables and aggregates

Every file is written to a hidden temporary name unique to (host, pid) in the same folder,
flushed, fsync'ed and renamed over its final name, which is atomic on local filesystems and
NFS alike. An image is done when its sidecar exists and names the PNG's SHA-256, so a process
killed between the two renames leaves an orphan PNG that the next run simply rewrites. No
locks and no SQLite: ranks on several machines may share one directory.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError

IMAGES = "images"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

    A full disk or any other OS error removes the temporary file, leaves ``path`` as it was,
    and becomes a ``UserError`` naming the file.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
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
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    return sha256_bytes(Path(path).read_bytes())


@dataclass(frozen=True)
class ImageRecord:
    """A finished image: its key (``method/set/prompt-index``), PNG path and sidecar metadata."""

    key: str
    png_path: Path
    meta: dict

    def load_image(self):
        """The image as an RGB ``PIL.Image``."""
        from PIL import Image

        with Image.open(self.png_path) as im:
            return im.convert("RGB")


class RunDir:
    """A run directory (see the module docstring for the layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- paths --------------------------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.path / IMAGES

    @property
    def scores_dir(self) -> Path:
        return self.path / "scores"

    @property
    def results_dir(self) -> Path:
        return self.path / "results"

    def png_path(self, key: str) -> Path:
        return self.images_dir / f"{key}.png"

    def meta_path(self, key: str) -> Path:
        return self.images_dir / f"{key}.json"

    # -- checks -------------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the directory if needed; a ``UserError`` if it cannot be written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = _tmp_name(self.path / "write-probe")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"output directory {self.path} is not writable: {exc.strerror or exc}") from None

    def exists(self) -> bool:
        return (self.path / "run.json").is_file()

    # -- suite --------------------------------------------------------------------------------
    def run_info(self) -> dict:
        try:
            return json.loads((self.path / "run.json").read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a t2ibench run directory (no run.json); expected the --out of `t2ibench generate`") from None

    def suite(self):
        """The resolved suite stored in the run directory."""
        from .suite import load_suite

        self.run_info()
        return load_suite(self.path / "suite.yaml")

    # -- images -------------------------------------------------------------------------------
    def read_meta(self, key: str) -> dict | None:
        """The sidecar of ``key`` if the image is complete (sidecar present, PNG hash matches)."""
        meta_path = self.meta_path(key)
        try:
            meta = json.loads(meta_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        png = self.png_path(key)
        if not png.is_file() or meta.get("image_sha256") != sha256_file(png):
            return None
        return meta

    def write_image(self, key: str, png_bytes: bytes, meta: dict) -> None:
        """Write the PNG, then its sidecar (with the PNG's SHA-256): the sidecar marks it done."""
        atomic_write_bytes(self.png_path(key), png_bytes)
        atomic_write_json(self.meta_path(key), {**meta, "key": key, "image_sha256": sha256_bytes(png_bytes)})

    def records(self) -> Iterator[ImageRecord]:
        """Finished images in key order (sidecars that parse and whose PNG exists)."""
        if not self.images_dir.is_dir():
            return
        for meta_path in sorted(self.images_dir.rglob("*.json")):
            if meta_path.name.startswith("."):
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                continue
            png = meta_path.with_suffix(".png")
            if png.is_file() and "key" in meta:
                yield ImageRecord(key=meta["key"], png_path=png, meta=meta)

    def clean_stale_temporaries(self) -> int:
        """Remove this host's temporary files left by processes that no longer exist."""
        host = socket.gethostname()
        removed = 0
        for tmp in self.path.rglob(".*.tmp"):
            parts = tmp.name.rsplit(".", 3)
            if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
                continue
            pid = int(parts[2])
            if pid == os.getpid() or _pid_alive(pid):
                continue
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
        return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
