"""Per-image score cache in ``RUN/scores/``: append-only part files, safe with many writers.

Layout::

    RUN/scores/<metric label>/<config hash>/config.json        the scorer configuration hashed
    RUN/scores/<metric label>/<config hash>/part-<host>-<pid>-<random>.json   {item key: value}
    RUN/scores/<metric label>/<config hash>/part-<host>-<pid>-<random>.npz    keys + (n, d) float64 values

The item key is sha256(image content hash, the scorer's per-image inputs), so a value is
reused whenever the same pixels are scored with the same inputs and configuration. Each
scoring batch writes one new part file (temporary name + rename: atomic); nothing is ever
rewritten, so processes (ranks, machines on a shared filesystem) never conflict; a
duplicate computed by two processes at once is harmless (same value). No SQLite, no locks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_json


def item_key(image_sha256: str, inputs: Mapping[str, Any]) -> str:
    blob = image_sha256 + json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class ScoreCache:
    """The cache of one (metric label, configuration)."""

    def __init__(self, scores_dir: Path, label: str, config_hash: str, config: Mapping[str, Any], kind: str = "json") -> None:
        self.dir = Path(scores_dir) / label / config_hash
        self.kind = kind
        self.config = dict(config)

    def load(self) -> dict[str, Any]:
        """All cached values of this configuration (union of part files)."""
        out: dict[str, Any] = {}
        if not self.dir.is_dir():
            return out
        for part in sorted(self.dir.glob("part-*")):
            try:
                if part.suffix == ".json":
                    values = json.loads(part.read_text())
                    if not isinstance(values, dict):
                        continue  # damaged: its images are scored again
                    out.update(values)
                elif part.suffix == ".npz":
                    with np.load(part, allow_pickle=False) as z:
                        for k, v in zip(z["keys"].tolist(), z["values"]):
                            out[str(k)] = v
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a part being written by another process appears only after its rename
        return out

    def add(self, values: Mapping[str, Any]) -> Path | None:
        """Write ``values`` (item key → value) as one new part file."""
        if not values:
            return None
        if not (self.dir / "config.json").is_file():
            atomic_write_json(self.dir / "config.json", self.config)
        stem = f"part-{socket.gethostname()}-{os.getpid()}-{os.urandom(6).hex()}"
        if self.kind == "array":
            keys = list(values)
            buf = io.BytesIO()
            np.savez(buf, keys=np.array(keys), values=np.stack([np.asarray(values[k], dtype=np.float64) for k in keys]))
            path = self.dir / f"{stem}.npz"
            atomic_write_bytes(path, buf.getvalue())
        else:
            path = self.dir / f"{stem}.json"
            atomic_write_bytes(path, json.dumps(dict(values), sort_keys=True).encode())
        return path


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]
