"""The command tree of ``t2ibench``: which commands take ``--trust-remote-code``."""

from __future__ import annotations

import pytest

from t2ibench.cli import build_parser

#: commands that read a run directory (or the models a run names): they import only built-in
#: names from it unless the user passes --trust-remote-code
READ_RUN_DIRECTORY = [
    ("score",), ("table",), ("check",), ("report",), ("review",),
    ("analyze", "maps"), ("analyze", "switch"), ("analyze", "pid"),
    ("world", "render"), ("world", "train"), ("world", "eval"),
    ("itigen", "train"), ("itigen", "import"),
]
#: run/generate trust the suite file named on their own command line; the listings read nothing
NO_TRUST_FLAG = [("run",), ("generate",), ("suites",), ("methods",), ("metrics",)]


def _help(command: tuple[str, ...], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", READ_RUN_DIRECTORY, ids=" ".join)
def test_commands_that_read_a_run_directory_take_trust_remote_code(command, capsys):
    assert "--trust-remote-code" in _help(command, capsys)


@pytest.mark.parametrize("command", NO_TRUST_FLAG, ids=" ".join)
def test_suite_and_listing_commands_have_no_trust_flag(command, capsys):
    assert "--trust-remote-code" not in _help(command, capsys)


def test_trust_remote_code_parses_on_a_run_directory_command():
    args = build_parser().parse_args(["report", "some-run", "--trust-remote-code"])
    assert args.trust_remote_code is True
    assert build_parser().parse_args(["report", "some-run"]).trust_remote_code is False
