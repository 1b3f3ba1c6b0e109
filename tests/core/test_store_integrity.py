"""Run directories that cannot be escaped, corrupted or silently mis-scored.

One reproduction per way in, each a test that an unguarded run directory fails. A small tiny-sd run, generated and scored once per module, is copied for each test; scoring
uses the CLIP score on the shipped tinyworld CLIP (cheap, no download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _helpers.cli import files_of, run_cli
from _helpers.results import write_aggregates
from _helpers.runs import SCORED_SUITE as SUITE

PNG = Path("images/sd/mixed/p00001-0000.png")


def _error(capsys, code: int, *argv) -> str:
    """Run the CLI, expect exit 2 (or ``code``) and exactly one error line and no traceback."""
    assert run_cli(*argv) == code
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("t2ibench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _rows(run: Path) -> dict[str, dict]:
    agg = json.loads((run / "results" / "aggregates.json").read_text())
    return {r["column"]: r for r in agg["rows"]}


def _set_suite(run: Path, **changes) -> None:
    """Rewrite the run's stored suite (someone else's run directory, or a tampered one)."""
    data = yaml.safe_load((run / "suite.yaml").read_text())
    data.update(changes)
    (run / "suite.yaml").write_text(yaml.safe_dump(data))


# metric labels stay file names inside the run directory ---------------------------------------
def test_metric_label_cannot_escape_the_run_directory(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("{name: clip_score,", '{name: clip_score, label: "../../../ESCAPED",'))
    line = _error(capsys, 2, "generate", suite, "--out", tmp_path / "r" / "s" / "t" / "run", "--quiet")
    assert "ESCAPED" in line and "file name" in line
    assert not list(tmp_path.rglob("ESCAPED")) and not (tmp_path / "r").exists()


def test_tampered_metric_label_in_a_run_directory(run, capsys):
    suite = yaml.safe_load((run / "suite.yaml").read_text())
    suite["metrics"][0]["label"] = "../../../ESCAPED"
    (run / "suite.yaml").write_text(yaml.safe_dump(suite))
    line = _error(capsys, 2, "score", run)
    assert "suite.yaml" in line and "ESCAPED" in line
    sandbox = run.parents[2]
    assert not list(sandbox.parent.rglob("ESCAPED"))


# a damaged image or cached score is refused, not kept ------------------------------------------
def test_truncated_png_after_scoring_is_refused(run, capsys):
    before = _rows(run)["clip_score"]
    assert before["n"] == 8
    png = run / PNG
    with open(png, "r+b") as fh:
        fh.truncate(png.stat().st_size // 2)
    line = _error(capsys, 2, "score", run)
    assert str(png) in line and "SHA-256" in line and "generate" in line
    assert _rows(run)["clip_score"] == before  # aggregates untouched, not re-labelled
    # generate regenerates it byte-identically; score then works again
    assert run_cli("generate", run / "suite.yaml", "--out", run, "--quiet") == 0
    assert "generated 1 images (7 already done)" in capsys.readouterr().out
    assert run_cli("score", run, "--quiet") == 0


def test_damaged_cached_score_is_one_line(run, capsys):
    # a value that passes the part's integrity record but does not fit the metric (another version's)
    from t2ibench.results.cache import ScoreCache

    (part,) = (run / "scores" / "clip_score").glob("*/part-*.json")
    doc = json.loads(part.read_text())
    doc["values"][next(iter(doc["values"]))] = "abc"
    doc["digest"] = ScoreCache(run / "scores", "clip_score", part.parent.name, {})._digest_json(doc["values"])
    part.write_text(json.dumps(doc))
    line = _error(capsys, 2, "score", run)
    assert str(part.parent) in line and "delete that folder" in line


# a refused rerun leaves run.json and suite.yaml as they were -----------------------------------
def test_rejected_rerun_leaves_run_json_and_suite_untouched(run, tmp_path, capsys):
    before = {p: (run / p).read_bytes() for p in ("run.json", "suite.yaml")}
    suites_before = sorted(p.name for p in (run / "suites").iterdir())
    changed = tmp_path / "changed.yaml"
    changed.write_text(SUITE.replace("seed: 1", "seed: 2"))
    line = _error(capsys, 2, "generate", changed, "--out", run, "--quiet")
    assert "another configuration" in line
    assert {p: (run / p).read_bytes() for p in before} == before
    assert sorted(p.name for p in (run / "suites").iterdir()) == suites_before


# a damaged or missing sidecar is named, not skipped -------------------------------------------
def test_truncated_sidecar_is_refused_by_score_and_regenerated_by_generate(run, capsys):
    images = files_of(run)
    sidecar = run / PNG.with_suffix(".json")
    sidecar.write_bytes(sidecar.read_bytes()[:40])
    line = _error(capsys, 2, "score", run)
    assert str(sidecar) in line and "sidecar" in line
    assert _rows(run)["clip_score"]["n"] == 8
    assert run_cli("generate", run / "suite.yaml", "--out", run, "--quiet") == 0
    assert files_of(run) == images  # regenerated byte-identically
    assert run_cli("score", run, "--quiet") == 0 and _rows(run)["clip_score"]["n"] == 8


def test_unfinished_png_without_sidecar_is_named_not_silent(run, capsys):
    (run / PNG.with_suffix(".json")).unlink()
    assert run_cli("score", run, "--quiet") == 0
    err = capsys.readouterr().err
    assert "1 PNG(s)" in err and "no sidecar" in err


# bad input is one line and exit 2, never a traceback ------------------------------------------
@pytest.mark.parametrize(
    "change, words",
    [
        (("height: 32, width: 32", "height: 1000000, width: 1000000"), ["sampler.height", "4096"]),
        (("height: 32", "height: 36"), ["sampler.height", "multiple of 8"]),
        (("scheduler: pndm", "scheduler: nope"), ["sampler.scheduler", "unknown scheduler"]),
        (("batch_size: 4", "batch_size: 100000"), ["batch_size", "256"]),
        (("  - name: sd", "  - name: ../../etc:X"), ["methods.0.name", "module:Attribute"]),
        (("  - name: sd", "  - name: os:system"), ["os:system", "subclass of t2ibench.method.Method"]),
        (("  - name: sd", "  - name: json:loads"), ["json:loads", "subclass of t2ibench.method.Method"]),
        (("  - name: sd", "  - name: sdd"), ["unknown method 'sdd'", "did you mean 'sd'"]),
        (("{name: clip_score,", "{name: clip_scor,"), ["unknown metric", "did you mean 'clip_score'"]),
        (("{name: clip_score,", "{name: 'json:loads',"), ["json:loads", "Scorer"]),
        (("dataset: prompts", "dataset: 'os:system'"), ["os:system", "prompt-set loader"]),
        (("dataset: prompts", "dataset: promts"), ["unknown dataset", "did you mean 'prompts'"]),
    ],
)
def test_bad_suite_is_one_line_and_no_directory(tmp_path, capsys, change, words):
    """Every suite error is found before the model loads: one line, exit 2, no run directory."""
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace(*change))
    out = tmp_path / "new-run"
    line = _error(capsys, 2, "generate", suite, "--out", out, "--quiet")
    assert all(w in line for w in words), line
    assert not out.exists()


def test_truncated_run_json_is_one_line(run, capsys):
    with open(run / "run.json", "r+b") as fh:
        fh.truncate(40)
    line = _error(capsys, 2, "score", run)
    assert str(run / "run.json") in line and "damaged JSON" in line


def test_corrupt_png_in_a_run_never_scored(run, capsys):
    shutil.rmtree(run / "scores")
    shutil.rmtree(run / "results")
    (run / PNG).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    line = _error(capsys, 2, "score", run)
    assert str(run / PNG) in line


def test_png_that_matches_a_forged_hash_but_does_not_decode(run, capsys):
    """The decode step of the checked read: bytes that hash right but are no image."""
    import hashlib

    shutil.rmtree(run / "scores")
    junk = b"not a png at all"
    (run / PNG).write_bytes(junk)
    sidecar = run / PNG.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["image_sha256"] = hashlib.sha256(junk).hexdigest()
    sidecar.write_text(json.dumps(meta))
    line = _error(capsys, 2, "score", run)
    assert str(run / PNG) in line and "cannot decode" in line


# names in a run directory resolve to built-ins unless trusted --------------------------------
@pytest.mark.parametrize("metric", [{"name": "this:s"},
                                    {"name": "alignment", "params": {"judge": "this:s"}}])
def test_score_imports_only_builtin_names_unless_trusted(run, capsys, monkeypatch, metric):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    _set_suite(run, metrics=[metric])
    line = _error(capsys, 2, "score", run)
    assert "this:s" in line and "--trust-remote-code" in line
    assert "this" not in sys.modules  # nothing was imported, nothing ran
    if metric["name"] != "this:s":
        return
    # the explicit flag imports it (the Zen of Python prints), then the type check refuses it
    assert run_cli("score", run, "--trust-remote-code") == 2
    captured = capsys.readouterr()
    assert "this" in sys.modules and "Beautiful is better than ugly" in captured.out
    assert "Traceback" not in captured.err


def test_shipped_reference_sets_resolve_with_builtin_names_only(run, capsys):
    """The shipped suites name their reference sets as ``module:callable``; those are built in, so
    ``score`` on a tinyworld run needs no --trust-remote-code (it did), while any other function,
    even one of t2ibench's own, still needs it."""
    fid = {"name": "fid", "params": {"network": "tinyworld-clip", "reference": "t2ibench.metrics.tinyworld:heldout_references",
                                     "reference_params": {"n": 8, "family": "objects"}}}
    _set_suite(run, metrics=[fid])
    assert run_cli("score", run, "--quiet") == 0
    capsys.readouterr()
    other = {**fid["params"], "reference": "t2ibench.fileio:atomic_write_bytes", "reference_params": {}}
    _set_suite(run, metrics=[{**fid, "params": other}])
    line = _error(capsys, 2, "score", run)
    assert "t2ibench.fileio:atomic_write_bytes" in line and "--trust-remote-code" in line


