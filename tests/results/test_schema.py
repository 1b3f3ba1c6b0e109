"""The results schema: one row constructor, and aggregates files checked where they are read."""

from __future__ import annotations

import math

import pytest

from t2ibench.cli import main
from t2ibench.results.schema import ROW_FIELDS, SchemaError, make_row, validate_aggregates, validate_row
from t2ibench.results.scoring import load_aggregates, score_run

from _helpers.results import write_aggregates


def _row(**kw):
    return make_row(method="sd", prompt_set="p", metric="m", metric_name="t_mean", column="m", **kw)


def test_make_row_stores_nan_as_null_and_keeps_a_scorers_extras():
    row = _row(value=math.nan, n=3, ci=[0.1, math.nan], lower_is_better=False, shares=[0.5, 0.5])
    assert row["value"] is None and row["ci"] is None and row["shares"] == [0.5, 0.5]
    assert set(ROW_FIELDS) <= set(row)
    assert validate_row(row, "r") == row


@pytest.mark.parametrize(("field", "bad", "message"), [
    ("value", "0.5", "rows[0].value = '0.5'; expected null or a number"),
    ("value", True, "rows[0].value = True; expected null or a number"),
    ("n", 2.5, "rows[0].n = 2.5; expected an integer"),
    ("ci", [0.1], "rows[0].ci = [0.1]; expected null or [low, high]"),
    ("available", "yes", "rows[0].available = 'yes'; expected true or false"),
    ("method", None, "rows[0].method = None; expected a string"),
    ("delta", {"value": 0.1, "verdict": "maybe"}, "rows[0].delta.verdict = 'maybe'; expected better, worse or same"),
])
def test_a_row_of_the_wrong_type_is_named_by_its_field(field, bad, message):
    agg = {"format": "t2ibench-aggregates/1", "run": "r", "suite": "s", "suite_hash": "h", "model": "m", "t2ibench": "0",
           "n_images": 1, "reference": None, "metrics": {}, "rows": [{**_row(value=0.5, n=1), field: bad}]}
    with pytest.raises(SchemaError) as exc:
        validate_aggregates(agg, "f")
    assert str(exc.value).endswith(message)


def test_a_row_without_a_field_is_refused():
    row = _row(value=0.5)
    del row["lower_is_better"]
    with pytest.raises(SchemaError, match="no 'lower_is_better'"):
        validate_row(row, "r")


def test_scored_aggregates_fit_the_schema(make_run):
    run = make_run()
    written = score_run(run.path, ["t_mean"])
    assert load_aggregates(run.path)["rows"] == validate_aggregates(dict(written), "x")["rows"]


@pytest.mark.slow
def test_table_and_check_refuse_a_sealed_file_of_the_wrong_shape_in_one_line(make_run, tmp_path, capsys):
    """A file whose digest holds but whose rows are not the schema's (another tool wrote it) is one
    error line naming the field, exit 2, for every reader."""
    run = make_run()
    agg = dict(score_run(run.path, ["t_mean"]))
    reference = tmp_path / "reference.json"
    assert main(["table", str(run.path), "--format", "json", "-o", str(reference)]) == 0
    agg["rows"] = [{**agg["rows"][0], "value": "high"}] + agg["rows"][1:]
    write_aggregates(run.path, agg)
    capsys.readouterr()
    for argv in (["table", run.path], ["check", run.path, "--against", reference]):
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "rows[0].value = 'high'; expected null or a number" in err[0], err
