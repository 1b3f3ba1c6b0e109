"""score_run: caching (no forward on the second call), incremental scoring, aggregates, not available."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2ibench.errors import UserError
from t2ibench.metrics.fairness import fairness_discrepancy
from t2ibench.metrics.frechet_math import frechet_distance
from t2ibench.results.scoring import score_run

from _helpers.results import Counting, add_images


def _rows(out, metric=None, method=None):
    return [r for r in out["rows"] if (metric is None or r["metric"] == metric) and (method is None or r["method"] == method)]


def test_second_call_does_no_forward_and_adding_images_scores_only_those(make_run):
    run = make_run()
    Counting.forwards = 0
    first = score_run(run.path)
    n_align = 2 * 2 * 3  # methods x prompts x images
    # t_mean + t_fid on align (12 each), t_fair on fair (12), plus 12 reference images once for FID
    assert Counting.forwards == n_align * 3 + 12
    Counting.forwards = 0
    second = score_run(run.path)
    assert Counting.forwards == 0
    assert second["rows"] == first["rows"]
    assert all(m.get("newly_scored", 0) == 0 for m in second["metrics"].values())
    add_images(run, "sd", 1, 3, start=2)  # 3 new images per prompt set for sd
    Counting.forwards = 0
    third = score_run(run.path)
    assert Counting.forwards == 3 * 3
    assert third["metrics"]["t_mean"]["newly_scored"] == 3 and third["metrics"]["t_mean"]["cached"] == n_align
    assert json.loads((run.path / "results" / "aggregates.json").read_text())["rows"] == third["rows"]


def test_aggregates_match_independent_computation(make_run):
    run = make_run()
    out = score_run(run.path)
    recs = [r for r in run.records() if r.meta["prompt_set"] == "align" and r.meta["method"] == "sd"]
    reds = [float(np.asarray(r.load_image())[:, :, 0].mean()) for r in recs]
    (row,) = _rows(out, "t_mean", "sd")
    assert row["value"] == pytest.approx(np.mean(reds)) and row["n"] == len(recs) and row["prompt_set"] == "align"
    # FID: features = 10 x mean colour, reference = the 12 reference PNGs
    from PIL import Image

    feats = np.array([[np.asarray(r.load_image())[:, :, c].mean() / 255 * 10 for c in range(3)] for r in recs])
    ref_dir = run.path.parent / "reference"
    ref = np.array([[np.asarray(Image.open(p).convert("RGB"))[:, :, c].mean() / 255 * 10 for c in range(3)] for p in sorted(ref_dir.glob("*.png"))])
    (fid,) = _rows(out, "t_fid", "sd")
    assert fid["column"] == "t_fid" and fid["lower_is_better"] is True
    assert fid["value"] == pytest.approx(frechet_distance(ref, feats), rel=1e-5)
    assert fid["ci"][0] <= fid["ci"][1]
    assert out["metrics"]["t_fid"]["conventions"]["network"] == "mean-colour-features"
    # fairness: argmax of (-red, red) is always 1 → FD of all-one predictions
    (fd,) = [r for r in _rows(out, "t_fair", "sd") if r["column"] == "t_fair.fd:Smiling"]
    assert fd["value"] == pytest.approx(fairness_discrepancy([1] * 6, 2))
    assert {r["prompt_set"] for r in _rows(out, "t_fair")} == {"fair"}


def test_missing_model_reported_not_available(make_run):
    run = make_run()
    out = score_run(run.path)
    info = out["metrics"]["t_missing"]
    assert info["available"] is False and "weights for t_missing" in info["reason"]
    rows = _rows(out, "t_missing")
    assert rows and all(r["value"] is None and r["available"] is False for r in rows)


def test_metric_subset_keeps_other_results(make_run):
    run = make_run()
    score_run(run.path)
    Counting.forwards = 0
    out = score_run(run.path, ["t_mean"])
    assert Counting.forwards == 0
    assert {r["metric"] for r in out["rows"]} == {"t_mean", "t_fid", "t_fair", "t_missing"}
    with pytest.raises(UserError, match="--metrics"):
        score_run(run.path, ["nope"])


def test_config_change_rescores(make_run, tmp_path):
    from t2ibench.suite import MetricSpec

    run = make_run()
    score_run(run.path, ["t_mean"])
    Counting.forwards = 0
    from t2ibench.results.scoring import score_metric

    from _helpers.results import MeanPixelScorer

    info, _ = score_metric(run, list(run.records()), MetricSpec(name="t_mean", params={"scale": 2.0}, prompt_sets=["align"]), MeanPixelScorer(2.0))
    assert Counting.forwards == 12 and info["newly_scored"] == 12


def test_sharded_scoring_then_aggregate_without_forward(make_run):
    run = make_run()
    Counting.forwards = 0
    for rank in range(3):
        part = score_run(run.path, shard=(rank, 3))
        assert part["rows"] == []
    assert not (run.path / "results" / "aggregates.json").exists()
    assert Counting.forwards == 12 * 3  # every image once over the shards, for each of the 3 scorers
    Counting.forwards = 0
    out = score_run(run.path)
    assert Counting.forwards == 12  # only the FID reference set (first aggregation), no generated image
    assert all(m.get("newly_scored", 0) == 0 for m in out["metrics"].values())
    assert out["rows"] == score_run(run.path)["rows"]
