"""Fuzz: generated suite files and damaged run directories never crash and never escape.

Properties, for every example (hypothesis, derandomized):

- ``generate`` and ``score`` end with exit 0 or 2 (one ``t2ibench: error:`` line), never an
  uncaught exception;
- no file appears outside the run directory (the whole sandbox around it is scanned, and the
  working directory is inside the sandbox), and a folder a link in the run points to is left
  byte for byte as it was;
- a run directory holding a symbolic link or a FIFO is refused (exit 2) by ``score``,
  ``generate`` and ``report`` alike, never followed, skipped or read;
- a suite that passes every check reaches the model load with nothing written yet (no
  ``run.json``): the model load is replaced by a sentinel so that no example loads a model;
  suite files include chains of YAML aliases, small ones and bombs;
- a sidecar with an edited field beyond key and hash (method, prompt set, prompt, seed, prompt
  id, index) is refused by ``score``, never rescored;
- ``check`` on generated tolerance and reference files ends with exit 0, 1 or 2, and with 2
  whenever a tolerance, margin or reference value is not a finite number.

The run-directory damages start from one small tiny-sd run generated and scored once per
module (CLIP score on the shipped tinyworld CLIP, loaded once), copied for each example. Besides
byte damage they replace folders and files by links to a copy outside the run, files by FIFOs,
and PNGs by odd images whose sidecar records their hash (another size, a 1-bit 20000x10000
decompression bomb, a truncated PNG).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from t2ibench.cli import main  # noqa: E402

pytestmark = pytest.mark.slow

SUITE: dict[str, Any] = {
    "name": "fuzz",
    "model": "tiny-sd",
    "seed": 3,
    "images_per_prompt": 2,
    "batch_size": 2,
    "sampler": {"scheduler": "pndm", "steps": 2, "guidance": 5.0, "height": 32, "width": 32},
    "prompt_sets": [{"name": "mixed", "dataset": "prompts", "params": {"prompts": ["a red circle", "a blue square"]}}],
    "methods": [{"name": "sd"}],
    "metrics": [{"name": "clip_score", "params": {"backend": "tinyworld"}}],
}

KEY_PATHS = [
    ("name",), ("model",), ("seed",), ("images_per_prompt",), ("batch_size",), ("description",),
    ("sampler",), ("sampler", "scheduler"), ("sampler", "steps"), ("sampler", "guidance"),
    ("sampler", "height"), ("sampler", "width"),
    ("prompt_sets",), ("prompt_sets", 0), ("prompt_sets", 0, "name"), ("prompt_sets", 0, "dataset"),
    ("prompt_sets", 0, "params"), ("prompt_sets", 0, "params", "prompts"), ("prompt_sets", 0, "params", "prompts", 0),
    ("prompt_sets", 0, "limit"), ("prompt_sets", 0, "sample_seed"), ("prompt_sets", 0, "images_per_prompt"),
    ("methods",), ("methods", 0), ("methods", 0, "name"), ("methods", 0, "label"), ("methods", 0, "params"),
    ("methods", 0, "prompt_sets"), ("methods", 0, "guidance"),
    ("metrics",), ("metrics", 0), ("metrics", 0, "name"), ("metrics", 0, "label"), ("metrics", 0, "params"),
    ("metrics", 0, "params", "backend"), ("metrics", 0, "params", "judge"), ("metrics", 0, "prompt_sets"),
]
WORDS = ["", " ", ".", "..", "../../ESCAPED", "/tmp/ESCAPED", "a/b", "..\\x", "sd", "clip_score", "prompts",
         "mixed", "tiny-sd", "tiny-sdxl", "tinyworld", "pndm", "ddim", "nope", "os:system", "json:loads",
         "this:s", "../../etc:X", "t2ibench.baselines.sd:PlainPipeline", "x" * 300, "file", "coco2014",
         "attributes", "alignment", "fid", "fairness", "sd:", ":x", "é", "\x00", "${HOME}", "-1", "1e9"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 7, 8, 33, 4096, 4104, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS),
    st.text(alphabet="ab./:_-\\ \n", max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(WORDS[:12] + ["k"]), inner, max_size=3)),
                      max_leaves=6)


def _set(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    """``doc`` with ``path`` set to ``value`` (or deleted); a path through a non-container replaces it."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        if not isinstance(doc, list):
            doc = [doc]
        while len(doc) <= head:
            doc.append({})
        if delete and not rest:
            doc.pop(head)
            return doc
    else:
        if not isinstance(doc, dict):
            doc = {}
        if delete and not rest:
            doc.pop(head, None)
            return doc
        doc.setdefault(head, {})
    doc[head] = _set(doc[head], rest, value, delete)
    return doc


