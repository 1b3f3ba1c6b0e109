"""Options that several ``t2ibench`` commands share, as argparse parent parsers.

A command module passes them to ``add_parser(name, parents=[...])``, so each option has one
spelling and one help text however many commands take it.
"""

from __future__ import annotations

import argparse

TRUST_HELP = ("import module:attribute names found in the run directory's suite (metrics, judges, ...): "
              "that runs their code; only for run directories you trust (default: built-in names only)")


def trust_remote_code() -> argparse.ArgumentParser:
    """``--trust-remote-code``, for every command that reads a run directory or the models it names
    (README: trust model). ``run`` and ``generate`` do not take it: the suite file the user names
    on their command line is trusted like a Makefile."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    return parent
