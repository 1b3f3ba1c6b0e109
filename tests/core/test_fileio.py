"""bench/fileio.py: atomic writes."""

from __future__ import annotations

import threading

import pytest

from t2ibench.errors import UserError
from t2ibench.fileio import atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    """Threads of one process writing the same file: with a fixed ``.tmp`` name they would
    interleave into one temporary file; here every final content is one writer's whole payload."""
    path = tmp_path / "f.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        for _ in range(5):
            try:
                atomic_write_bytes(path, data)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_failure_is_a_user_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "kept")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_text(tmp_path / "a.txt" / "child", "x")  # a file where a folder is expected
    assert path.read_text() == "kept"
