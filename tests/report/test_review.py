"""``t2ibench review``: the sheet of a real scored run (tinyworld pipeline, ``vqa_alignment`` with the
tinyworld answering backend), a filled-in CSV imported back, the table's human accuracy and
kappa against values computed by hand, bad files refused, and the sheet used in headless
Chromium: real clicks on its toggles, its real export, imported."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from t2ibench.world.paths import pipeline_available

from _helpers.chromium import Chromium, chromium_or_skip
from _helpers.cli import run_cli
from _helpers.vqa import write_am_suite

INJECTION = '</td><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
CAPTIONS = ["a red circle at night", "two blue squares", "a striped green star", "a white circle above a red square",
            f"a yellow triangle {INJECTION}", "a circle holding a square"]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not pipeline_available(), reason="tinyworld pipeline weights not shipped")]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A generated and scored run: six am-categories captions, one image each."""
    root = tmp_path_factory.mktemp("review")
    suite = write_am_suite(root, CAPTIONS, name="review-run", images_per_prompt=1, methods=["{name: sd}"],
                           metrics=["{name: vqa_alignment, params: {vqa: tinyworld}}"])
    assert run_cli("generate", suite, "--out", root / "run", "--quiet") == 0
    assert run_cli("score", root / "run", "--quiet") == 0
    return root / "run"


@pytest.fixture
def run(scored, tmp_path) -> Path:
    shutil.copytree(scored, tmp_path / "run")
    return tmp_path / "run"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=delimiter)
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _cached_values(run: Path) -> list[dict]:
    """Every per-image value of the run's vqa_alignment cache, read straight from its part files."""
    return [v for f in sorted((run / "scores" / "vqa_alignment").rglob("part-*.json"))
            for v in json.loads(f.read_text())["values"].values()]


def _pick(rows: list[dict[str, str]]) -> dict[str, str]:
    """Verdicts for two rows the judge calls correct and two it calls wrong: correct, wrong on the
    first two, wrong, wrong on the others. By hand: human accuracy 1/4, judge 2/4, agreement 3/4,
    p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2, kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2."""
    right = [r["id"] for r in rows if r["judge"] == "correct"][:2]
    wrong = [r["id"] for r in rows if r["judge"] == "wrong"][:2]
    assert len(right) == len(wrong) == 2, "the scored run should have answers the judge calls right and wrong"
    return {right[0]: "correct", right[1]: "wrong", wrong[0]: "wrong", wrong[1]: "wrong"}


