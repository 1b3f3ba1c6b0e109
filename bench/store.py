"""The run directory: images and their metadata on disk, written so a crash never corrupts it.

Layout (the files are the truth; nothing else is needed to read a run)::

    RUN/run.json                       suite name and hash, t2ibench version
    RUN/suite.yaml                     the resolved suite (latest); RUN/suites/<hash>.yaml all used
    RUN/images/<method>/<set>/<prompt id>-<index>.png
    RUN/images/<method>/<set>/<prompt id>-<index>.json   sidecar, written after the PNG
    RUN/scores/ ...                    scorer caches (t2ibench.results)
    RUN/results/ ...                   tables and aggregates

Every file is written to a hidden temporary name unique to (host, pid) in the same folder,
flushed, fsync'ed and renamed over its final name (``t2ibench.fileio``), which is atomic on
local filesystems and NFS alike; the temporary a killed writer leaves is removed by the next
``generate`` on that host (``clean_stale_temporaries``). Path parts come from names checked by
``t2ibench.paths``. An image is done when its sidecar exists and names the PNG's SHA-256, so a
process killed between the two renames leaves an orphan PNG that the next run simply rewrites.
Reading for scoring goes through one checked path (``records``): a damaged sidecar or a PNG
whose bytes differ from its recorded hash is a one-line ``UserError`` naming the file. No
locks and no SQLite: ranks on several machines may share one directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .fileio import atomic_write_bytes, atomic_write_json, host_tag, read_json_object, sha256_bytes, tmp_owner
from .fileio import tmp_name as _tmp_name
from .log import get_logger
from .paths import safe_name

IMAGES = "images"
log = get_logger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: sidecar fields the scorers read, with their type
SIDECAR_FIELDS = {"key": str, "image_sha256": str, "method": str, "prompt_set": str}
SIDECAR_OPTIONAL = {"prompt": str, "prompt_id": str, "prompt_meta": dict, "index": int, "height": int, "width": int,
                    "config_hash": str}
#: the fields of an image's configuration record (what makes the image); ``config_hash`` covers them
CONFIG_FIELDS = ("model", "vae", "sampler", "method_name", "method_params", "prompt_set", "prompt", "prompt_meta", "seed")
#: the largest image side a suite may ask for (``t2ibench.suite``); a sidecar without a size is held to it
MAX_SIDE = 4096


def config_hash(record: dict) -> str:
    """16 hex digits of the SHA-256 of an image's configuration record (``CONFIG_FIELDS``)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_record_of(meta: dict) -> dict:
    """The configuration record a sidecar carries (its ``CONFIG_FIELDS`` present)."""
    return {k: meta[k] for k in CONFIG_FIELDS if k in meta}


def sha256_file(path: str | Path) -> str:
    return sha256_bytes(Path(path).read_bytes())


