"""bench/log.py: the t2ibench logger."""

from __future__ import annotations

import logging

from t2ibench.log import get_logger, log_to_file, setup_logging


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
