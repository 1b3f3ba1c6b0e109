import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from t2ibench.report.html import render_report, write_report

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "screenshot_report.sh"


def test_report_is_self_contained(run_dir):
    out = write_report(run_dir)
    assert out == run_dir / "results" / "report.html"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # every image is inlined; nothing is fetched (no http, no external src)
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page
    # 2 methods x (2 prompts x 2 images + 1 prompt x 2 images) samples + 2 plots + 1 analysis figure
    assert len(srcs) == 2 * 6 + 2 + 1
    # results table: values with interval, not-available reason, best marked
    assert "0.05 [0.02, 0.08]" in page and "not available: ImageReward weights not found" in page
    # a metric that could not run: its reason once in the list, each cell a short "not available"
    assert page.count("ImageReward weights not found") == 1 + page.count('title="ImageReward weights not found"')
    assert 'class="num best"' in page
    # link to the analysis figure, relative to the report
    assert "href='../analysis/maps/maps-seed0.png'" in page
    assert "seed 500" in page and "smiling" in page


def test_report_without_aggregates(tmp_path, run_factory):
    run = run_factory(tmp_path / "r", with_aggregates=False)
    page = render_report(run)
    assert "No aggregates" in page and "t2ibench score" in page
    assert page.count("data:image/png;base64,") == 12 + 1


def test_report_on_empty_and_damaged_dirs(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "aggregates.json").write_text("{not json")
    page = render_report(tmp_path)
    assert "No finished images" in page and "No aggregates" in page


def test_report_cli(run_dir, tmp_path, capsys):
    import argparse

    from t2ibench.report.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir), "-o", str(tmp_path / "x.html"), "--max-prompts", "1"])
    assert args.func(args) == 0
    assert (tmp_path / "x.html").is_file()
    assert "report" in capsys.readouterr().out


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    from _helpers.chromium import chromium_or_skip

    chromium_or_skip()
    shot = tmp_path / "shot.png"
    page = write_report(run_dir)  # here, not by the script's `t2ibench report`: no PATH lookup
    proc = subprocess.run(["bash", str(SCRIPT), str(page), str(shot), "1200x1600"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    im = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert im.shape[:2] == (1600, 1200)
    # not a blank page: text, tables and images make the pixels vary, and the images' colours show
    assert im.std() > 20
    assert (np.abs(im - 255).sum(-1) > 30).mean() > 0.02


def _suite(methods, guidance=7.5):
    from t2ibench.suite import Suite

    return Suite.model_validate({"name": "s", "model": "tinyworld", "sampler": {"guidance": guidance}, "methods": methods,
                                 "prompt_sets": [{"name": "p", "dataset": "prompts", "params": {"prompts": ["a"]}}]})


def _aggregates(rows, metrics=None):
    return {"format": "t2ibench-aggregates/1", "run": "r", "suite": "s", "suite_hash": "h", "model": "m", "t2ibench": "0",
            "n_images": 0, "reference": "sd", "metrics": metrics or {}, "rows": rows}


def test_guidance_sweeps_group_one_method_at_several_scales():
    from t2ibench.report.html import guidance_sweeps

    suite = _suite([{"name": "sd"}, {"name": "sd", "label": "sd-w2", "guidance": 2.0}, {"name": "sd", "label": "sd-w8", "guidance": 8},
                    {"name": "fairqueue"}, {"name": "fairqueue", "label": "fq-pq", "params": {"amplify": False}},
                    {"name": "my_mod:M", "guidance": 3.0}], guidance=5.0)
    assert guidance_sweeps(suite) == {"sd": {"sd": 5.0, "sd-w2": 2.0, "sd-w8": 8.0}}


def test_results_follow_the_leaderboard_layout_with_deltas():
    from t2ibench.report.html import results_table
    from t2ibench.results.schema import make_row

    def row(m, v, delta=None):
        r = make_row(method=m, prompt_set="fair", metric="fd-ev", metric_name="fairness", column="fd-ev.fd:smiling",
                     value=v, n=48, ci=[0.0, v + 0.1], lower_is_better=True)
        return {**r, "delta": delta} if delta else r

    agg = _aggregates([row("sd", 0.5), row("fq", 0.1, {"reference": "sd", "value": -0.4, "ci": [-0.5, -0.3], "ci_method": "mover",
                                                        "n_pairs": 48, "resamples": 1000, "significant": True, "verdict": "better"}),
                       make_row(method="sd", prompt_set="fair", metric="ir", metric_name="image_reward", column="ir",
                                available=False, reason="no weights")],
                      {"fd-ev": {"name": "fairness", "available": True},
                       "ir": {"name": "image_reward", "available": False, "reason": "no weights"}})
    page = results_table(agg)
    assert "Headline (Δ against sd)" in page and "0.1 (−0.4 ✓)" in page and "0.5 (ref.)" in page
    assert page.count("no weights") == 1 and "<th>ir" not in page  # listed once, not a column


def test_ablation_rows_get_their_own_table_without_the_main_rows():
    from t2ibench.report.html import results_table
    from t2ibench.results.schema import make_row
    from t2ibench.results.table import suite_variants

    suite = _suite([{"name": "sd"}, {"name": "fq"}, {"name": "fq", "label": "fq-pq"}])
    assert suite_variants(suite) == {"fq-pq": "fq"}
    rows = [make_row(method=m, prompt_set="p", metric="cs", metric_name="clip_score", column="cs", value=v, n=4,
                     lower_is_better=False) for m, v in (("sd", 1.0), ("fq", 2.0), ("fq-pq", 3.0))]
    page = results_table(_aggregates(rows), suite_variants(suite))
    main, ablations = page.split("Ablations and variants")
    assert "<th>fq-pq</th>" not in main.split("Headline")[1].split("</table>", 1)[1]
    assert "<th>fq-pq</th>" in ablations and "<th>fq</th>" not in ablations and "<th>sd</th>" not in ablations


def _rehash(png: Path) -> None:
    """Record ``png``'s current SHA-256 in its sidecar: the image passes the hash check."""
    side = png.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "image_sha256": hashlib.sha256(png.read_bytes()).hexdigest()}))


def _one_error_line(capsys, *argv) -> str:
    """Run the CLI; expect exit 2 with exactly one error line and no traceback; the line."""
    from t2ibench.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("t2ibench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


def test_report_on_a_truncated_png_that_matches_its_hash_is_one_line(run_dir, capsys):
    png = run_dir / "images" / "sd" / "align" / "red-circle-0000.png"
    png.write_bytes(png.read_bytes()[:80])
    _rehash(png)
    line = _one_error_line(capsys, "report", run_dir)
    assert str(png) in line and "decode" in line
    assert not (run_dir / "results" / "report.html").exists()


def test_report_on_a_sidecar_with_a_text_index_is_one_line(run_dir, capsys):
    side = run_dir / "images" / "sd" / "align" / "red-circle-0000.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "index": "abc"}))
    line = _one_error_line(capsys, "report", run_dir)
    assert str(side) in line and "index" in line


def test_report_on_a_png_of_another_size_is_refused_before_decoding(run_dir, capsys):
    png = run_dir / "images" / "fairqueue" / "fair" / "Smiling-0001.png"
    Image.new("1", (20000, 10000)).save(png, optimize=True)  # ~24 KB, 200 Mpixel
    _rehash(png)
    line = _one_error_line(capsys, "report", run_dir)
    assert str(png) in line
