"""The README's "Scoring a new method" example runs as written: its module, then `--add-method`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from _helpers.cli import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_code() -> str:
    text = README.read_text()
    after = text.split("<!-- new-method-example", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_readme_method_example_adds_a_row(tmp_path, write_suite, monkeypatch, capsys):
    (tmp_path / "my_methods.py").write_text(_example_code())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_methods", raising=False)  # another test's my_methods
    suite = write_suite(n=1, batch=3)
    run = tmp_path / "run"
    assert run_cli("generate", suite, "--out", run, "--quiet") == 0
    assert run_cli("generate", suite, "--out", run, "--quiet", "--add-method", "my_methods:SharpStart@mixed") == 0
    assert "generated 3 images (3 already done)" in capsys.readouterr().out
    meta = json.loads((run / "images" / "my_methods.SharpStart" / "mixed" / "p00000-0000.json").read_text())
    assert meta["method_name"] == "my_methods:SharpStart" and meta["method_params"] == {"tau": 0.7, "until": 0.3}
    # the controlled images differ from the plain ones on the same seed
    plain = json.loads((run / "images" / "sd" / "mixed" / "p00000-0000.json").read_text())
    assert meta["seed"] == plain["seed"] and meta["image_sha256"] != plain["image_sha256"]


def test_add_method_errors_are_one_line(write_suite, capsys):
    suite = write_suite(n=1, batch=3)
    assert run_cli("generate", suite, "--out", "unused", "--add-method", "no_such_module:Nope") == 2
    assert run_cli("generate", suite, "--out", "unused", "--add-method", "sd") == 2  # label sd already taken
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("t2ibench: error:") for line in err)
