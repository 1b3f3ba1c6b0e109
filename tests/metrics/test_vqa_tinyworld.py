"""The tinyworld answering backend: answers from one evaluator prediction, by hand, and the check
that it reads questions as ``check_prompt`` reads a prompt's labels on every alignment prompt."""

from __future__ import annotations

import pytest

from t2ibench.metrics.questions import prompt_questions
from t2ibench.metrics.vqa_answers import verdict
from t2ibench.metrics.vqa_tinyworld import answer_from_prediction
from t2ibench.world import render
from t2ibench.world.evaluator import _RELATIONS, check_prompt
from t2ibench.world.prompts import CATEGORIES, category_prompts


def _obj(shape, color, row, col, texture="plain"):
    return {"shape": shape, "color": color, "texture": texture, "row": row, "col": col}


SCENE = {"family": "objects", "background": "night", "objects": [
    _obj("circle", "red", 1, 0), _obj("square", "blue", 1, 2, "striped"), _obj("triangle", "green", 0, 1),
    _obj("triangle", "green", 2, 1)]}


def _answers(prompt, prediction=SCENE):
    return {q.text: answer_from_prediction(q, prediction, _RELATIONS, render) for q in prompt_questions(prompt).questions}


def test_answers_by_hand():
    assert _answers("a red circle to the left of a blue square") == {
        "Is there a circle?": "yes", "Is there a square?": "yes", "Is the circle red?": "yes",
        "Is the square blue?": "yes", "Is the circle to the left of the square?": "yes"}
    assert _answers("a striped yellow star above a white circle") == {
        "Is there a star?": "no", "Is there a circle?": "yes", "Is the star yellow?": "no", "Is the star striped?": "no",
        "Is the circle white?": "no", "Is the star above the circle?": "no"}
    assert _answers("three green triangles during the day") == {
        "Are there triangles?": "yes", "Are the triangles green?": "yes",
        "How many green triangles are there?": "2", "Is it daytime?": "no"}
    assert _answers("a striped blue square at night")["Is the square striped?"] == "yes"


def test_questions_tinyworld_cannot_show_are_not_answered():
    got = _answers("a dog chasing a red circle at sunset")
    assert got["Is there a dog?"] is None and got["Is the dog chasing the circle?"] is None
    assert got["Is it sunset?"] is None and got["Is there a circle?"] == "yes"
    assert _answers("a red circle next to a square")["Is the circle next to the square?"] is None


def test_a_face_has_no_objects_and_no_background():
    face = {**SCENE, "family": "face"}
    assert _answers("a red circle at night", face) == {"Is there a circle?": "no", "Is the circle red?": "no",
                                                        "Is it night?": "no"}


def _scenes_for(labels):
    """Predictions that show exactly the prompt's labels, and ones breaking each fact."""
    objs = [_obj(g["shape"], g["color"], 1, 2 * k, g.get("texture", "plain")) for k, g in enumerate(labels["objects"])]
    objs = [o for k, (o, g) in enumerate(zip(objs, labels["objects"], strict=True)) for o in
            [dict(o, col=c) for c in range(int(g.get("count", 1)))] if k == 0 or int(g.get("count", 1)) == 1] \
        if len(labels["objects"]) == 1 else objs
    rel = labels.get("relation")
    if rel:
        a, b = objs
        a["row"], a["col"], b["row"], b["col"] = {"to the left of": (1, 0, 1, 2), "to the right of": (1, 2, 1, 0),
                                                  "above": (0, 1, 2, 1), "below": (2, 1, 0, 1)}[rel["relation"]]
    good = {"family": "objects", "background": labels.get("background", "day"), "objects": objs}
    bad = [dict(good, objects=[dict(o, color="white" if o["color"] != "white" else "red") for o in objs]),
           dict(good, objects=objs[:-1]), dict(good, background="night" if good["background"] == "day" else "day"),
           dict(good, objects=[dict(o, row=2 - o["row"], col=2 - o["col"]) for o in objs]),
           dict(good, objects=[dict(o, texture="plain") for o in objs]), dict(good, family="face")]
    return [good] + bad


@pytest.mark.parametrize("category", CATEGORIES)
def test_all_questions_right_exactly_when_check_prompt_holds(category):
    """On every prompt of the category and on scenes that show it or break one fact, "every
    question answered as expected" equals ``check_prompt``'s verdict: the questions ask what the
    labels assert."""
    prompts = category_prompts(category)
    for text, labels in prompts[:: max(1, len(prompts) // 96)]:  # every prompt; every 15th of the 1440 locations
        qs = prompt_questions(text).questions
        for scene in _scenes_for(labels):
            answers = [answer_from_prediction(q, scene, _RELATIONS, render) for q in qs]
            assert None not in answers, text
            mine = all(verdict(q, a) for q, a in zip(qs, answers, strict=True))
            assert mine == check_prompt(labels, scene)["correct"], (text, scene)
