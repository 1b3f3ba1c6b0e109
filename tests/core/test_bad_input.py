"""Every kind of bad input: one line on stderr naming what and where, exit code 2, nothing lost."""

from __future__ import annotations

import errno
import os

import pytest

from _helpers.cli import files_of, run_cli


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("t2ibench: error:")]
    assert len(err) == 1, err
    return err[0]


def _expect_2(capsys, *argv) -> str:
    assert run_cli(*argv) == 2
    return _one_error_line(capsys)


@pytest.mark.parametrize(
    "body, words",
    [
        ("name: x\nmodel: [unclosed\n", ["malformed YAML", "suite.yaml:3:"]),
        ("- just\n- a list\n", ["expected a mapping"]),
    ],
)
def test_malformed_yaml(tmp_path, capsys, write_suite, body, words):
    line = _expect_2(capsys, "generate", write_suite(text=body), "--out", tmp_path / "r")
    assert all(w in line for w in words), line


def test_non_utf8_suite(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: x\ndescription: caf\xe9\n")
    line = _expect_2(capsys, "generate", path, "--out", tmp_path / "r")
    assert "not UTF-8" in line and str(path) in line


@pytest.mark.parametrize(
    "change, words",
    [
        (("steps: 3", "steps: 0"), ["sampler.steps", "0", "greater than 0"]),
        (("steps: 3", "steps: -4"), ["sampler.steps", "-4"]),
        (("images_per_prompt: 2", "images_per_prompt: 0"), ["images_per_prompt", "greater than 0"]),
        (("height: 32", "height: -32"), ["sampler.height", "-32"]),
        (("name: sd", "name: no-such-method"), ["unknown method", "no-such-method", "methods[0].name"]),
        (("dataset: prompts", "dataset: nope"), ["unknown dataset", "nope"]),
        (("seed: 7", "seed: 7\nbogus_key: 1"), ["bogus_key", "unknown key"]),
    ],
)
def test_invalid_values(tmp_path, capsys, write_suite, change, words):
    path = write_suite()
    path.write_text(path.read_text().replace(*change))
    line = _expect_2(capsys, "generate", path, "--out", tmp_path / "r")
    assert str(path) in line or "methods[0]" in line or "prompt_sets[0]" in line, line
    assert all(w in line for w in words), line


def test_unknown_metric(tmp_path, capsys, write_suite):
    path = write_suite()
    path.write_text(path.read_text() + "metrics:\n  - name: no_such_metric\n")
    line = _expect_2(capsys, "generate", path, "--out", tmp_path / "r")
    assert "unknown metric" in line and "no_such_metric" in line and "metrics[0].name" in line


def test_unknown_method_parameter(tmp_path, capsys, write_suite):
    path = write_suite()
    path.write_text(path.read_text().replace("  - name: sd", "  - name: sd\n    params: {strength: 3}"))
    line = _expect_2(capsys, "generate", path, "--out", tmp_path / "r")
    assert "strength" in line and "methods[0]" in line


def test_unknown_model(tmp_path, capsys, write_suite):
    line = _expect_2(capsys, "generate", write_suite(model="no-such-model"), "--out", tmp_path / "r")
    assert "unknown model" in line and "no-such-model" in line


def test_missing_known_model_says_where_it_looked(tmp_path, capsys, write_suite, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("T2IBENCH_MODELS", str(tmp_path / "models"))
    line = _expect_2(capsys, "generate", write_suite(model="sdxl"), "--out", tmp_path / "r")
    assert "stabilityai/stable-diffusion-xl-base-1.0" in line and "not found" in line
    assert str(tmp_path / "models") in line and "T2IBENCH_MODELS" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_resolution_the_vae_cannot_take(tmp_path, capsys, write_suite):
    path = write_suite()
    path.write_text(path.read_text().replace("height: 32", "height: 36"))
    line = _expect_2(capsys, "generate", path, "--out", tmp_path / "r")
    assert "sampler.height = 36" in line and "multiple of 8" in line


@pytest.mark.parametrize("content, words", [(None, ["does not exist"]), (b"", ["is empty"]), (b"\n  \n", ["is empty"]),
                                             (b"a caf\xe9 scene\n", ["not UTF-8", "offset 5"])])
def test_bad_prompt_file(tmp_path, capsys, content, words):
    prompts = tmp_path / "prompts.txt"
    if content is not None:
        prompts.write_bytes(content)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: f\nmodel: tiny-sd\nsampler: {steps: 2, height: 32, width: 32}\n"
        f"prompt_sets: [{{name: p, dataset: file, params: {{path: '{prompts}'}}}}]\nmethods: [{{name: sd}}]\n"
    )
    line = _expect_2(capsys, "generate", suite, "--out", tmp_path / "r")
    assert str(prompts) in line and all(w in line for w in words), line


def _prompt_file_suite(tmp_path, prompts) -> object:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: f\nmodel: tiny-sd\nsampler: {steps: 2, height: 32, width: 32}\n"
        f"prompt_sets: [{{name: p, dataset: file, params: {{path: '{prompts}'}}}}]\nmethods: [{{name: sd}}]\n"
    )
    return suite


