"""Tables (md/csv/json) and the regression gate, through the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from t2ibench.cli import main
from t2ibench.results.check import check_run, load_tolerance, tolerance_for
from t2ibench.results.scoring import load_aggregates, score_run
from t2ibench.results.table import write_tables

from _helpers.results import write_aggregates


@pytest.mark.slow
def test_cli_score_table_formats(make_run, tmp_path, capsys):
    run = make_run()
    assert main(["score", str(run.path), "--quiet"]) == 0
    assert "t_missing: not available: weights" in capsys.readouterr().out
    md = tmp_path / "leaderboard.md"
    assert main(["table", str(run.path), "-o", str(md)]) == 0
    text = md.read_text()
    assert "### Prompt set `align`" in text and "| sd |" in text and "| other |" in text
    assert "not available: weights for t_missing not on this machine" in text
    assert "network: mean-colour-features" in text  # conventions
    assert "t_fid ↓" in text and "t_mean ↑" in text
    capsys.readouterr()
    assert main(["table", str(run.path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    sd_align = [r for r in rows if r["method"] == "sd" and r["prompt_set"] == "align"][0]
    agg = load_aggregates(run.path)
    mean_row = [r for r in agg["rows"] if r["metric"] == "t_mean" and r["method"] == "sd"][0]
    assert float(sd_align["t_mean"]) == pytest.approx(mean_row["value"])
    assert int(sd_align["t_mean n"]) == mean_row["n"]
    doc = json.loads(write_tables([run.path], None, "json"))
    assert doc["format"] == "t2ibench-table/1" and len(doc["entries"]) == len(agg["rows"])
    with pytest.raises(SystemExit) as exc:
        main(["table", str(run.path), "--format", "xlsx"])
    assert exc.value.code == 2


def test_table_bad_format_and_unscored_run(make_run, tmp_path):
    from t2ibench.errors import UserError

    run = make_run()
    with pytest.raises(UserError, match="t2ibench score"):
        write_tables([run.path], None, "md")
    score_run(run.path)
    with pytest.raises(UserError, match="--format"):
        write_tables([run.path], None, "xlsx")


def test_table_notes_go_before_the_tables(make_run, tmp_path, capsys):
    run = make_run()
    score_run(run.path)
    notes = tmp_path / "notes.md"
    notes.write_text("## What the numbers say\n\nsd is the baseline.\n")
    out = tmp_path / "leaderboard.md"
    assert main(["table", str(run.path), "-o", str(out), "--notes", str(notes)]) == 0
    text = out.read_text()
    assert text.index("## What the numbers say") < text.index("## Suite `")
    # a missing notes file is one line and exit 2, and the table already written stays as it was
    assert main(["table", str(run.path), "-o", str(out), "--notes", str(tmp_path / "missing.md")]) == 2
    assert "--notes" in capsys.readouterr().err and out.read_text() == text


def _set_value(run, metric, method, factor):
    agg = load_aggregates(run.path)
    for r in agg["rows"]:
        if r["metric"] == metric and r["method"] == method and r["value"] is not None:
            r["value"] *= factor
    write_aggregates(run.path, agg)


def test_check_fails_worse_fid_and_passes_within_tolerance(make_run, tmp_path, capsys):
    run = make_run()
    score_run(run.path)
    ref = tmp_path / "ref.json"
    assert main(["table", str(run.path), "--format", "json", "-o", str(ref)]) == 0
    assert main(["check", str(run.path), "--against", str(ref)]) == 0
    tol = tmp_path / "tol.yaml"
    tol.write_text("default: {abs: 0.0, rel: 0.05}\ncolumns:\n  t_fid: {rel: 0.10}\n")
    _set_value(run, "t_fid", "sd", 1.08)  # 8 % worse FID: within 10 %
    capsys.readouterr()
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 0
    _set_value(run, "t_fid", "sd", 1.10)  # now 18.8 % worse
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 1
    out = capsys.readouterr().out
    assert "results-test/align/sd/t_fid" in out and "lower is better" in out
    # FID going down (better) never fails
    _set_value(run, "t_fid", "sd", 0.1)
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 0


def test_check_direction_aware_and_missing(make_run, tmp_path):
    run = make_run()
    score_run(run.path)
    ref = tmp_path / "ref.json"
    write_tables([run.path], ref, "json")
    _set_value(run, "t_mean", "other", 1.5)  # higher is better: going up passes
    failures, compared = check_run(run.path, ref)
    assert failures == [] and compared > 0
    _set_value(run, "t_mean", "other", 0.5)  # back to 0.75 of the reference: fails
    failures, _ = check_run(run.path, ref)
    assert [f.key[2:] for f in failures] == [("other", "t_mean")]
    agg = load_aggregates(run.path)
    agg["rows"] = [r for r in agg["rows"] if r["metric"] != "t_fair"]
    write_aggregates(run.path, agg)
    failures, _ = check_run(run.path, ref)
    assert any("missing in this run" in f.why for f in failures)


def test_tolerance_patterns(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"default": {"abs": 0.5}, "columns": {"sd/align/fid": {"abs": 3}, "fid": {"rel": 0.1}, "fd:*": {"abs": 0.05}}}))
    tol = load_tolerance(p)
    assert tolerance_for(tol, "sd", "align", "fid", 10.0) == 3.0
    assert tolerance_for(tol, "x", "align", "fid", 10.0) == pytest.approx(1.0)  # max(abs 0.5 default, 0.1*10)
    assert tolerance_for(tol, "x", "fair", "fd:Smiling", 0.3) == 0.05
    assert tolerance_for(tol, "x", "fair", "clip_score", 30.0) == 0.5


def test_check_rejects_non_reference(make_run, tmp_path):
    run = make_run()
    score_run(run.path)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["check", str(run.path), "--against", str(bad)]) == 2


def _regressed_run_and_reference(make_run, tmp_path):
    """A scored run, its reference table, and then the run's FID made 50 % worse (a real regression)."""
    run = make_run()
    score_run(run.path)
    ref = tmp_path / "ref.json"
    write_tables([run.path], ref, "json")
    _set_value(run, "t_fid", "sd", 1.5)
    return run, ref


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_check_refuses_non_finite_reference_values(make_run, tmp_path, capsys, value):
    run, ref = _regressed_run_and_reference(make_run, tmp_path)
    table = json.loads(ref.read_text())
    for e in table["entries"]:
        if e["column"] == "t_fid" and e["value"] is not None:
            e["value"] = value
    ref.write_text(json.dumps(table))  # json writes NaN / Infinity, and reads them back
    capsys.readouterr()
    assert main(["check", str(run.path), "--against", str(ref)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "value" in err[0] and "finite number" in err[0]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_check_fails_a_run_whose_value_is_not_finite(make_run, tmp_path, value):
    run = make_run()
    score_run(run.path)
    ref = tmp_path / "ref.json"
    write_tables([run.path], ref, "json")
    agg = load_aggregates(run.path)
    for r in agg["rows"]:
        if r["metric"] == "t_fid" and r["method"] == "sd" and r["value"] is not None:
            r["value"] = value
    write_aggregates(run.path, agg)
    failures, _ = check_run(run.path, ref)
    assert any(f.key[2:] == ("sd", "t_fid") and "not a finite number" in f.why for f in failures)


def _reference_with(ref: Path, edit) -> None:
    table = json.loads(ref.read_text())
    edit(table)
    ref.write_text(json.dumps(table))


@pytest.mark.parametrize("case", ["entries-dict", "entries-ints", "value-string", "no-method", "non-utf8", "directory"])
def test_check_malformed_reference_is_exit_2_not_a_regression(make_run, tmp_path, capsys, case):
    # exit 1 means "regressed": a broken gate file must not look like one (nor pass)
    run, ref = _regressed_run_and_reference(make_run, tmp_path)
    if case == "entries-dict":
        _reference_with(ref, lambda t: t.update(entries={"a": 1}))
    elif case == "entries-ints":
        _reference_with(ref, lambda t: t.update(entries=[1, 2]))
    elif case == "value-string":
        _reference_with(ref, lambda t: t["entries"][0].update(value="abc"))
    elif case == "no-method":
        _reference_with(ref, lambda t: t["entries"][0].pop("method"))
    elif case == "non-utf8":
        ref.write_bytes(b'{"format": "\xff\xfe"}')
    else:
        ref.unlink()
        ref.mkdir()
    capsys.readouterr()
    assert main(["check", str(run.path), "--against", str(ref)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in captured.err and str(ref) in err[0]


#: tolerance files that check must refuse (exit 2, one line naming the file) rather than read as
#: "regressed" (exit 1) or "passed"; a NaN or infinite tolerance compares False with every
#: difference, so with it every regression would pass: its line says "finite number"
MALFORMED_TOLERANCES = [
    ("default: {abs: .nan}\n", "finite number"),
    ("default: {rel: .inf}\n", "finite number"),
    ("columns:\n  t_fid: {abs: .nan}\n", "finite number"),
    ("comparisons:\n  - {method: sd, than: other, columns: t_fid, margin: .nan}\n", "finite number"),
    ("default: {rel: abc}\n", ""),
    ("default: 5\n", ""),
    ("columns: [a, b]\n", ""),
    ("default: {abs: null}\n", ""),
    ("default: {abs: true}\n", ""),
    ("columns:\n  t_fid: {abs: -1}\n", ""),
    ("defaults: {abs: 0.1}\n", ""),
    ("comparisons:\n  - {method: [sd], than: other, columns: t_fid}\n", ""),
    ("a: &a [1, 1]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: &d [*c, *c]\n" + "".join(
        f"x{i}: &x{i} [{', '.join(['*' + ('d' if i == 0 else f'x{i - 1}')] * 9)}]\n" for i in range(8)), ""),
]


@pytest.mark.parametrize("tolerance,phrase", MALFORMED_TOLERANCES)
def test_check_malformed_tolerance_is_exit_2_not_a_regression(make_run, tmp_path, capsys, tolerance, phrase):
    run, ref = _regressed_run_and_reference(make_run, tmp_path)
    tol = tmp_path / "tol.yaml"
    tol.write_text(tolerance)
    capsys.readouterr()
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in captured.err and str(tol) in err[0] and phrase in err[0]


def _entry(method, column, value, **kw):
    from t2ibench.results.schema import make_row

    fields = {"metric": column.split(".")[0], "metric_name": "t", "n": 4, "lower_is_better": True, **kw}
    return {"suite": "s", "model": "m", **make_row(method=method, prompt_set="p", column=column, value=value, **fields)}


def _doc(entries, **kw):
    """A table document of ``entries`` from one run ``r`` of suite ``s``."""
    return {"format": "t2ibench-table/1", "runs": [{"run": "r", "suite": "s", "suite_hash": "h", "model": "m",
                                                      "t2ibench": "0", "n_images": 0}],
            "conventions": {}, "variants": {}, "references": {"s": None}, "entries": entries, **kw}


def test_markdown_ablations_blocks_and_pending_suites():
    from t2ibench.results.table import to_markdown

    doc = _doc([_entry(m, c, v, **({"classifier_accuracy": 0.9} if "." in c else {}))
                for m, v in (("sd", 1.0), ("fq", 0.5), ("fq-pq", 0.75)) for c in ("fid", "fd-ev.fd:smiling")]
               + [_entry("sd", "image_reward", None, available=False, reason="no weights")],
               conventions={"s": {"image_reward": {"name": "image_reward", "available": False, "reason": "no weights"}}},
               variants={"s": {"fq-pq": "fq"}})
    md = to_markdown(doc, pending=["fairness-sd14"], command="t2ibench table r --pending fairness-sd14")
    main, ablations = md.split("#### Ablations and variants")[0], md.split("#### Ablations and variants")[1].split("## Suite")[0]
    detail = main.split("`fd-ev`:")[0]
    assert "| sd | 1 |" in detail and "| fq | 0.5 |" in detail and "fq-pq" not in detail
    # ablation tables do not repeat the main rows
    assert "| fq-pq | 0.75 |" in ablations and "| fq |" not in ablations and "| sd |" not in ablations
    # a multi-column metric gets its own table; n and the classifier's accuracy are rows, not in every cell
    assert "`fd-ev`:" in main and "| method | fd:smiling ↓ |" in main and "acc=" not in md and "(n=" not in md
    assert "| *classifier accuracy on labelled references* | 0.9 |" in main and "| *n (images)* | 4 |" in main
    # a metric that no row has is not a column: it is listed once under Conventions
    assert "image_reward" not in main and md.count("not available: no weights") == 1
    assert "## Suite `fairness-sd14` (not run yet)" in md and "t2ibench run fairness-sd14 --out runs/fairness-sd14" in md
    assert md.rstrip().endswith("Produced by `t2ibench table r --pending fairness-sd14`.")


def _delta(v, lo, hi, verdict):
    return {"reference": "sd", "value": v, "ci": [lo, hi], "ci_method": "percentile", "n_pairs": 4, "resamples": 100,
            "significant": verdict != "same", "verdict": verdict}


def test_headline_table_shows_deltas_with_markers_and_tables_stay_narrow():
    from t2ibench.results.layout import MAX_COLUMNS
    from t2ibench.results.table import to_markdown

    cols = ["fid"] + [f"fd-ev.fd:t{i}" for i in range(12)]
    entries = []
    for m, verdict in (("sd", None), ("good", "better"), ("bad", "worse"), ("meh", "same")):
        for c in cols:
            e = _entry(m, c, 0.123456, metric_name="fid" if c == "fid" else "fairness")
            if verdict:
                e["delta"] = _delta(-0.2 if verdict == "better" else 0.2 if verdict == "worse" else 0.01,
                                    -0.3 if verdict != "worse" else 0.1, 0.3 if verdict != "better" else -0.1, verdict)
            entries.append(e)
    doc = _doc(entries, references={"s": "sd"})
    md = to_markdown(doc)
    head = md.split("Headline")[1].split("\n\n")[1]
    rows = head.splitlines()
    assert rows[0].startswith("| method | fid ↓ | fd:t0 (fd-ev) ↓")
    assert rows[2].startswith("| sd | 0.123 (ref.) |")  # the reference first, 3 significant digits
    assert "| good | 0.123 (−0.2 ✓) |" in head and "| bad | 0.123 (+0.2 ✗) |" in head
    assert "| meh | 0.123 (+0.01) |" in head  # interval contains 0: no marker
    for line in md.splitlines():
        if line.startswith("| method |"):
            assert line.count("|") - 1 <= MAX_COLUMNS
    assert "0.123456" not in md and "Δ (reference `sd`)" in md


def test_check_comparisons_between_methods(make_run, tmp_path, capsys):
    run = make_run(n_prompts=2, per_prompt=8)
    score_run(run.path)
    ref = tmp_path / "ref.json"
    write_tables([run.path], ref, "json")
    rows = {(r["method"], r["column"]): r for r in load_aggregates(run.path)["rows"]}
    sd_fd, other_fd = rows[("sd", "t_fid")]["value"], rows[("other", "t_fid")]["value"]
    tol = tmp_path / "tol.yaml"
    # "sd's FD is at most other's" holds or fails by the numbers; the reverse the other way round
    low, high = ("sd", "other") if sd_fd <= other_fd else ("other", "sd")
    tol.write_text(f"comparisons:\n  - {{method: {low}, than: {high}, columns: 't_fid', prompt_set: align}}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 0
    tol.write_text(f"comparisons:\n  - {{method: {high}, than: {low}, columns: 't_fid'}}\n")
    assert abs(sd_fd - other_fd) > 0
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 1
    assert f"expected at most {low}'s" in capsys.readouterr().out
    # a margin as large as the gap passes
    tol.write_text(f"comparisons:\n  - {{method: {high}, than: {low}, columns: 't_fid', margin: {abs(sd_fd - other_fd) + 1e-9}}}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 0
    # verdicts read the paired delta against the reference method
    verdict = rows[("other", "t_fid")]["delta"]["verdict"]
    assert verdict == "worse"  # other's images are shifted 40 levels from sd's and the reference set's
    tol.write_text("comparisons:\n  - {method: other, columns: 't_fid', verdict: not-worse}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 1
    assert "is 'worse', expected not-worse" in capsys.readouterr().out
    tol.write_text("comparisons:\n  - {method: other, columns: 't_fair.fd:*', verdict: not-worse}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 0
    # a pattern that matches nothing fails; a malformed comparison is a one-line error (exit 2)
    tol.write_text("comparisons:\n  - {method: other, than: sd, columns: 'fd:typo*'}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 1
    assert "no entry of this run matches" in capsys.readouterr().out
    tol.write_text("comparisons:\n  - {method: other, columns: 'x', verdict: maybe}\n")
    assert main(["check", str(run.path), "--against", str(ref), "--tolerance", str(tol)]) == 2
    assert "verdict 'maybe'" in capsys.readouterr().err