mutation = st.tuples(st.sampled_from(KEY_PATHS + [("bogus",), ("sampler", "bogus"), ("methods", 0, "bogus")]),
                     values, st.booleans())


@st.composite
def suite_texts(draw) -> bytes:
    """A suite file: the base suite with 1-4 random edits, as YAML, sometimes truncated or replaced."""
    doc = copy.deepcopy(SUITE)
    for path, value, delete in draw(st.lists(mutation, min_size=1, max_size=4)):
        doc = _set(doc, path, value, delete)
    try:
        text = yaml.safe_dump(doc, allow_unicode=True).encode()
    except Exception:  # pragma: no cover - every generated value is YAML-able
        text = b"name: x\n"
    shape = draw(st.sampled_from(["whole"] * 6 + ["truncated", "bytes", "anchors"]))
    if shape == "anchors":  # a chain of aliases, each level repeating the last: small ones parse, big ones are bombs
        depth, width = draw(st.integers(1, 12)), draw(st.integers(2, 9))
        chain = "a0: &a0 [lol]\n" + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]\n" for i in range(1, depth))
        text = chain.encode() + text
    elif shape == "truncated":
        text = text[: draw(st.integers(0, len(text)))]
    elif shape == "bytes":
        text = draw(st.binary(max_size=64))
    return text


class ModelLoad(BaseException):
    """Raised instead of loading a model: the suite passed every check before the model load."""


def _no_model(*args, **kwargs):
    raise ModelLoad()


def _tree(root: Path, skip: Path | None = None) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath).resolve() == skip.resolve():
            dirnames[:] = []
            continue
        out.update(str(Path(dirpath) / f) for f in filenames)
    return out


