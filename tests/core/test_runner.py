"""Generation through the CLI: both pipeline families, resume after SIGKILL, sharding, plug-ins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from t2ibench.errors import UserError

from _helpers.cli import files_of, run_cli, t2ibench_command

# Byte-identity is promised on the same hardware with the same threads per process; the
# subprocess tests run every process with one thread, as `accelerate launch` does.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_generate_both_families(tmp_path, write_suite, capsys, model):
    run = tmp_path / "run"
    assert run_cli("generate", write_suite(model=model, scheduler="default"), "--out", run, "--quiet") == 0
    out = capsys.readouterr().out
    assert "generated 6 images (0 already done)" in out
    records = sorted((run / "images" / "sd" / "mixed").glob("*.json"))
    assert len(records) == 6
    meta = json.loads(records[0].read_text())
    assert meta["model"] == model and meta["method"] == "sd" and meta["prompt_set"] == "mixed"
    assert meta["seed"] and meta["config_hash"] and meta["image_sha256"]
    assert Image.open(records[0].with_suffix(".png")).size == (32, 32)
    # a rerun finds everything done and writes nothing
    before = files_of(run)
    assert run_cli("generate", write_suite(model=model, scheduler="default"), "--out", run, "--quiet") == 0
    assert "generated 0 images (6 already done)" in capsys.readouterr().out
    assert files_of(run) == before


@pytest.mark.slow
def test_seeds_do_not_depend_on_method_or_batching(tmp_path, write_suite):
    from t2ibench.runner import derive_seed

    a = tmp_path / "a"
    b = tmp_path / "b"
    assert run_cli("generate", write_suite("a.yaml", n=2, batch=1), "--out", a, "--quiet") == 0
    assert run_cli("generate", write_suite("b.yaml", n=2, batch=6), "--out", b, "--quiet") == 0
    seeds_a = {k: json.loads(v)["seed"] for k, v in files_of(a).items() if k.endswith(".json")}
    seeds_b = {k: json.loads(v)["seed"] for k, v in files_of(b).items() if k.endswith(".json")}
    assert seeds_a == seeds_b and len(set(seeds_a.values())) == 6
    assert derive_seed(7, "mixed", "p00000", 0) == seeds_a["images/sd/mixed/p00000-0000.json"]


def test_prompt_set_images_per_prompt_overrides_the_suite():
    from t2ibench.runner import plan
    from t2ibench.suite import parse_suite

    suite = parse_suite({
        "name": "t", "model": "tiny-sd", "images_per_prompt": 2,
        "prompt_sets": [{"name": "few", "dataset": "prompts", "params": {"prompts": ["a", "b", "c"]}},
                        {"name": "many", "dataset": "prompts", "params": {"prompts": ["d"]}, "images_per_prompt": 5}],
        "methods": [{"name": "sd"}],
    }, "t.yaml")
    jobs = [job for batch in plan(suite).batches for job in batch.jobs]
    per_set = {ps: sorted(j.index for j in jobs if j.prompt_set == ps) for ps in ("few", "many")}
    assert per_set == {"few": [0, 0, 0, 1, 1, 1], "many": [0, 1, 2, 3, 4]}


@pytest.mark.slow
def test_method_guidance_override_changes_its_images_only(tmp_path):
    """A method entry's ``guidance`` replaces the sampler's for its images (a guidance sweep):
    recorded in each image's configuration; the entries without it keep the suite's."""
    from t2ibench.suite import parse_suite

    spec = {
        "name": "sweep", "model": "tiny-sd", "seed": 3, "images_per_prompt": 1, "batch_size": 2,
        "sampler": {"scheduler": "pndm", "steps": 3, "guidance": 5.0, "height": 32, "width": 32},
        "prompt_sets": [{"name": "p", "dataset": "prompts", "params": {"prompts": ["a red circle", "a blue star"]}}],
        "methods": [{"name": "sd"}, {"name": "sd", "label": "sd-w1", "guidance": 1.0},
                    {"name": "sd", "label": "sd-w5", "guidance": 5.0}],
    }
    run = tmp_path / "run"
    from t2ibench.runner import generate

    generate(parse_suite(spec, "sweep.yaml"), run, progress=False)
    files = files_of(run)
    meta = {k: json.loads(v) for k, v in files.items() if k.endswith(".json")}
    assert {m["sampler"]["guidance"] for k, m in meta.items() if k.startswith("images/sd-w1/")} == {1.0}
    assert {m["sampler"]["guidance"] for k, m in meta.items() if k.startswith("images/sd/")} == {5.0}
    for pid in ("p00000", "p00001"):
        png = f"p/{pid}-0000.png"
        assert files[f"images/sd/{png}"] == files[f"images/sd-w5/{png}"]  # same guidance, same bytes
        assert files[f"images/sd/{png}"] != files[f"images/sd-w1/{png}"]
    with pytest.raises(UserError, match="guidance"):
        parse_suite({**spec, "methods": [{"name": "sd", "guidance": -1}]}, "bad.yaml")


@pytest.mark.slow
def test_long_prompt_truncated_with_warning_and_recorded(tmp_path, capsys):
    long_prompt = " ".join(["a red circle and a blue square"] * 20)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: long\nmodel: tiny-sd\nsampler: {steps: 2, height: 32, width: 32}\n"
        f"prompt_sets: [{{name: p, dataset: prompts, params: {{prompts: ['{long_prompt}', 'short']}}}}]\n"
        "methods: [{name: sd}]\n"
    )
    with pytest.warns(UserWarning, match="truncated"):
        assert run_cli("generate", suite, "--out", tmp_path / "r", "--quiet") == 0
    assert "1 prompts truncated" in capsys.readouterr().out
    metas = [json.loads(p.read_text()) for p in sorted((tmp_path / "r").rglob("*.json")) if "images" in str(p)]
    assert metas[0]["truncated_tokens"] > 0 and "truncated_tokens" not in metas[1]


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, write_suite):
    suite = write_suite(n=4, batch=2, steps=6)  # 12 images in 6 batches
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(t2ibench_command() + ["generate", str(suite), "--out", str(ref), "--quiet"], env=ONE_THREAD, check=True)
    proc = subprocess.Popen(t2ibench_command() + ["generate", str(suite), "--out", str(run), "--quiet"], env=ONE_THREAD)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((run / "images").rglob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = len(list((run / "images").rglob("*.json")))
    assert 3 <= interrupted < 12, "the kill must land mid-run"
    subprocess.run(t2ibench_command() + ["generate", str(suite), "--out", str(run), "--quiet"], env=ONE_THREAD, check=True)
    assert files_of(run) == files_of(ref)
    assert not list(run.rglob("*.tmp"))


@pytest.mark.slow
def test_manual_shards_union_equals_one_process(tmp_path, write_suite):
    suite = write_suite(n=2, batch=2)
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    assert run_cli("generate", suite, "--out", one, "--quiet") == 0
    for i in range(3):
        assert run_cli("generate", suite, "--out", sharded, "--quiet", "--shard", f"{i}/3") == 0
    assert files_of(sharded) == files_of(one)


PLUGIN = '''
from t2ibench.method import Method

class Shouting(Method):
    """Upper-cases the prompt and says so in the metadata."""
    name = "shouting"

    def __init__(self, *, suffix: str = "!"):
        self.suffix = suffix

    def prompt_text(self, job):
        return job.prompt.text.upper() + self.suffix

    def image_meta(self, job):
        return {"shouted": True}
'''


@pytest.mark.slow
def test_method_from_outside_the_package(tmp_path, write_suite, monkeypatch, capsys):
    (tmp_path / "my_methods.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_methods", raising=False)  # another test's my_methods
    path = write_suite(n=1, batch=3)
    path.write_text(path.read_text().replace("  - name: sd", "  - name: my_methods:Shouting\n    label: shout\n    params: {suffix: '!!'}"))
    assert run_cli("generate", path, "--out", tmp_path / "r", "--quiet") == 0
    meta = json.loads((tmp_path / "r" / "images" / "shout" / "mixed" / "p00001-0000.json").read_text())
    assert meta["prompt_text"] == "TWO GREEN TRIANGLES AT NIGHT!!" and meta["shouted"] is True
    assert meta["method_params"] == {"suffix": "!!"} and meta["method_name"] == "my_methods:Shouting"