def test_prompt_file_that_is_a_device_is_refused_before_reading(tmp_path, capsys):
    line = _expect_2(capsys, "generate", _prompt_file_suite(tmp_path, "/dev/zero"), "--out", tmp_path / "r")
    assert "/dev/zero" in line and "not a regular file" in line
    assert not (tmp_path / "r").exists()


def test_prompt_file_with_too_many_prompts_is_refused_while_reading(tmp_path, capsys, monkeypatch):
    from t2ibench.datasets import files

    monkeypatch.setattr(files, "MAX_PROMPTS", 1000)  # the cap is 10^6; the file is 10^5 lines, so it stops early
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n" * 100_000)
    calls = []
    real = files._room_for_one_more
    monkeypatch.setattr(files, "_room_for_one_more", lambda rows, *a: (calls.append(1), real(rows, *a)))
    line = _expect_2(capsys, "generate", _prompt_file_suite(tmp_path, prompts), "--out", tmp_path / "r")
    assert "more than 1000 prompts" in line and str(prompts) in line
    assert len(calls) == 1001  # refused at the first prompt over the cap, not after reading all of them


def test_prompt_file_over_the_size_cap_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    from t2ibench.datasets import files

    monkeypatch.setattr(files, "MAX_PROMPT_FILE_BYTES", 1000)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n" * 100)
    line = _expect_2(capsys, "generate", _prompt_file_suite(tmp_path, prompts), "--out", tmp_path / "r")
    assert "1300 bytes" in line and "at most 1000" in line


@pytest.mark.parametrize("params", ["{prompts: [a cat], promtps: [a dog]}", "{path: p.txt, colum: text}"])
def test_unknown_prompt_set_params_are_refused(tmp_path, capsys, params):
    (tmp_path / "p.txt").write_text("a cat\n")
    dataset = "prompts" if "prompts" in params else "file"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: f\nmodel: tiny-sd\nsampler: {steps: 2, height: 32, width: 32}\n"
                     f"prompt_sets: [{{name: p, dataset: {dataset}, params: {params.replace('p.txt', str(tmp_path / 'p.txt'))}}}]\n"
                     "methods: [{name: sd}]\n")
    line = _expect_2(capsys, "generate", suite, "--out", tmp_path / "r")
    assert "unknown key" in line and ("promtps" in line or "colum" in line)


BOMB = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" if i else "a0: &a0 [lol]\n" for i in range(10))


@pytest.mark.parametrize("where", ["top", "params"])
def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys, where):
    suite = tmp_path / "s.yaml"
    if where == "top":
        body = BOMB + "name: f\nmodel: tiny-sd\nprompt_sets: [{name: p, dataset: prompts, params: {prompts: [a]}}]\n"
    else:  # under a loader's params, where an ignored key once passed validation
        nested = "".join("    " + line + "\n" for line in BOMB.splitlines())
        body = ("name: f\nmodel: tiny-sd\nprompt_sets:\n  - name: p\n    dataset: prompts\n    params:\n"
                "      prompts: [a]\n      x:\n" + "".join("    " + line for line in nested.splitlines(True)))
    suite.write_text(body)
    line = _expect_2(capsys, "generate", suite, "--out", tmp_path / "r")
    assert str(suite) in line and ("aliases" in line or "YAML nodes" in line)
    assert not (tmp_path / "r").exists()


def test_yaml_recursive_alias_is_refused(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: f\nmodel: tiny-sd\ndescription: &d [*d]\n")
    line = _expect_2(capsys, "generate", suite, "--out", tmp_path / "r")
    assert str(suite) in line and "YAML" in line


def test_unwritable_output_directory(tmp_path, capsys, write_suite):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _expect_2(capsys, "generate", write_suite(), "--out", blocker / "run")
    assert "not writable" in line and str(blocker / "run") in line


@pytest.mark.slow
def test_disk_full_during_a_write_keeps_what_was_written(tmp_path, capsys, write_suite, monkeypatch):
    """The 3rd image write fails with ENOSPC: exit 2, the first two images intact, no temp files;
    after space is back a rerun completes and equals an uninterrupted run."""
    suite = write_suite(n=2, batch=1)
    ref = tmp_path / "ref"
    assert run_cli("generate", suite, "--out", ref, "--quiet") == 0
    capsys.readouterr()

    import t2ibench.store as store

    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_filling_up(fd):
        if ".png." in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):  # an image's temporary file
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync_filling_up)
    run = tmp_path / "run"
    line = _expect_2(capsys, "generate", suite, "--out", run, "--quiet")
    assert "disk full" in line
    done = files_of(run)
    assert len(done) == 4  # two PNGs and their sidecars
    assert all(done[k] == files_of(ref)[k] for k in done)
    assert not [p for p in run.rglob("*.tmp")]
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    assert run_cli("generate", suite, "--out", run, "--quiet") == 0
    assert files_of(run) == files_of(ref)


@pytest.mark.slow
def test_changed_suite_never_mixes_configurations(tmp_path, capsys, write_suite):
    run = tmp_path / "run"
    assert run_cli("generate", write_suite(n=1, batch=3), "--out", run, "--quiet") == 0
    before = files_of(run)
    capsys.readouterr()
    line = _expect_2(capsys, "generate", write_suite(n=1, batch=3, steps=4), "--out", run, "--quiet")
    assert "another configuration" in line and "new --out" in line
    assert files_of(run) == before
