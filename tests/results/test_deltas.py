"""Paired deltas against the reference method: values, intervals, pairing, and the scoring hook."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from t2ibench.metrics.common import mean_sample
from t2ibench.results.deltas import paired_delta
from t2ibench.results.scoring import score_run


def _metas(ids):
    return [{"prompt_id": f"p{p}", "index": i} for p, i in ids]


def test_paired_mean_delta_matches_scipy_and_beats_unpaired():
    rng = np.random.default_rng(0)
    n = 64
    prompt_effect = rng.normal(0, 5, n)  # shared by both methods: the pairing cancels it
    ref = prompt_effect + rng.normal(0, 0.5, n)
    mine = prompt_effect + 0.4 + rng.normal(0, 0.5, n)
    ids = [(p, 0) for p in range(n)]
    # the method's images listed in another order: pairing is by (prompt id, index), not position
    order = rng.permutation(n)
    d = paired_delta(mean_sample(range(n), mine[order]), _metas([ids[i] for i in order]),
                     mean_sample(range(n), ref), _metas(ids), lower_is_better=False, n_boot=4000)
    assert d["value"] == pytest.approx((mine - ref).mean(), abs=1e-12)
    sc = scipy.stats.bootstrap(((mine - ref),), np.mean, method="percentile", n_resamples=4000,
                               random_state=np.random.default_rng(1)).confidence_interval
    assert d["ci"] == pytest.approx([sc.low, sc.high], abs=0.03)
    assert d["significant"] and d["verdict"] == "better" and d["n_pairs"] == n
    unpaired = scipy.stats.ttest_ind(mine, ref)
    assert unpaired.pvalue > 0.5  # separate intervals could not tell them apart


def test_only_shared_pairs_count_and_direction():
    ids = [(p, i) for p in range(10) for i in range(2)]
    x = np.arange(20.0)
    d = paired_delta(mean_sample(range(20), x + 1), _metas(ids), mean_sample(range(10), x[:10]), _metas(ids[:10]),
                     lower_is_better=True, n_boot=200)
    assert d["n_pairs"] == 10 and d["value"] == pytest.approx(1.0) and d["ci_method"] == "percentile"
    assert d["significant"] and d["verdict"] == "worse"  # higher, and lower is better
    same = paired_delta(mean_sample(range(20), x), _metas(ids), mean_sample(range(20), x), _metas(ids),
                        lower_is_better=True, n_boot=200)
    assert same["value"] == 0 and not same["significant"] and same["verdict"] == "same"


def test_scoring_adds_deltas_against_sd(make_run):
    run = make_run(n_prompts=2, per_prompt=8)
    agg = score_run(run.path)
    assert agg["reference"] == "sd"
    rows = {(r["method"], r["prompt_set"], r["column"]): r for r in agg["rows"]}
    assert "delta" not in rows[("sd", "fair", "t_fair.fd:Smiling")]
    fd = rows[("other", "fair", "t_fair.fd:Smiling")]
    assert fd["delta"]["reference"] == "sd" and fd["delta"]["n_pairs"] == 16
    assert fd["delta"]["value"] == pytest.approx(fd["value"] - rows[("sd", "fair", "t_fair.fd:Smiling")]["value"])
    assert fd["delta"]["ci"][0] <= fd["delta"]["value"] <= fd["delta"]["ci"][1] and fd["delta"]["ci_method"] == "mover"
    fid = rows[("other", "align", "t_fid")]
    assert fid["delta"]["value"] == pytest.approx(fid["value"] - rows[("sd", "align", "t_fid")]["value"])
    assert fid["delta"]["ci_method"] == "percentile"
    assert "delta" not in rows[("other", "align", "t_mean")]  # a scorer without column_samples: no delta


def test_suite_reference_key():
    from t2ibench.suite import Suite, resolve_suite

    base = {"name": "s", "model": "tinyworld", "prompt_sets": [{"name": "a", "dataset": "prompts"}],
            "methods": [{"name": "sd"}, {"name": "iti-gen"}]}
    s = Suite.model_validate(base)
    assert s.reference_method() == "sd" and "reference" not in s.canonical()  # old suites keep their hash
    assert Suite.model_validate({**base, "reference": "iti-gen"}).reference_method() == "iti-gen"
    assert Suite.model_validate({**base, "methods": [{"name": "iti-gen"}]}).reference_method() is None
    with pytest.raises(Exception, match="reference 'nope' is not a method label"):
        Suite.model_validate({**base, "reference": "nope"})
    assert resolve_suite("tinyworld").reference_method() == "sd"