@dataclass(frozen=True)
class ImageRecord:
    """A finished image: its key (``method/set/prompt-index``), PNG path and sidecar metadata."""

    key: str
    png_path: Path
    meta: dict

    def load_image(self):
        """The image as an RGB ``PIL.Image``. Its size is read from the PNG header and compared with
        the sidecar's ``height``/``width`` before any pixel is decoded."""
        from PIL import Image, UnidentifiedImageError

        fix = "delete it and its sidecar and rerun `t2ibench generate` with this run's suite to regenerate it"
        want = (self.meta.get("width"), self.meta.get("height"))
        try:
            with Image.open(self.png_path) as im:
                w, h = im.size
                if (w, h) != want and (want != (None, None) or max(w, h) > MAX_SIDE):
                    raise UserError(f"image {self.png_path}: {w}x{h} pixels, but its sidecar says "
                                    f"{want[0]}x{want[1]}; expected the image `t2ibench generate` wrote; {fix}")
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise UserError(f"image {self.png_path}: cannot decode it ({exc}); {fix}") from None


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

    def _key_path(self, key: str, suffix: str) -> Path:
        parts = key.split("/")
        if len(parts) != 3:
            raise UserError(f"image key {key!r}: expected <method>/<prompt set>/<prompt id>-<index>")
        for part in parts:
            safe_name(part, f"image key {key!r} part")
        return self.images_dir.joinpath(*parts[:-1], parts[-1] + suffix)

    def png_path(self, key: str) -> Path:
        return self._key_path(key, ".png")

    def meta_path(self, key: str) -> Path:
        return self._key_path(key, ".json")

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

    def check_contained(self) -> None:
        """A ``UserError`` if anything inside the run directory is a symbolic link, or anything
        else than a regular file or a folder (a FIFO, socket or device node).

        t2ibench never writes one, and a link would lead reads (images, caches) or writes
        (scores, results, report) to files outside the directory: ``RUN/results -> OTHER/results``
        would have ``score`` overwrite another run's aggregates. A FIFO named ``run.json`` or a
        sidecar's name would block every read of it forever, and a device node reads bytes from
        outside the run. The directory itself may be a link.
        """
        if not self.path.is_dir():
            return
        stack = [self.path]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                raise UserError(f"run directory {self.path}: cannot list {folder} ({exc.strerror or exc})") from None
            for entry in entries:
                if entry.is_symlink():
                    raise UserError(f"{entry.path} is a symbolic link (to {os.readlink(entry.path)}); expected a run "
                                    "directory that holds its own files only: replace the link by a copy or remove it")
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif not entry.is_file(follow_symlinks=False):
                    raise UserError(f"{entry.path} is a {_special_kind(entry.path)}, not a regular file; expected a run "
                                    "directory of files and folders only: remove it")

    # -- suite --------------------------------------------------------------------------------
    def run_info(self) -> dict:
        if not (self.path / "run.json").exists():
            raise UserError(f"{self.path} is not a t2ibench run directory (no run.json); expected the --out of `t2ibench generate`")
        return read_json_object(self.path / "run.json", what="run file",
                                expected="the run.json written by `t2ibench generate` (rerun it to rewrite the file)")

    def suite(self):
        """The resolved suite stored in the run directory."""
        from .suite import load_suite

        self.run_info()
        return load_suite(self.path / "suite.yaml")

    # -- images -------------------------------------------------------------------------------
    def read_meta(self, key: str) -> dict | None:
        """The sidecar of ``key`` if the image is complete (sidecar present, PNG hash matches)."""
        try:
            meta = json.loads(self.meta_path(key).read_bytes())
            if not isinstance(meta, dict) or meta.get("image_sha256") != sha256_file(self.png_path(key)):
                return None
        except (OSError, ValueError):  # missing or damaged: the image is regenerated
            return None
        return meta

    def write_image(self, key: str, png_bytes: bytes, meta: dict) -> None:
        """Write the PNG, then its sidecar (with the PNG's SHA-256): the sidecar marks it done."""
        atomic_write_bytes(self.png_path(key), png_bytes)
        atomic_write_json(self.meta_path(key), {**meta, "key": key, "image_sha256": sha256_bytes(png_bytes)})

    def records(self, *, warn: bool = True) -> Iterator[ImageRecord]:
        """Finished images in key order, each checked: sidecar, then the PNG's bytes against its hash.

        A damaged sidecar, a missing PNG, or a PNG whose SHA-256 differs from its sidecar's is a
        ``UserError`` naming the file (``generate`` with the same suite regenerates it). A PNG
        without a sidecar is an image a killed process did not finish: skipped, with one warning
        line on stderr (``warn``).
        """
        if not self.images_dir.is_dir():
            return
        unfinished = 0
        for path in sorted(self.images_dir.rglob("*")):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix == ".png":
                unfinished += not path.with_suffix(".json").is_file()
            elif path.suffix == ".json":
                yield self._checked_record(path)
        if unfinished and warn:
            log.warning(f"t2ibench: warning: {unfinished} PNG(s) in {self.images_dir} have no sidecar (unfinished); "
                        "skipped: rerun `t2ibench generate` to finish them")

    def _checked_record(self, meta_path: Path) -> ImageRecord:
        """The one checked read of an image: sidecar fields, key = its path, PNG bytes = its hash."""
        fix = "rerun `t2ibench generate` with this run's suite to regenerate it"
        meta = read_json_object(meta_path, what="image sidecar", expected=f"the JSON written by `t2ibench generate`; {fix}")
        rel = meta_path.relative_to(self.images_dir).with_suffix("").as_posix()
        for field_name, kind in {**SIDECAR_FIELDS, **SIDECAR_OPTIONAL}.items():
            if (field_name in SIDECAR_FIELDS or field_name in meta) and (
                not isinstance(meta.get(field_name), kind) or isinstance(meta.get(field_name), bool)
            ):
                raise UserError(f"image sidecar {meta_path}: field {field_name!r} = {meta.get(field_name)!r:.60}; "
                                f"expected a {kind.__name__}; {fix}")
        if meta["key"] != rel or not _SHA256.match(meta["image_sha256"]):
            raise UserError(f"image sidecar {meta_path}: key/hash fields do not match its file; {fix}")
        problem = _sidecar_inconsistency(rel, meta)
        if problem:
            raise UserError(f"image sidecar {meta_path}: {problem}; expected the sidecar `t2ibench generate` wrote: "
                            "delete it and its PNG and rerun `t2ibench generate` with this run's suite")
        png = meta_path.with_suffix(".png")
        try:
            data = png.read_bytes()
        except OSError as exc:
            raise UserError(f"image {png}: cannot read it ({exc.strerror or exc}); {fix}") from None
        if sha256_bytes(data) != meta["image_sha256"]:
            raise UserError(f"image {png}: its SHA-256 differs from its sidecar's (corrupt or changed); {fix}")
        return ImageRecord(key=rel, png_path=png, meta=meta)

    def clean_stale_temporaries(self) -> int:
        """Remove this host's temporary files left by processes that no longer exist (a killed
        writer); another host's, a live process's and any file not named by ``tmp_name`` stay.
        Returns how many were removed."""
        host = host_tag()
        removed = 0
        for tmp in self.path.rglob(".*.tmp"):
            owner = tmp_owner(tmp.name)
            if owner is None or owner.host != host or owner.pid == os.getpid() or _pid_alive(owner.pid):
                continue
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
        return removed


def _sidecar_inconsistency(key: str, meta: dict) -> str | None:
    """What in a sidecar contradicts its key (``method/set/<prompt id>-<index>``) or its own
    configuration hash; None when it is consistent."""
    method, prompt_set, stem = key.split("/")
    if meta["method"] != method:
        return f"method {meta['method']!r} is not its folder's {method!r}"
    if meta["prompt_set"] != prompt_set:
        return f"prompt_set {meta['prompt_set']!r} is not its folder's {prompt_set!r}"
    if "prompt_id" in meta and "index" in meta and f"{meta['prompt_id']}-{meta['index']:04d}" != stem:
        return f"prompt id and index ({meta['prompt_id']!r}, {meta['index']}) do not name its file {stem!r}"
    if "config_hash" in meta and config_hash(config_record_of(meta)) != meta["config_hash"]:
        return "its configuration (prompt, method, sampler, seed, ...) does not match its config_hash"
    return None


def _special_kind(path: str) -> str:
    """What a directory entry that is neither a file, a folder nor a link is, in words."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "special file"
    for test, word in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return word
    return "special file"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
