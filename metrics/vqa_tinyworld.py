"""Known answers on tinyworld: an answering backend that reads the tinyworld evaluator's predictions.

The evaluator (``t2ibench.world.evaluator``) reads every object's shape, colour, texture and grid
cell and the background of a 64x64 image; this backend answers a question from those predictions
the way ``check_prompt`` checks a prompt's labels, so the question pipeline can be compared with
the shipped ``alignment`` scorer on the same images:

- presence / colour / texture: "yes" when some predicted object matches the question's target
  (shape = the noun; colour and texture where named);
- count: the number of predicted objects matching the target, in digits;
- relation (left/right/above/below): "yes" when some matching pair has that grid relation;
- time (night/day): "yes" when the background is that one (and the image is an object scene).

A question about anything tinyworld cannot show (a noun that is not a shape, an action, another
relation or time of day) gets None: not answered.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from t2ibench.metrics.questions import Question, Target
from t2ibench.metrics.tinyworld import _EvaluatorUser
from t2ibench.world import evaluator as world_evaluator

_DIRECTIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


def _knows(target: Target, render: Any) -> bool:
    return (target.noun in render.SHAPES and all(c in render.COLORS for c in target.colors)
            and all(t in render.TEXTURES for t in target.textures))


def _matching(objects: Sequence[Mapping[str, Any]], target: Target) -> list[Mapping[str, Any]]:
    return [o for o in objects if o["shape"] == target.noun and all(o["color"] == c for c in target.colors)
            and all(o["texture"] == t for t in target.textures)]


def answer_from_prediction(question: Question, prediction: Mapping[str, Any], relations: Mapping[str, Any],
                           render: Any) -> str | None:
    """One question answered from one image's evaluator prediction (``Evaluator.unbatch`` item)."""
    objects = prediction["objects"] if prediction["family"] == "objects" else []
    yes = {True: "yes", False: "no"}
    kind, target = question.kind, question.subject
    if kind == "time":
        if question.value not in render.BACKGROUNDS:
            return None
        return yes[prediction["family"] == "objects" and prediction["background"] == question.value]
    if target is None or not _knows(target, render):
        return None
    if kind in ("presence", "color", "texture"):
        return yes[bool(_matching(objects, target))]
    if kind == "count":
        return str(len(_matching(objects, target)))
    if kind == "relation":
        other = question.object
        test = relations.get(_DIRECTIONS.get(str(question.value), ""))
        if other is None or test is None or not _knows(other, render):
            return None
        return yes[any(test(x, y) for x in _matching(objects, target) for y in _matching(objects, other) if y is not x)]
    return None


class TinyworldAnswers(_EvaluatorUser):
    """tinyworld's evaluator as an :class:`~t2ibench.metrics.vqa_answers.AnsweringBackend`."""

    name = "tinyworld evaluator (structured answers)"

    def conventions(self) -> dict[str, Any]:
        return {"answers": "read from the evaluator's predictions (shapes, colours, textures, grid cells, background)"}

    def answer(self, images: Sequence[Any], questions: Sequence[Sequence[Question]]) -> list[list[str | None]]:
        from t2ibench.world import render

        preds = self.evaluator.unbatch(self.evaluator.predict(list(images)))
        relations = world_evaluator._RELATIONS
        return [[answer_from_prediction(q, p, relations, render) for q in qs] for qs, p in zip(questions, preds, strict=True)]


def tinyworld_answers() -> TinyworldAnswers:
    return TinyworldAnswers()