def test_readme_states_the_trust_model():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "--trust-remote-code" in readme and re.search(r"suite file is code", readme)


# sharding with accelerate ----------------------------------------------------------------------
def test_accelerate_with_world_size_one_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # what `accelerate launch` always sets
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(var, raising=False)
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1"))
    assert run_cli("generate", suite, "--out", tmp_path / "r", "--quiet") == 0
    err = capsys.readouterr().err
    assert "accelerate launch" in err and "world size 1" in err


def _readme_accelerate_command() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = readme.splitlines()
    marker = next(i for i, x in enumerate(lines) if "tested on a CPU" in x)
    return lines[marker + 1].strip()


@pytest.mark.slow
def test_readme_accelerate_command_shards_on_a_cpu(tmp_path):
    """The README's exact command: two ranks, and their union equals a plain run with its threads."""
    if shutil.which("accelerate") is None:
        pytest.skip("accelerate's launcher is not on PATH")
    command = _readme_accelerate_command()
    assert command.startswith("accelerate launch ") and " -m t2ibench generate " in command
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RANK", "WORLD_SIZE")}
    res = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("t2ibench: generated") == 2, res.stdout  # one summary line per rank
    assert "world size 1" not in res.stderr
    out = Path(tmp_path / command.split("--out ")[1].split()[0])
    metas = [json.loads(p.read_text()) for p in (out / "images").rglob("*.json")]
    threads = {m["torch_threads"] for m in metas}
    assert len(threads) == 1, threads
    suite = command.split(" generate ")[1].split()[0]
    plain = tmp_path / "plain"
    res = subprocess.run([sys.executable, "-m", "t2ibench", "generate", suite, "--out", str(plain), "--quiet",
                          "--threads", str(threads.pop())], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert files_of(out) == files_of(plain)


# -- temporaries left by a killed writer (a SIGKILL between open and rename) ----------------------
_WRITE_AND_DIE = (
    "import os, sys\nfrom pathlib import Path\nfrom t2ibench.fileio import tmp_name\n"
    "tmp = tmp_name(Path(sys.argv[1]))\ntmp.write_bytes(b'half a sidecar')\nprint(tmp.name)\n"
    "os.kill(os.getpid(), 9)\n"
)


def test_generate_sweeps_a_killed_writers_temporary(run, scored_run, capsys):
    """The temporary a SIGKILLed writer leaves is removed by the next ``generate`` (the resume
    path): the sweep must read the temporary name's fields (image name, pid, suffix) right."""
    before = files_of(run)
    target = run / "images" / "sd" / "mixed" / "p00000-0001.json"
    child = subprocess.run([sys.executable, "-c", _WRITE_AND_DIE, str(target)], capture_output=True, text=True)
    assert child.returncode == -9
    assert (target.parent / child.stdout.strip()).is_file()
    assert run_cli("generate", scored_run.parent / "suite.yaml", "--out", run, "--quiet") == 0
    assert files_of(run) == before and not list(run.rglob("*.tmp"))


def test_sweep_parses_dotted_host_names_and_spares_live_writers(tmp_path, monkeypatch):
    from t2ibench import fileio
    from t2ibench.store import RunDir

    monkeypatch.setattr(fileio.socket, "gethostname", lambda: "node1.cluster.local")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "images" / "sd" / "set.with.dots"
        folder.mkdir(parents=True)
        made = {}
        for who, pid in {"dead": dead_pid, "live": live.pid, "me": os.getpid()}.items():
            with monkeypatch.context() as m:
                m.setattr(fileio.os, "getpid", lambda pid=pid: pid)
                made[who] = fileio.tmp_name(folder / "p0.v1.json")
            made[who].write_bytes(b"x")
        assert fileio.tmp_owner(made["dead"].name) == ("node1_cluster_local", dead_pid)
        other_host = folder / made["dead"].name.replace("node1_cluster_local", "elsewhere")
        not_ours = folder / ".notes.tmp"
        for p in (other_host, not_ours):
            p.write_bytes(b"x")
        assert RunDir(tmp_path).clean_stale_temporaries() == 1
        assert not made["dead"].exists()
        assert all(p.exists() for p in (made["live"], made["me"], other_host, not_ours))
    finally:
        live.kill()
        live.wait()


# the suite on the command line, not the run directory's copy, is what `run` trusts ------------
EVIL_MODULE = '''
from pathlib import Path

Path(__file__).with_name("MARKER").write_text("imported")
'''


def _suite_file(tmp_path: Path, text: str = SUITE) -> Path:
    path = tmp_path / "given.yaml"
    path.write_text(text)
    return path


def test_run_on_a_finished_run_does_not_import_names_from_its_stored_suite(run, tmp_path, monkeypatch, capsys):
    (tmp_path / "evilmod_t2ib.py").write_text(EVIL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    stored = yaml.safe_load((run / "suite.yaml").read_text())
    stored["metrics"] = [{"name": "evilmod_t2ib:Evil"}]
    (run / "suite.yaml").write_text(yaml.safe_dump(stored))  # a downloaded run directory, edited
    assert run_cli("run", _suite_file(tmp_path), "--out", run) == 0
    assert not (tmp_path / "MARKER").exists()
    assert "evilmod_t2ib" not in (run / "suite.yaml").read_text()  # the directory now holds the given suite


def test_run_with_an_added_metric_on_a_finished_run_scores_it_and_records_the_suite(run, tmp_path):
    before = json.loads((run / "run.json").read_text())["suite_hash"]
    added = SUITE + "  - {name: clip_score, label: clip2, params: {backend: tinyworld}}\n"
    assert run_cli("run", _suite_file(tmp_path, added), "--out", run) == 0
    after = json.loads((run / "run.json").read_text())["suite_hash"]
    assert after != before
    assert "clip2" in (run / "suite.yaml").read_text()
    agg = json.loads((run / "results" / "aggregates.json").read_text())
    assert agg["suite_hash"] == after and "clip2" in agg["metrics"]
    assert any(r["metric"] == "clip2" and r["value"] is not None for r in agg["rows"])


def test_run_with_changed_generation_settings_on_a_finished_run_is_refused(run, tmp_path, capsys):
    stored = (run / "suite.yaml").read_bytes()
    line = _error(capsys, 2, "run", _suite_file(tmp_path, SUITE.replace("seed: 1", "seed: 2")), "--out", run)
    assert "another configuration" in line
    assert (run / "suite.yaml").read_bytes() == stored



# links inside a run directory lead reads and writes out of it ---------------------------------
@pytest.mark.parametrize("command", ["score", "table", "report", "check"])
def test_a_linked_results_folder_is_refused_and_the_other_run_is_untouched(run, tmp_path, capsys, command):
    other = tmp_path / "other-run"
    shutil.copytree(run, other)
    before = files_of(other)
    shutil.rmtree(run / "results")
    (run / "results").symlink_to(other / "results", target_is_directory=True)
    ref = tmp_path / "ref.json"
    assert run_cli("table", other, "--format", "json", "-o", ref) == 0
    capsys.readouterr()
    argv = {"score": ["score", run], "table": ["table", run], "report": ["report", run],
            "check": ["check", run, "--against", ref]}[command]
    line = _error(capsys, 2, *argv)
    assert "symbolic link" in line and "results" in line
    assert files_of(other) == before


def test_a_linked_scores_folder_is_refused(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(run / "scores")
    (run / "scores").symlink_to(elsewhere, target_is_directory=True)
    line = _error(capsys, 2, "score", run)
    assert "symbolic link" in line
    assert list(elsewhere.iterdir()) == []


def test_a_linked_method_folder_is_refused_by_generate_and_score_alike(run, tmp_path, capsys):
    # score's directory walk does not enter linked folders, generate's per-image reads do: the two
    # disagreed on which images exist (8 of 16 scored, a row missing, exit 0)
    moved = tmp_path / "moved-sd"
    shutil.move(str(run / "images" / "sd"), moved)
    (run / "images" / "sd").symlink_to(moved, target_is_directory=True)
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    assert "symbolic link" in _error(capsys, 2, "generate", suite, "--out", run, "--quiet")
    assert "symbolic link" in _error(capsys, 2, "score", run)


def test_report_does_not_inline_a_picture_from_outside_the_run(run, tmp_path, capsys):
    (run / "analysis").mkdir()
    (run / "analysis" / "x").symlink_to("/usr", target_is_directory=True)
    line = _error(capsys, 2, "report", run)
    assert "symbolic link" in line and not (run / "results" / "report.html").exists()


def test_report_skips_an_undecodable_analysis_figure_with_a_warning(run, capsys):
    (run / "analysis" / "m").mkdir(parents=True)
    (run / "analysis" / "m" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert run_cli("report", run) == 0
    err = capsys.readouterr().err
    assert "bad.png" in err and "not shown" in err and "Traceback" not in err


def test_report_checks_image_hashes(run, capsys):
    png = run / PNG
    png.write_bytes(png.read_bytes()[:-20])  # truncated
    line = _error(capsys, 2, "report", run)
    assert str(png) in line and "SHA-256" in line


def test_report_output_under_a_file_is_one_line(run, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = _error(capsys, 2, "report", run, "-o", tmp_path / "afile" / "r.html")
    assert "afile" in line


# images whose bytes match their sidecar but not what generate writes ---------------------------
def _replace_image(run: Path, image) -> None:
    """Swap the PNG of one image and update its sidecar's hash (a hash-consistent odd image)."""
    import hashlib

    png = run / PNG
    image.save(png)
    meta_path = png.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["image_sha256"] = hashlib.sha256(png.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    shutil.rmtree(run / "scores")  # so that score decodes it


@pytest.mark.parametrize("size, mode", [((20000, 10000), "1"), ((48, 48), "RGB")])
def test_score_refuses_an_image_of_another_size_before_decoding_it(run, capsys, size, mode):
    from PIL import Image

    _replace_image(run, Image.new(mode, size))
    line = _error(capsys, 2, "score", run)
    assert str(PNG) in line
    # PIL itself refuses over 2 x its pixel limit when reading the header; below it the sidecar's size does
    assert ("32x32" in line and f"{size[0]}x{size[1]}" in line) or "decompression bomb" in line


# sidecar fields beyond key and hash -------------------------------------------------------------
def _edit_sidecar(run: Path, **changes) -> None:
    meta_path = (run / PNG).with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, words", [
    ({"method": "other"}, "method 'other'"),
    ({"prompt_set": "elsewhere"}, "prompt_set 'elsewhere'"),
    ({"prompt": "a purple hexagon"}, "config_hash"),
    ({"prompt_id": "p00002"}, "prompt id and index"),
    ({"seed": 7}, "config_hash"),
])
def test_an_edited_sidecar_field_is_refused_not_rescored(run, capsys, changes, words):
    shutil.rmtree(run / "scores")
    _edit_sidecar(run, **changes)
    line = _error(capsys, 2, "score", run)
    assert words in line and str(PNG.with_suffix(".json")) in line


# -o onto links and devices ------------------------------------------------------------------------
def test_table_output_through_a_link_keeps_the_link(run, tmp_path):
    target = tmp_path / "target.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    assert run_cli("table", run, "-o", link) == 0
    assert link.is_symlink() and "clip_score" in target.read_text()


def test_table_output_into_a_fifo_writes_through_it(run, tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert run_cli("table", run, "-o", fifo) == 0
    reader.join(timeout=30)
    assert fifo.exists() and not fifo.is_file() and "clip_score" in got[0]


def test_table_of_two_runs_of_one_suite_keeps_both(run, tmp_path, capsys):
    second = tmp_path / "second"
    shutil.copytree(run, second)
    agg = json.loads((second / "results" / "aggregates.json").read_text())
    for r in agg["rows"]:
        if r["value"] is not None:
            r["value"] = 12.345
    write_aggregates(second, agg)
    out = tmp_path / "t.json"
    assert run_cli("table", run, second, "--format", "json", "-o", out) == 0
    doc = json.loads(out.read_text())
    suites = {e["suite"] for e in doc["entries"]}
    assert suites == {f"integ ({run})", f"integ ({second})"}
    assert any(e["value"] == 12.345 for e in doc["entries"]) and any(e["value"] != 12.345 for e in doc["entries"])
    assert "runs of suite 'integ' hold the same rows" in capsys.readouterr().err


def test_table_of_two_runs_of_one_suite_that_add_rows_merges_them(run, tmp_path, capsys):
    second = tmp_path / "second"
    shutil.copytree(run, second)
    agg = json.loads((second / "results" / "aggregates.json").read_text())
    for r in agg["rows"]:
        r["method"] = "sd-again"  # methods scored in another run of the same suite
    write_aggregates(second, agg)
    out = tmp_path / "t.json"
    assert run_cli("table", run, second, "--format", "json", "-o", out) == 0
    doc = json.loads(out.read_text())
    assert {e["suite"] for e in doc["entries"]} == {"integ"}
    assert {e["method"] for e in doc["entries"]} == {"sd", "sd-again"}


def test_a_partial_run_is_marked_in_score_table_and_report(run, tmp_path, capsys):
    for png in sorted((run / "images" / "sd" / "mixed").glob("*.png"))[:3]:  # as if sd stopped early
        png.unlink()
        png.with_suffix(".json").unlink()
    assert run_cli("score", run) == 0
    assert "sd/mixed has 5 of 8 images" in capsys.readouterr().err
    rows = _rows(run)
    assert rows["clip_score"]["partial"] is True and rows["clip_score"]["images"] == 5
    assert run_cli("table", run, "-o", tmp_path / "t.md") == 0
    assert "sd (partial: 5 of 8 images)" in (tmp_path / "t.md").read_text()
    assert run_cli("report", run) == 0
    assert "sd (partial: 5 of 8 images)" in (run / "results" / "report.html").read_text()


def test_a_complete_run_has_no_partial_rows(run, capsys):
    assert run_cli("score", run) == 0
    assert "partial" not in capsys.readouterr().err
    assert _rows(run)["clip_score"]["partial"] is False


# the score cache and the aggregates carry an integrity record -----------------------------------
def _cache_parts(run: Path) -> list[Path]:
    return sorted((run / "scores").rglob("part-*.json"))


def test_an_edited_cache_value_is_not_believed_but_rescored(run, capsys):
    true_value = _rows(run)["clip_score"]["value"]
    for part in _cache_parts(run):
        doc = json.loads(part.read_text())
        doc["values"] = {k: 99.0 for k in doc["values"]}  # plausible, and far better than the truth
        part.write_text(json.dumps(doc))
    assert run_cli("score", run) == 0
    assert "integrity check" in capsys.readouterr().err
    assert _rows(run)["clip_score"]["value"] == pytest.approx(true_value)


def test_an_edited_aggregate_value_is_refused_by_check_and_table(run, tmp_path, capsys):
    ref = tmp_path / "ref.json"
    assert run_cli("table", run, "--format", "json", "-o", ref) == 0
    path = run / "results" / "aggregates.json"
    agg = json.loads(path.read_text())
    for r in agg["rows"]:
        r["value"] = float("inf") if r["value"] is not None else None
    path.write_text(json.dumps(agg))
    capsys.readouterr()
    for argv in (["check", run, "--against", ref], ["table", run]):
        line = _error(capsys, 2, *argv)
        assert "digest" in line and str(path) in line


def test_stale_aggregates_after_an_image_was_deleted_are_refused(run, tmp_path, capsys):
    ref = tmp_path / "ref.json"
    assert run_cli("table", run, "--format", "json", "-o", ref) == 0
    (run / PNG).unlink()
    (run / PNG).with_suffix(".json").unlink()
    capsys.readouterr()
    line = _error(capsys, 2, "check", run, "--against", ref)
    assert "stale" in line
    assert run_cli("score", run) == 0 and run_cli("table", run) == 0  # scoring again re-derives them
