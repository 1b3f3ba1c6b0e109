"""A suite's ``analyses:`` are written by ``t2ibench run`` into RUN/analysis/ and shown by the report;
they leave the suite hash of suites without them, and every image, as they were."""

import pytest
import yaml

from t2ibench.suite import parse_suite

from _helpers.cli import files_of, run_cli

SUITE = {
    "name": "maps-suite", "model": "tiny-sd", "images_per_prompt": 1, "batch_size": 2,
    "sampler": {"scheduler": "default", "steps": 2, "guidance": 5.0, "height": 32, "width": 32},
    "prompt_sets": [{"name": "p", "dataset": "prompts", "params": {"prompts": ["a red circle and a blue square"]}}],
    "methods": [{"name": "sd"}],
}


def test_analyses_key_keeps_the_hash_of_suites_without_it_and_is_validated():
    plain = parse_suite(SUITE, "s")
    with_maps = parse_suite({**SUITE, "analyses": [{"kind": "maps", "label": "m", "prompt": "a red circle"}]}, "s")
    assert "analyses" not in plain.canonical() and plain.hash == parse_suite({**SUITE, "analyses": []}, "s").hash
    assert with_maps.hash != plain.hash and with_maps.analyses[0].seeds == [0]
    from t2ibench.errors import UserError

    for bad in ({"kind": "pid", "label": "m", "prompt": "x"}, {"kind": "maps", "label": "../m", "prompt": "x"},
                {"kind": "maps", "label": "m", "prompt": ""}):
        with pytest.raises(UserError):
            parse_suite({**SUITE, "analyses": [bad]}, "s")


@pytest.mark.slow
def test_run_writes_the_suites_maps_and_the_report_shows_them(tmp_path):
    suite = {**SUITE, "analyses": [{"kind": "maps", "label": "maps-binding", "prompt": "a red circle and a blue square",
                                    "seeds": [0, 1]}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    run = tmp_path / "run"
    assert run_cli("run", path, "--out", run, "--device", "cpu") == 0
    out = run / "analysis" / "maps-binding"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"maps-seed{s}{suffix}" for s in (0, 1) for suffix in ("-image.png", ".png", ".csv"))
    report = (run / "results" / "report.html").read_text()
    assert "maps-seed0.png" in report and "No analysis figures found" not in report
    # the images are those of the same suite without the analysis
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(SUITE))
    assert run_cli("generate", plain, "--out", tmp_path / "run2", "--device", "cpu", "--quiet") == 0
    images = {k: v for k, v in files_of(run).items() if k.endswith(".png")}
    assert images == {k: v for k, v in files_of(tmp_path / "run2").items() if k.endswith(".png")}
