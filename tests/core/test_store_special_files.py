"""A run directory holds regular files and folders only: a FIFO in it is one error line, never a hang.

A FIFO is made by anyone and kept by ``tar``; named ``run.json``, a sidecar or the aggregates it
would block every read of that name forever. Each test puts one in a copy of a small scored
tiny-sd run; a helper thread writes into the FIFO after ``UNBLOCK_S`` seconds, so a command that
reads it ends instead of hanging, and the test sees how long it waited.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from _helpers.cli import run_cli

SIDECAR = "images/sd/mixed/p00001-0000.json"
UNBLOCK_S = 8.0


def _unblock_later(fifo: Path, done: threading.Event) -> threading.Thread:
    """A thread that, unless ``done`` is set within ``UNBLOCK_S`` s, opens ``fifo`` for writing
    (non-blocking: only a waiting reader lets it open) and writes ``{}`` into it."""

    def work() -> None:
        if done.wait(UNBLOCK_S):
            return
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.1)
                continue
            os.write(fd, b"{}")
            os.close(fd)
            time.sleep(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name, command", [("run.json", "score"), (SIDECAR, "score"), (SIDECAR, "report"),
                                           ("results/aggregates.json", "table"), ("run.json", "generate")])
def test_a_fifo_in_the_run_is_one_line_not_a_hang(run, capsys, name, command):
    fifo = run / name
    fifo.unlink()
    os.mkfifo(fifo)
    argv = [command, run] if command != "generate" else [command, run / "suite.yaml", "--out", run, "--quiet"]
    done = threading.Event()
    thread = _unblock_later(fifo, done)
    start = time.monotonic()
    try:
        code = run_cli(*argv)
    finally:
        waited = time.monotonic() - start
        done.set()
        thread.join()
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("t2ibench: error:")]
    assert waited < UNBLOCK_S, f"blocked on the FIFO {fifo} for {waited:.0f} s"
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert str(fifo) in lines[0] and "FIFO" in lines[0]
    assert fifo.is_fifo()  # refused, not replaced
