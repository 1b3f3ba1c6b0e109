"""The CI regression gate catches a broken controller and passes the intact one.

Runs the fairness slice of the shipped `tinyworld-smoke` suite (same suite name, seeds and
prompts as CI's run) twice: with the real `fairqueue`, and with a FairQueue whose prompt queue
is broken on purpose (the switch fraction read from the wrong end, so the biased base prompt runs for 80 %
of the steps instead of 20 %). Both rows are labelled `fairqueue` and checked with
`t2ibench check` against the committed reference table and tolerances.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from t2ibench.cli import main
from t2ibench.results.check import check_run
from t2ibench.suite import shipped_suites
from t2ibench.world import pipeline_available, pipeline_dir

REFERENCE = Path(__file__).resolve().parents[1] / "reference"

BROKEN = '''
from t2ibench.baselines.fairqueue import FairQueue


class LateSwitch(FairQueue):
    """FairQueue with a bug: the queue's switch fraction read from the wrong end (1 - switch),
    so the biased base prompt runs for 80 % of the steps instead of 20 %."""

    def __init__(self, tokens_dir=None, queue=True, switch=0.2, amplify=True, factor=10.0, amplify_layers="cross"):
        super().__init__(tokens_dir, queue, 1.0 - switch, amplify, factor, amplify_layers)
'''

pytestmark = pytest.mark.skipif(not pipeline_available(), reason=f"tinyworld pipeline not shipped in {pipeline_dir()}")


def _fairqueue_slice(tmp_path: Path, method_name: str) -> Path:
    """tinyworld-smoke restricted to the `fairqueue` row and the fairness scorers."""
    spec = yaml.safe_load(shipped_suites()["tinyworld-smoke"].read_text())
    method = next(m for m in spec["methods"] if m.get("label", m["name"]) == "fairqueue")
    spec["methods"] = [{**method, "name": method_name, "label": "fairqueue"}]
    spec["metrics"] = [m for m in spec["metrics"] if m["name"] == "fairness"]
    path = tmp_path / f"{method_name.replace(':', '_')}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _fairqueue_findings(tmp_path: Path, method_name: str) -> tuple[list, int]:
    run = tmp_path / f"run-{method_name.replace(':', '_')}"
    assert main(["run", str(_fairqueue_slice(tmp_path, method_name)), "--out", str(run), "--quiet"]) == 0
    failures, _ = check_run(run, REFERENCE / "tinyworld-smoke.json", REFERENCE / "tinyworld-smoke.tolerance.yaml")
    # this run holds the fairqueue row of the fairness scorers only: the rest is "missing" here
    ours = [f for f in failures if f.key[2] == "fairqueue" and f.key[3].startswith(("fd-evaluator.", "fd-clip."))]
    return [f for f in ours if f.current is not None], sum(f.current is None for f in ours)


@pytest.mark.slow
def test_gate_passes_the_intact_controller_and_fails_the_broken_one(tmp_path, monkeypatch):
    (tmp_path / "broken_controllers.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    intact, missing = _fairqueue_findings(tmp_path, "fairqueue")
    assert intact == [] and missing == 0
    broken, missing = _fairqueue_findings(tmp_path, "broken_controllers:LateSwitch")
    assert missing == 0
    assert broken, "the gate did not notice the late prompt switch"
    assert any(".fd:" in f.key[3] for f in broken)
