"""Per-image score cache in ``RUN/scores/``: append-only part files, safe with many writers.

Layout::

    RUN/scores/<metric label>/<config hash>/config.json        the scorer configuration hashed
    RUN/scores/<metric label>/<config hash>/part-<host>-<pid>-<random>.json   {format, values: {item key: value}, digest}
    RUN/scores/<metric label>/<config hash>/part-<host>-<pid>-<random>.npz    keys, (n, d) float64 values, digest

The item key is sha256(image content hash, the scorer's per-image inputs), so a value is
reused whenever the same pixels are scored with the same inputs and configuration. Each part
file carries a digest of its keys and values chained to the configuration hash (as an image's
sidecar carries its PNG's hash): a part whose digest does not match (edited by hand, written by
another version, damaged) is not read, and its images are scored again. Each
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
from ..log import get_logger

CACHE_FORMAT = "t2ibench-scores/2"
log = get_logger(__name__)


def item_key(image_sha256: str, inputs: Mapping[str, Any]) -> str:
    blob = image_sha256 + json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class ScoreCache:
    """The cache of one (metric label, configuration)."""

    def __init__(self, scores_dir: Path, label: str, config_hash: str, config: Mapping[str, Any], kind: str = "json") -> None:
        self.dir = Path(scores_dir) / label / config_hash
        self.config_hash = config_hash
        self.kind = kind
        self.config = dict(config)

    def load(self) -> dict[str, Any]:
        """All cached values of this configuration (union of the part files whose digest holds)."""
        out: dict[str, Any] = {}
        if not self.dir.is_dir():
            return out
        rejected = 0
        for part in sorted(self.dir.glob("part-*")):
            try:
                if part.suffix == ".json":
                    doc = json.loads(part.read_text())
                    values = doc.get("values") if isinstance(doc, dict) else None
                    if not isinstance(values, dict) or doc.get("digest") != self._digest_json(values):
                        rejected += 1
                        continue
                    out.update(values)
                elif part.suffix == ".npz":
                    with np.load(part, allow_pickle=False) as z:
                        keys, arr = [str(k) for k in z["keys"].tolist()], np.asarray(z["values"], dtype=np.float64)
                        if str(z["digest"]) != self._digest_array(keys, arr):
                            rejected += 1
                            continue
                        out.update(zip(keys, arr, strict=True))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a part being written by another process appears only after its rename
        if rejected:
            log.warning(f"t2ibench score: warning: {rejected} cache part(s) in {self.dir} fail their integrity check "
                        "(edited or damaged); their images are scored again")
        return out

    def _digest_json(self, values: Mapping[str, Any]) -> str:
        blob = json.dumps({"config": self.config_hash, "values": values}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _digest_array(self, keys: list[str], values: np.ndarray) -> str:
        h = hashlib.sha256(self.config_hash.encode())
        h.update("\n".join(keys).encode())
        h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
        return h.hexdigest()

    def add(self, values: Mapping[str, Any]) -> Path | None:
        """Write ``values`` (item key → value) as one new part file, with its digest."""
        if not values:
            return None
        if not (self.dir / "config.json").is_file():
            atomic_write_json(self.dir / "config.json", self.config)
        stem = f"part-{socket.gethostname()}-{os.getpid()}-{os.urandom(6).hex()}"
        if self.kind == "array":
            keys = list(values)
            arr = np.stack([np.asarray(values[k], dtype=np.float64) for k in keys])
            buf = io.BytesIO()
            np.savez(buf, keys=np.array(keys), values=arr, digest=np.array(self._digest_array(keys, arr)))
            path = self.dir / f"{stem}.npz"
            atomic_write_bytes(path, buf.getvalue())
        else:
            path = self.dir / f"{stem}.json"
            plain = json.loads(json.dumps(dict(values), sort_keys=True))  # the values as they read back
            atomic_write_bytes(path, json.dumps({"format": CACHE_FORMAT, "values": plain,
                                                 "digest": self._digest_json(plain)}, sort_keys=True).encode())
        return path


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]
