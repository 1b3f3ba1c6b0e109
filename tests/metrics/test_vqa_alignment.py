"""The vqa_alignment scorer: verdicts, DSG dependencies, per-category columns and intervals,
answer normalisation and routing, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from t2ibench.metrics.questions import Question, Target
from t2ibench.metrics.vqa_alignment import VQAAlignmentScorer
from t2ibench.metrics.vqa_answers import (
    AnsweringBackend,
    RoutedBackend,
    dependency_verdicts,
    normalize_answer,
    verdict,
)

from _helpers.clip import random_images


class TableBackend:
    """Answers read from a table {prompt: {question text: answer}}; None where the table has none."""

    def __init__(self, table, name="table"):
        self.table, self.name, self.calls = table, name, []

    def conventions(self):
        return {"template": "table"}

    def to(self, device):
        return self

    def answer(self, images, questions):
        self.calls.append([[q.text for q in qs] for qs in questions])
        flat = {k: v for t in self.table.values() for k, v in t.items()}
        return [[flat.get(q.text) for q in qs] for qs in questions]


@pytest.mark.parametrize("raw,kind,expected", [
    ("Yes", "presence", "yes"), ("yes, it is.", "color", "yes"), ("No", "relation", "no"), ("nope", "time", "no"),
    ("two", "count", "2"), ("2 dogs", "count", "2"), ("There are three.", "count", "3"), ("none", "count", "0"),
    ("1,000", "count", "1000"), ("the red one", None, "red 1")])
def test_normalize_answer_vqa_rules(raw, kind, expected):
    assert normalize_answer(raw, kind) == expected


def test_verdicts_and_dsg_dependencies():
    qs = [Question("q1", "Is there a dog?", "content", "presence", "yes"),
          Question("q2", "Is the dog black?", "color", "color", "yes", ("q1",)),
          Question("q3", "How many dogs are there?", "numerical", "count", "2", ("q1",)),
          Question("q4", "Is it night?", "time", "time", "yes")]
    strict = [verdict(q, a) for q, a in zip(qs, ["no", "Yes", "two", None], strict=True)]
    assert strict == [False, True, True, None]
    assert dependency_verdicts(qs, strict) == [False, False, False, None]
    # an unanswered parent is not held against its child
    assert dependency_verdicts(qs, [None, True, False, True]) == [None, True, False, True]


PROMPTS = ["a black dog at night", "two cats"]
TABLE = {
    # q1 dog present, q2 black, q3 night
    PROMPTS[0]: {"Is there a dog?": "no", "Is the dog black?": "yes", "Is it night?": "yes"},
    # q1 cats present, q2 count
    PROMPTS[1]: {"Are there cats?": "yes", "How many cats are there?": "2"},
}


def _run(prompts, table, methods=("sd",)):
    s = VQAAlignmentScorer(_backend=TableBackend(table), bootstrap=200)
    metas = [{"prompt": p, "method": m, "prompt_id": f"p{i}", "index": 0} for m in methods for i, p in enumerate(prompts)]
    values = s.score(random_images(len(metas)), metas)
    return s, values, metas


def test_scorer_keeps_every_question_answer_and_verdict():
    s, values, metas = _run(PROMPTS, TABLE)
    v = values[0]
    assert [q["text"] for q in v["questions"]] == ["Is there a dog?", "Is the dog black?", "Is it night?"]
    assert v["answers"] == ["no", "yes", "yes"]
    assert v["verdicts"] == [False, True, True] and v["dependent"] == [False, False, True]
    assert values[1]["verdicts"] == [True, True]
    assert s.item_inputs(metas[0]) == {"prompt": PROMPTS[0]}


def test_columns_hand_computed():
    s, values, metas = _run(PROMPTS, TABLE)
    agg = s.aggregate(values, metas)
    # content: dog (wrong) + cats (right) pooled = 1/2; colour: strict 1/1, DSG 0/1 (its parent failed)
    assert agg["vqa-strict:content"]["value"] == 0.5 and agg["vqa:content"]["value"] == 0.5
    assert agg["vqa-strict:color"]["value"] == 1.0 and agg["vqa:color"]["value"] == 0.0
    assert agg["vqa-strict:numerical"]["value"] == 1.0 and agg["vqa-strict:time"]["value"] == 1.0
    # per-image shares: strict (2/3, 1) -> 5/6; DSG (1/3, 1) -> 2/3; all-correct 1/2
    assert agg["vqa-strict:all"]["value"] == pytest.approx(5 / 6)
    assert agg["vqa:all"]["value"] == pytest.approx(2 / 3)
    assert agg["vqa-all-correct"]["value"] == 0.5
    assert "vqa-strict:location" not in agg


def test_pooled_interval_and_paired_samples():
    prompts = [f"a black dog number {i}" for i in range(1)] + ["a black dog", "a red car", "a white cat", "a blue bus"]
    table = {p: {} for p in prompts}
    table["x"] = {"Is there a dog?": "yes", "Is the dog black?": "no", "Is there a car?": "yes", "Is the car red?": "yes",
                  "Is there a cat?": "yes", "Is the cat white?": "no", "Is there a bus?": "yes", "Is the bus blue?": "yes"}
    s, values, metas = _run(prompts[1:], table)
    agg = s.aggregate(values, metas)
    assert agg["vqa-strict:color"]["value"] == 0.5 and agg["vqa-strict:color"]["n"] == 4
    lo, hi = agg["vqa-strict:color"]["ci"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    sample = s.column_samples(values, metas)["vqa-strict:color"]
    assert list(sample.items) == [0, 1, 2, 3]
    assert sample.stat(np.array([[1, 1, 3, 3], [0, 2, 0, 2]])).tolist() == [1.0, 0.0]


def test_routing_sends_each_kind_to_its_backend():
    det = TableBackend({"x": {"Are there dogs?": "yes", "How many black dogs are there?": "3"}}, name="det")
    vqa = TableBackend({"x": {"Are the dogs black?": "yes", "Is it night?": "no",
                              "Are there dogs?": "no", "How many black dogs are there?": "2"}}, name="vqa")
    routed = RoutedBackend(vqa, {"presence": det, "count": det})
    assert isinstance(routed, AnsweringBackend)
    s = VQAAlignmentScorer(_backend=routed, bootstrap=50)
    v = s.score(random_images(1), [{"prompt": "three black dogs at night"}])[0]
    assert v["answers"] == ["yes", "yes", "3", "no"]
    assert det.calls == [[["Are there dogs?", "How many black dogs are there?"]]]
    assert vqa.calls[0] == [["Are the dogs black?", "Is it night?"]]
    assert routed.conventions()["count answered by"] == "det"


def test_a_routed_question_left_unanswered_goes_to_the_default():
    det = TableBackend({"x": {"Is there a cat?": "yes"}}, name="det")  # no answer for the second cat question
    vqa = TableBackend({"x": {"Is there a mat?": "no", "Is the cat on the mat?": "yes"}}, name="vqa")
    s = VQAAlignmentScorer(_backend=RoutedBackend(vqa, {"presence": det, "relation": det}), bootstrap=50)
    v = s.score(random_images(1), [{"prompt": "a cat on a mat"}])[0]
    assert v["answers"] == ["yes", "no", "yes"]
    assert vqa.calls == [[["Is there a mat?", "Is the cat on the mat?"]]]


def test_fairness_prompts_do_not_apply():
    s = VQAAlignmentScorer(_backend=TableBackend({}))
    assert not s.applies({"prompt": "a headshot of a person", "prompt_meta": {"tsa": "smiling", "categories": ["a", "b"]}})
    assert s.applies({"prompt": "a dog", "prompt_meta": {"category": "color", "labels": {}}})


def test_prompt_without_questions_is_kept_and_counted():
    s, values, metas = _run(["It is raining.", "a dog"], {"x": {"Is there a dog?": "yes"}})
    assert values[0]["questions"] == [] and values[0]["skipped"]
    agg = s.aggregate(values, metas)
    assert agg["vqa:all"]["n"] == 1 and "1 prompts without questions" in agg["vqa:all"]["notes"]


def test_target_json_round_trip_keeps_tuples():
    q = Question("q1", "t", "color", "color", "yes", ("q0",), Target("dog", ("black",)), None, "black")
    assert Question.from_json(q.to_json()) == q


def test_headline_takes_vqa_all_when_a_prompt_set_has_no_alignment_metric():
    from t2ibench.results.layout import headline_columns, prompt_set_tables
    from t2ibench.results.schema import make_row

    def entry(column, metric):
        return {"suite": "s", "model": "m", **make_row(method="sd", prompt_set="p", metric=metric, metric_name=metric,
                                                       column=column, value=0.5)}

    cols = [("fid", "fid"), ("clip_score", "clip_score"), ("vqa:color", "vqa_alignment"), ("vqa:all", "vqa_alignment")]
    entries = [entry(c, m) for c, m in cols]
    assert headline_columns(prompt_set_tables(entries)[("s", "p")]) == ["fid", "vqa:all"]
    g = prompt_set_tables(entries + [entry("accuracy:all", "alignment")])[("s", "p")]
    assert headline_columns(g) == ["fid", "accuracy:all"]  # the alignment scorer's column stays first
