"""bench/fileio.py (atomic writes) and bench/log.py (the t2ibench logger)."""

from __future__ import annotations

import logging
import threading

import pytest

from t2ibench.errors import UserError
from t2ibench.fileio import atomic_write_bytes, atomic_write_text
from t2ibench.log import get_logger, log_to_file, setup_logging


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


def test_setup_logging_is_idempotent_and_reads_the_env_level(monkeypatch, capsys):
    logger = logging.getLogger("t2ibench")
    before = list(logger.handlers), logger.level
    for h in before[0]:  # an earlier in-process CLI call may have set it up already
        logger.removeHandler(h)
    try:
        monkeypatch.setenv("T2IBENCH_LOG_LEVEL", "warning")
        setup_logging()
        setup_logging()
        ours = list(logger.handlers)
        assert len(ours) == 1 and ours[0].level == logging.WARNING
        get_logger("t2ibench.world.x").info("hidden")
        get_logger("world.x").warning("shown")
        err = capsys.readouterr()
        assert err.out == "" and err.err == "shown\n"
        monkeypatch.delenv("T2IBENCH_LOG_LEVEL")
        assert setup_logging(1).level == logging.DEBUG
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in before[0]:
            logger.addHandler(h)
        logger.setLevel(before[1])


def test_log_to_file_gets_info_records_whatever_the_console_level(tmp_path):
    logger = get_logger("t2ibench.test_log_to_file")
    with log_to_file(logger, tmp_path / "log.txt"):
        logger.info("step 1/2")
    logger.info("after the block")
    text = (tmp_path / "log.txt").read_text()
    assert text.rstrip().endswith(" step 1/2") and "after" not in text
    assert logger.level == logging.NOTSET and not logger.handlers
