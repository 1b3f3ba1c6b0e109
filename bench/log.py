"""The ``t2ibench`` logger: progress and diagnostics on stderr, never on stdout.

Modules log through ``get_logger(__name__)`` (children of the ``t2ibench`` logger). A library
user sees nothing below WARNING unless they configure logging; the CLI calls ``setup_logging()``
once, which adds one stderr handler at the level named by the environment variable
``T2IBENCH_LOG_LEVEL`` (a level name such as ``DEBUG`` or ``WARNING``; default ``INFO``).
Commands have no verbosity flags; a library caller may pass ``verbosity`` instead.
``print`` is for command output only (tables, paths the user asked for).

The handler writes through ``tqdm.write`` so that log lines do not tear progress bars.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = "t2ibench"
ENV_LEVEL = "T2IBENCH_LOG_LEVEL"

__all__ = ["get_logger", "setup_logging", "log_to_file"]


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger for module ``name`` under ``t2ibench`` (``__name__`` of a package module)."""
    if name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    return logging.getLogger(name)


class _StderrHandler(logging.StreamHandler):
    """A stderr handler that goes through ``tqdm.write`` (keeps progress bars intact)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - tqdm missing or stderr closed
            self.handleError(record)


def _level(verbosity: int) -> int:
    env = os.environ.get(ENV_LEVEL, "").strip().upper()
    if verbosity == 0 and env:
        value = logging.getLevelName(env)
        if isinstance(value, int):
            return value
    return {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.ERROR)


def setup_logging(verbosity: int = 0) -> logging.Logger:
    """Send ``t2ibench`` log records to stderr (idempotent: one handler however often it is called).

    ``verbosity``: 0 = INFO (or ``$T2IBENCH_LOG_LEVEL``), 1+ = DEBUG, -1 = WARNING, -2 = ERROR.
    """
    logger = logging.getLogger(ROOT)
    level = _level(verbosity)
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    handler.setLevel(level)
    logger.setLevel(level)
    return logger


@contextmanager
def log_to_file(logger: logging.Logger, path: str | Path, fmt: str = "%(asctime)s %(message)s") -> Iterator[None]:
    """Also append ``logger``'s INFO+ records to ``path`` while the block runs (a run's log file).

    The file gets every INFO record whatever the console level; the console handler keeps its own.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old_level)
