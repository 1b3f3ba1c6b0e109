"""Running the ``t2ibench`` command line in-process or as a child process (no PATH lookup)."""

from __future__ import annotations

import sys
from pathlib import Path


def run_cli(*argv: object) -> int:
    """``t2ibench ARGV...`` in this process; returns the exit code."""
    from t2ibench.cli import main

    return main([str(a) for a in argv])


def t2ibench_command() -> list[str]:
    """argv prefix of a child ``t2ibench`` process: this interpreter, whatever PATH holds."""
    return [sys.executable, "-m", "t2ibench"]


def accelerate_launch_command() -> list[str]:
    """argv prefix of ``accelerate launch`` with this interpreter."""
    return [sys.executable, "-m", "accelerate.commands.launch"]


def files_of(run: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every image and sidecar of a run directory."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "images").rglob("*")) if p.is_file()}
