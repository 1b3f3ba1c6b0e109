"""vqa_alignment in a run: an am-categories prompt set on the tinyworld pipeline, the judge's
columns with paired deltas, every question kept in the score cache, and a missing model
reported as "not available" (the coco2014-sdxl setting without local BLIP/OWLv2 folders)."""

from __future__ import annotations

import json

import pytest

from t2ibench.world.paths import pipeline_available

from _helpers.cli import run_cli
from _helpers.vqa import write_am_suite

CAPTIONS = ["a red circle at night", "two blue squares", "a striped green star", "a white circle above a red square",
            "a yellow triangle", "a circle holding a square", "a circle"]  # the last: presence only, not drawn


@pytest.mark.slow
@pytest.mark.skipif(not pipeline_available(), reason="tinyworld pipeline weights not shipped")
def test_vqa_alignment_columns_cache_and_not_available(tmp_path):
    suite = write_am_suite(tmp_path, CAPTIONS, name="vqa-run", images_per_prompt=2,
                           methods=["{name: sd}", "{name: sd, label: sd-w2, guidance: 2.0}"],
                           metrics=["{name: vqa_alignment, params: {vqa: tinyworld}}",
                                    f"{{name: vqa_alignment, label: blip, params: {{vqa: {tmp_path / 'no-blip'}}}}}"])
    assert run_cli("run", suite, "--out", tmp_path / "run", "--quiet") == 0
    agg = json.loads((tmp_path / "run" / "results" / "aggregates.json").read_text())
    rows = {(r["method"], r["column"]): r for r in agg["rows"]}
    assert {"vqa:all", "vqa-strict:all", "vqa-all-correct", "vqa:time", "vqa:numerical", "vqa:texture"} <= {c for _, c in rows}
    assert rows[("sd", "vqa:all")]["n"] == 2 * 6  # one caption per category, two images each
    assert "delta" in rows[("sd-w2", "vqa:all")]
    blip = rows[("sd", "blip")]
    assert blip["available"] is False and "not found locally" in blip["reason"]
    cached = [v for f in (tmp_path / "run" / "scores" / "vqa_alignment").rglob("part-*.json")
              for v in json.loads(f.read_text())["values"].values()]
    assert 0 < len(cached) <= 2 * 2 * 6
    assert all({"questions", "answers", "verdicts", "dependent"} <= set(v) for v in cached)
    assert all(len(v["answers"]) == len(v["questions"]) > 0 for v in cached)
    table = (tmp_path / "run" / "results" / "leaderboard.md").read_text()
    assert "vqa:all" in table