def _review_entries(run: Path, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert run_cli("table", run, "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    return {e["column"]: e for e in doc["entries"] if e["column"].startswith("review")}


def _check_hand_values(run: Path, picked: dict[str, str], capsys) -> None:
    entries = _review_entries(run, capsys)
    images = len({i.split("#")[0] for i in picked})
    assert entries["review-human:all"]["value"] == pytest.approx(0.25)
    assert entries["review-judge:all"]["value"] == pytest.approx(0.5)
    assert entries["review-agreement"]["value"] == pytest.approx(0.75)
    assert entries["review-kappa"]["value"] == pytest.approx(0.5)
    assert entries["review-human:all"]["n"] == images and entries["review-human:all"]["questions"] == 4
    capsys.readouterr()
    assert run_cli("table", run) == 0
    table = capsys.readouterr().out
    assert "review-kappa" in table and "review-human:all" in table and "Cohen's kappa" in table


def test_sheet_has_one_row_per_answered_question_and_escapes_the_prompt(run):
    assert run_cli("review", run, "--metric", "vqa_alignment") == 0
    folder = run / "review" / "vqa_alignment"
    rows = _csv_rows(folder / "sheet.csv")
    answered = sum(a is not None for v in _cached_values(run) for a in v["answers"])
    assert len(rows) == answered > 0 and len({r["id"] for r in rows}) == len(rows)
    assert all(r["human"] == "" and r["judge"] in ("correct", "wrong") for r in rows)
    assert any(INJECTION in r["prompt"] for r in rows)
    page = (folder / "sheet.html").read_text()
    assert INJECTION not in page and "window.pwned" in page  # present, but only as text
    assert "&lt;/td&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert page.count("<script") == 2 and "http://" not in page and "https://" not in page
    assert page.count('type="radio"') == 2 * len(rows)
    srcs = [s.split('"', 1)[0] for s in page.split('<img src="')[1:]]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_round_trip_filled_csv_to_table(run, tmp_path, capsys):
    assert run_cli("review", run) == 0
    rows = _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
    picked = _pick(rows)
    filled = [{**r, "human": picked.get(r["id"], "")} for r in rows]
    k = next(i for i, r in enumerate(filled) if r["human"])
    filled[k]["human"] = filled[k]["human"].upper()  # spreadsheets change case,
    filled.append({k: "" for k in filled[0]})  # leave empty rows at the end,
    _write_csv(tmp_path / "filled.csv", filled, delimiter=";")  # and save with ; in some locales
    assert run_cli("review", run, "--import", tmp_path / "filled.csv") == 0
    stored = json.loads(next((run / "review" / "vqa_alignment").glob("verdicts-*.json")).read_text())
    assert {k: v["human"] for k, v in stored["verdicts"].items()} == picked
    _check_hand_values(run, picked, capsys)
    # a second sheet shows the stored verdicts checked
    assert run_cli("review", run) == 0
    again = {r["id"]: r["human"] for r in _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")}
    assert {k: v for k, v in again.items() if v} == picked


def _bad(rows: list[dict[str, str]], case: str) -> list[dict[str, str]]:
    rows = [dict(r) for r in rows]
    rows[0]["human"] = "correct"
    if case == "unknown id":
        rows[1]["id"] = "sd/am/other-0000#q1"
    elif case == "bad verdict":
        rows[1]["human"] = "maybe"
    elif case == "other config":
        rows = [{**r, "config": "0123456789abcdef"} for r in rows]
    elif case == "other image":
        rows[1]["image_sha256"] = "0" * 64
    elif case == "two metrics":
        rows[1]["metric"] = "blip"
    elif case == "unknown metric":
        rows = [{**r, "metric": "blip"} for r in rows]
    elif case == "nothing reviewed":
        rows[0]["human"] = ""
    elif case == "no human column":
        rows = [{k: v for k, v in r.items() if k != "human"} for r in rows]
    elif case == "conflicting duplicate":
        rows.append({**rows[0], "human": "wrong"})
    return rows


@pytest.mark.parametrize("case, words", [
    ("unknown id", "is not in the sheet"), ("bad verdict", "expected 'correct', 'wrong' or empty"),
    ("other config", "configuration"), ("other image", "another image"), ("two metrics", "several metrics"),
    ("unknown metric", "no metric 'blip'"), ("nothing reviewed", "empty in every row"),
    ("no human column", "no column 'human'"), ("conflicting duplicate", "listed twice"),
])
def test_bad_review_files_are_one_line_and_write_nothing(run, tmp_path, capsys, case, words):
    assert run_cli("review", run) == 0
    good = _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
    _write_csv(tmp_path / "first.csv", [{**good[-1], "human": "wrong"}])
    assert run_cli("review", run, "--import", tmp_path / "first.csv") == 0
    (stored,) = (run / "review" / "vqa_alignment").glob("verdicts-*.json")
    before = stored.read_bytes()
    _write_csv(tmp_path / "bad.csv", _bad(good, case))
    capsys.readouterr()
    assert run_cli("review", run, "--import", tmp_path / "bad.csv") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("t2ibench: error: ") and words in err[0], err
    assert stored.read_bytes() == before
    assert sorted(p.name for p in (run / "review" / "vqa_alignment").iterdir()) == sorted(
        ["sheet.html", "sheet.csv", stored.name])


def test_review_of_an_unscored_or_other_metric_is_one_line(run, capsys):
    capsys.readouterr()
    assert run_cli("review", run, "--metric", "fid") == 2
    assert "no metric 'fid'" in capsys.readouterr().err
    (run / "results" / "aggregates.json").unlink()
    assert run_cli("review", run) == 2
    assert "t2ibench score" in capsys.readouterr().err
    assert not (run / "review").exists()


def test_sheet_in_headless_chromium_toggles_exports_and_imports(run, tmp_path, capsys):
    browser = chromium_or_skip()
    assert run_cli("review", run) == 0
    rows = _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
    picked = _pick(rows)
    index = {r["id"]: i for i, r in enumerate(rows)}
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chrome = Chromium(browser, downloads)
    try:
        chrome.open((run / "review" / "vqa_alignment" / "sheet.html").as_uri())
        assert chrome.evaluate("document.querySelectorAll('tbody tr').length") == len(rows)
        assert chrome.evaluate("document.querySelectorAll('img').length") == len({r["image"] for r in rows})
        assert chrome.evaluate("document.querySelectorAll('img').length") == chrome.evaluate(
            "[...document.images].filter(i => i.complete && i.naturalWidth === 64).length")  # embedded images decode
        assert chrome.evaluate("window.pwned === undefined")  # the injected prompt ran nothing...
        assert chrome.evaluate(f"document.body.innerText.includes({json.dumps(INJECTION)})")  # ...and shows as text
        assert chrome.evaluate("document.getElementById('progress').textContent") == f"0 of {len(rows)} rows reviewed"
        first = next(iter(picked))
        other = "wrong" if picked[first] == "correct" else "correct"
        chrome.click(f'input[name="v{index[first]}"][value="{other}"]')  # changed below: the last click counts
        for row_id, verdict in picked.items():
            chrome.click(f'input[name="v{index[row_id]}"][value="{verdict}"]')
        assert chrome.evaluate("document.getElementById('progress').textContent") == f"4 of {len(rows)} rows reviewed"
        chrome.click("#export")
        done = chrome.wait_event("Browser.downloadProgress", lambda p: p.get("state") in ("completed", "canceled"))
        assert done["state"] == "completed", done
    finally:
        chrome.close()
    (exported,) = downloads.iterdir()
    assert exported.name.startswith("review-vqa_alignment-") and exported.suffix == ".csv"
    got = _csv_rows(exported)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    assert {r["id"]: r["human"] for r in got if r["human"]} == picked
    assert next(r["prompt"] for r in got if INJECTION in r["prompt"])  # the text survives the export
    assert run_cli("review", run, "--import", exported) == 0
    _check_hand_values(run, picked, capsys)


def test_later_import_adds_to_and_overrides_stored_verdicts(run, tmp_path):
    assert run_cli("review", run) == 0
    rows = _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
    a, b = rows[0]["id"], rows[1]["id"]
    _write_csv(tmp_path / "one.csv", [{**rows[0], "human": "correct"}])
    _write_csv(tmp_path / "two.csv", [{**rows[0], "human": "wrong"}, {**rows[1], "human": "correct"}])
    assert run_cli("review", run, "--import", tmp_path / "one.csv") == 0
    assert run_cli("review", run, "--import", tmp_path / "two.csv") == 0
    (stored,) = (run / "review" / "vqa_alignment").glob("verdicts-*.json")
    assert {k: v["human"] for k, v in json.loads(stored.read_text())["verdicts"].items()} == {a: "wrong", b: "correct"}


def test_verdicts_on_an_image_changed_since_are_left_out(run, tmp_path, capsys, caplog):
    import hashlib

    from PIL import Image

    assert run_cli("review", run) == 0
    rows = _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
    _write_csv(tmp_path / "v.csv", [{**r, "human": "correct"} for r in rows])
    assert run_cli("review", run, "--import", tmp_path / "v.csv") == 0
    png = run / "images" / (rows[0]["image"] + ".png")  # regenerated: other pixels, sidecar updated, run rescored
    Image.new("RGB", (64, 64), (255, 255, 255)).save(png)
    side = png.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "image_sha256": hashlib.sha256(png.read_bytes()).hexdigest()}))
    assert run_cli("score", run, "--quiet") == 0
    entries = _review_entries(run, capsys)
    changed = sum(r["image"] == rows[0]["image"] for r in rows)
    assert entries["review-human:all"]["questions"] == len(rows) - changed
    assert "changed since the review" in caplog.text


def test_kappa_undefined_when_both_say_correct_everywhere_and_the_table_says_so(run, tmp_path, capsys):
    assert run_cli("review", run) == 0
    rows = [{**r, "human": "correct"} for r in _csv_rows(run / "review" / "vqa_alignment" / "sheet.csv")
            if r["judge"] == "correct"]
    _write_csv(tmp_path / "v.csv", rows)
    assert run_cli("review", run, "--import", tmp_path / "v.csv") == 0
    entries = _review_entries(run, capsys)
    assert entries["review-kappa"]["value"] is None and "kappa undefined" in entries["review-kappa"]["note"]
    assert entries["review-human:all"]["value"] == entries["review-judge:all"]["value"] == 1.0
    assert run_cli("table", run) == 0
    assert "– (kappa undefined: every reviewed question got one and the same verdict" in capsys.readouterr().out