def _call(argv: list[str]) -> tuple[int | str, str]:
    """main(argv) with stdout/stderr captured: (exit code or 'model-load', stderr)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code: int | str = main(argv)
        except ModelLoad:
            code = "model-load"
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, err.getvalue()


def _check_exit(code: int | str, err: str, allowed: set) -> None:
    assert code in allowed, (code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    if code == 2:
        assert len([x for x in err.splitlines() if x.startswith("t2ibench: error:")]) == 1, err[-2000:]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A sandbox folder (also the working directory) and the patches every example needs."""
    from t2ibench import cli
    from t2ibench.metrics import tinyworld

    root = tmp_path_factory.mktemp("fuzz")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setattr(cli, "build_parser", functools.lru_cache(maxsize=None)(cli.build_parser))  # same parser each call
    mp.setattr(tinyworld, "tiny_clip_backend", functools.lru_cache(maxsize=None)(tinyworld.tiny_clip_backend))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def base_run(sandbox) -> Path:
    """A generated and scored run (4 images), never modified."""
    (sandbox / "base").mkdir()
    (sandbox / "base" / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    assert main(["generate", str(sandbox / "base" / "suite.yaml"), "--out", str(sandbox / "base" / "run"), "--quiet"]) == 0
    assert main(["score", str(sandbox / "base" / "run"), "--quiet"]) == 0
    return sandbox / "base" / "run"


#: examples per test (two tests: 500 in all); T2IBENCH_FUZZ_EXAMPLES overrides it (e.g. a longer soak)
N = int(os.environ.get("T2IBENCH_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_fuzz_suite_files(sandbox, monkeypatch):
    from t2ibench import models

    monkeypatch.setattr(models, "load_pipeline", _no_model)
    seen: dict[Any, int] = {}
    before = _tree(sandbox)

    @FUZZ
    @given(text=suite_texts())
    def check(text: bytes) -> None:
        work = Path(tempfile.mkdtemp(dir=sandbox))
        try:
            (work / "suite.yaml").write_bytes(text)
            run = work / "a" / "b" / "run"
            code, err = _call(["generate", str(work / "suite.yaml"), "--out", str(run), "--quiet"])
            seen[code] = seen.get(code, 0) + 1
            _check_exit(code, err, {2, "model-load"})
            assert not (run / "run.json").exists(), "run.json written before every check passed"
            assert not run.exists() or not any(run.iterdir()), sorted(run.rglob("*"))
            assert _tree(work) == {str(work / "suite.yaml")}
        finally:
            shutil.rmtree(work)

    check()
    assert _tree(sandbox) == before
    assert sum(seen.values()) >= N and seen.get(2, 0) > N // 6 and seen.get("model-load", 0) >= N // 40, seen


# -- run-directory damage ---------------------------------------------------------------------
def _files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


damage = st.tuples(
    st.integers(0, 10**6),  # which file (index modulo the file count)
    st.sampled_from(["truncate", "flip", "delete", "json-value", "json-field", "dir", "junk", "suite", "score-value",
                     "link-dir", "link-file", "fifo", "odd-png", "sidecar-field"]),
    st.integers(0, 10**6),  # offset / length seed
    values,
    st.lists(mutation, min_size=1, max_size=2),
)


@functools.lru_cache(maxsize=None)
def _odd_png(which: int) -> bytes:
    """PNG bytes that decode oddly for a 32x32 run: another size, a decompression bomb, truncated."""
    from PIL import Image

    buf = io.BytesIO()
    if which == 0:
        Image.new("RGB", (48, 40), "red").save(buf, format="PNG")
    elif which == 1:
        Image.new("1", (20000, 10000)).save(buf, format="PNG", optimize=True)  # ~24 KB, 200 Mpixel
    else:
        Image.new("RGB", (32, 32), "green").save(buf, format="PNG")
        return buf.getvalue()[:60]
    return buf.getvalue()


def _outside(run: Path) -> Path:
    """Where links made by the damages point: a folder beside the run's parents, in the example's sandbox."""
    return run.parents[2] / "outside"


def _link_out(path: Path, num: int) -> None:
    """Move ``path`` to a fresh place under ``_outside`` and leave a symbolic link to it."""
    run = next(p for p in path.parents if p.name == "run")
    dst = _outside(run) / f"{num}-{path.name}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dst)
    path.symlink_to(dst)


#: runs of the current example whose sidecar got an edited field (score must refuse them)
EDITED_SIDECARS: set[str] = set()


def _damage(run: Path, files: list[str], spec: tuple) -> None:
    index, kind, num, value, suite_edits = spec
    if kind == "score-value":  # a cached per-image value, the file the index would rarely pick
        parts = [f for f in files if "/part-" in f]
        index, kind = files.index(parts[index % len(parts)]), "json-field"
    if kind == "odd-png":
        _write_odd_png(run, files, index, num)
        return
    if kind == "sidecar-field":
        _edit_sidecar_field(run, files, index, num)
        return
    path = run / files[index % len(files)]
    if kind == "link-dir":  # one of the file's folders inside the run (scores, results, a method's ...)
        folders = [p for p in path.parents if p != run and run in p.parents]
        if folders:
            _link_out(folders[num % len(folders)], num)
        return
    if path.is_fifo() and kind in ("truncate", "flip", "json-value", "json-field"):
        return  # opening a FIFO blocks the test itself
    _damage_file(run, path, kind, num, value, suite_edits)


def _write_odd_png(run: Path, files: list[str], index: int, num: int) -> None:
    """An image replaced by a valid PNG of another size or mode, its sidecar's hash updated to match."""
    pngs = [f for f in files if f.endswith(".png")]
    path = run / pngs[index % len(pngs)]
    if path.is_fifo() or path.with_suffix(".json").is_fifo():
        return  # opening a FIFO blocks the test itself
    data = _odd_png(num % 3)
    path.write_bytes(data)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["image_sha256"] = hashlib.sha256(data).hexdigest()  # consistent: the hash check passes
    side.write_text(json.dumps(meta))


def _edit_sidecar_field(run: Path, files: list[str], index: int, num: int) -> None:
    """A sidecar field beyond key and hash, edited to another plausible value."""
    sides = [f for f in files if f.startswith("images/") and f.endswith(".json")]
    side = run / sides[index % len(sides)]
    if side.is_fifo() or not side.is_file():
        return
    meta = json.loads(side.read_text())
    field = ("method", "prompt_set", "prompt", "seed", "prompt_id", "index")[num % 6]
    meta[field] = {"method": "other", "prompt_set": "elsewhere", "prompt": f"{meta.get('prompt')} edited",
                   "seed": int(meta.get("seed", 0)) + 1, "prompt_id": "p00099", "index": 7}[field]
    side.write_text(json.dumps(meta))
    EDITED_SIDECARS.add(str(run))


def _damage_file(run: Path, path: Path, kind: str, num: int, value: Any, suite_edits: list) -> None:
    """One damage of ``kind`` to the file at ``path`` (or, for "suite", to the run's suite.yaml)."""
    if kind == "link-file":
        _link_out(path, num)
    elif kind == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: num % (len(data) + 1)])
    elif kind == "flip":
        data = bytearray(path.read_bytes())
        if data:
            data[num % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))
    elif kind == "delete":
        path.unlink()
    elif kind == "json-value":
        path.write_text(json.dumps(value, default=str))
    elif kind == "json-field":
        _set_json_field(path, num, value)
    elif kind == "dir":
        path.unlink()
        path.mkdir()
    elif kind == "junk":
        (path.parent / f"junk{num % 7}.json").write_text(json.dumps(value, default=str))
    elif kind == "suite" and not (run / "suite.yaml").is_fifo():
        doc = yaml.safe_load((run / "suite.yaml").read_text())
        for p, v, d in suite_edits:
            doc = _set(doc, p, v, d)
        (run / "suite.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))


def _set_json_field(path: Path, num: int, value: Any) -> None:
    """One field of a JSON object file set to ``value`` (a file that holds no object is left alone)."""
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict) and obj:
        keys = sorted(obj)
        obj[keys[num % len(keys)]] = value
        path.write_text(json.dumps(obj, default=str))


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder`` (links not followed; none if absent)."""
    out = {}
    for dirpath, _, filenames in os.walk(folder):
        for f in filenames:
            p = Path(dirpath) / f
            out[str(p.relative_to(folder))] = b"<link>" if p.is_symlink() else b"<fifo>" if p.is_fifo() else p.read_bytes()
    return out


def _special_entries(run: Path) -> list[str]:
    """Links and FIFOs inside ``run`` (the run itself excluded): what every command must refuse."""
    found = []
    for dirpath, dirnames, filenames in os.walk(run):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or p.is_fifo():
                found.append(str(p))
    return found


def test_fuzz_damaged_run_directories(sandbox, base_run, monkeypatch):
    from t2ibench import models

    monkeypatch.setattr(models, "load_pipeline", _no_model)
    files = _files(base_run)
    before = _tree(sandbox)
    seen: dict[Any, int] = {}

    @FUZZ
    @given(damages=st.lists(damage, min_size=1, max_size=3))
    def check(damages) -> None:
        work = Path(tempfile.mkdtemp(dir=sandbox))
        EDITED_SIDECARS.clear()
        try:
            run = work / "a" / "b" / "run"
            shutil.copytree(base_run, run)
            for spec in damages:
                try:
                    _damage(run, files, spec)
                except OSError:
                    pass  # an earlier damage removed or replaced it (or made a path a link or a FIFO)
            outside = _outside(run)
            outside_before = _snapshot(outside)
            special = _special_entries(run)
            seen[("special", bool(special))] = seen.get(("special", bool(special)), 0) + 1
            code, err = _call(["score", str(run), "--quiet"])
            seen[("score", code)] = seen.get(("score", code), 0) + 1
            edited = str(run) in EDITED_SIDECARS
            seen[("edited", edited)] = seen.get(("edited", edited), 0) + 1
            _check_exit(code, err, {0, 2} if not (special or edited) else {2})
            code, err = _call(["report", str(run)])
            seen[("report", code)] = seen.get(("report", code), 0) + 1
            _check_exit(code, err, {0, 2} if not special else {2})
            run_json = (run / "run.json").read_bytes() if (run / "run.json").is_file() else None
            code, err = _call(["generate", str(base_run.parent / "suite.yaml"), "--out", str(run), "--quiet"])
            seen[("generate", code)] = seen.get(("generate", code), 0) + 1
            _check_exit(code, err, {0, 2, "model-load"} if not special else {2})
            if code != 0:  # refused, or stopped at the model load: nothing of the run was rewritten
                now = (run / "run.json").read_bytes() if (run / "run.json").is_file() else None
                assert now == run_json
            assert _tree(work, skip=outside) <= {str(p) for p in run.rglob("*")}, "a file outside the run directory"
            assert _snapshot(outside) == outside_before, "a write through a link, outside the run directory"
        finally:
            shutil.rmtree(work)

    check()
    assert _tree(sandbox) == before
    assert sum(v for (cmd, _), v in seen.items() if cmd == "score") >= N
    assert seen.get(("score", 0), 0) >= N // 40 and seen.get(("score", 2), 0) > N // 6, seen
    assert seen.get(("special", True), 0) >= N // 20, seen  # links and FIFOs were tried
    assert seen.get(("edited", True), 0) >= N // 40, seen  # edited sidecar fields were tried


# -- gate files ---------------------------------------------------------------------------------
def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return obj != obj or obj in (float("inf"), float("-inf"))
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v) for v in obj)
    return False


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.none(), st.booleans(),
                    st.sampled_from(["abc", "0.1", [0.1], {"abs": 0.1}]))
tolerance_docs = st.fixed_dictionaries({}, optional={
    "default": st.one_of(st.dictionaries(st.sampled_from(["abs", "rel", "x"]), numbers, max_size=2), numbers),
    "columns": st.one_of(st.dictionaries(st.sampled_from(["clip_score", "*", "sd/mixed/clip_score"]),
                                         st.dictionaries(st.sampled_from(["abs", "rel"]), numbers, max_size=2), max_size=2),
                         numbers),
    "comparisons": st.lists(st.fixed_dictionaries({"method": st.sampled_from(["sd", "x"]), "columns": st.just("clip_score")},
                                                  optional={"margin": numbers, "verdict": st.sampled_from(["better", "?"]),
                                                            "than": st.just("sd")}), max_size=2),
})


def test_fuzz_gate_files(sandbox, base_run, tmp_path):
    """check with generated tolerance and reference files: exit 0, 1 or 2 (one line), and always 2
    when a tolerance, a margin or a reference value is not a finite number (a NaN passes everything)."""
    ref = tmp_path / "ref.json"
    assert main(["table", str(base_run), "--format", "json", "-o", str(ref)]) == 0
    table = json.loads(ref.read_text())
    seen: dict[Any, int] = {}

    @settings(max_examples=max(N // 2, 20), deadline=None, derandomize=True, database=None)
    @given(tol=tolerance_docs, values=st.lists(numbers, max_size=3), fmt=st.sampled_from(["yaml", "json"]))
    def check(tol, values, fmt) -> None:
        doc = copy.deepcopy(table)
        # the generated values (up to 3) replace the first entries' values; the others keep theirs
        for entry, value in zip([e for e in doc["entries"] if e.get("value") is not None], values, strict=False):
            entry["value"] = value
        (tmp_path / "r.json").write_text(json.dumps(doc))
        tol_path = tmp_path / f"t.{fmt}"
        tol_path.write_text(yaml.safe_dump(tol) if fmt == "yaml" else json.dumps(tol))
        code, err = _call(["check", str(base_run), "--against", str(tmp_path / "r.json"), "--tolerance", str(tol_path)])
        seen[code] = seen.get(code, 0) + 1
        bad = _has_non_finite(tol) or _has_non_finite(values)
        _check_exit(code, err, {2} if bad else {0, 1, 2})

    check()
    assert seen.get(2, 0) > 0 and (seen.get(0, 0) + seen.get(1, 0)) > 0, seen
