"""Answering backends for question-based alignment: the contract, answer normalisation, routing.

A backend answers :class:`t2ibench.metrics.questions.Question` s about images::

    answers = backend.answer(images, questions)   # images: list of PIL (B,);
                                                  # questions: B lists of questions, one per image
    answers[b][k]: str | None                     # the raw answer, or None = this backend does not
                                                  # answer this kind of question (not scored)

``name`` and ``conventions()`` (model id, revision, prompt template, thresholds) go into the
scorer's cache key and conventions; ``to(device)`` places the backend's networks.

:func:`normalize_answer` turns a free-form answer into the form of ``Question.answer``: the
VQA-v2 evaluation rules (lower case, punctuation dropped, number words to digits, articles
dropped), then the first word for yes/no and count questions ("yes, it is" -> "yes",
"two dogs" -> "2").
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import torch

from t2ibench.metrics.questions import Question

_B = TypeVar("_B", bound="AnsweringBackend")

NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12"}
ARTICLES = frozenset({"a", "an", "the"})
YES_NO = {"yes": "yes", "yeah": "yes", "yep": "yes", "true": "yes", "no": "no", "nope": "no", "false": "no"}


@runtime_checkable
class AnsweringBackend(Protocol):
    """What the ``vqa_alignment`` scorer asks: answers per image and question (see module doc)."""

    name: str

    def answer(self, images: Sequence[Any], questions: Sequence[Sequence[Question]]) -> list[list[str | None]]: ...

    def conventions(self) -> dict[str, Any]: ...

    def to(self: _B, device: str | torch.device) -> _B: ...


def normalize_answer(answer: str, kind: str | None = None) -> str:
    """A free-form answer in ``Question.answer``'s form (VQA-v2 normalisation; see module doc)."""
    text = answer.lower().replace("\n", " ").strip()
    text = re.sub(r"(?<=\d),(?=\d)", "", text)  # 1,000 -> 1000
    text = re.sub(r"[^\w\s]", " ", text)
    words = [NUMBER_WORDS.get(w, w) for w in text.split() if w not in ARTICLES]
    if kind == "count":
        digits = next((w for w in words if w.isdigit()), None)
        return str(int(digits)) if digits is not None else " ".join(words)
    if words and words[0] in YES_NO:
        return YES_NO[words[0]]
    return " ".join(words)


def verdict(question: Question, answer: str | None) -> bool | None:
    """Whether ``answer`` is the expected one (None: not answered)."""
    if answer is None:
        return None
    return normalize_answer(answer, question.kind) == question.answer


def dependency_verdicts(questions: Sequence[Question], verdicts: Sequence[bool | None]) -> list[bool | None]:
    """DSG: a question holds only where it and every ancestor hold (an unanswered ancestor is not
    held against it); unanswered questions stay None."""
    index = {q.id: i for i, q in enumerate(questions)}
    memo: dict[int, bool] = {}

    def holds(i: int, seen: frozenset[int] = frozenset()) -> bool:
        if i in memo:
            return memo[i]
        own = verdicts[i] is not False
        parents = [index[p] for p in questions[i].parents if p in index and index[p] not in seen]
        memo[i] = own and all(holds(p, seen | {i}) for p in parents)
        return memo[i]

    return [None if v is None else holds(i) for i, v in enumerate(verdicts)]


class RoutedBackend:
    """Several backends, each answering the question kinds it is given (``routes``: kind ->
    backend), ``default`` the rest: e.g. a detector for presence, counts and directions, a VQA
    model for colour, texture, actions and time. A question a routed backend answers None (a
    detector asked "on" or "in") goes to ``default``."""

    def __init__(self, default: AnsweringBackend, routes: Mapping[str, AnsweringBackend] | None = None) -> None:
        self.default = default
        self.routes = dict(routes or {})
        self.name = " + ".join(dict.fromkeys([default.name] + [b.name for b in self.routes.values()]))

    def backends(self) -> list[AnsweringBackend]:
        out: list[AnsweringBackend] = [self.default]
        for b in self.routes.values():
            if all(b is not o for o in out):
                out.append(b)
        return out

    def conventions(self) -> dict[str, Any]:
        conv: dict[str, Any] = {"answers": self.default.name, **self.default.conventions()}
        for kind, b in sorted(self.routes.items()):
            conv[f"{kind} answered by"] = b.name
        for b in self.backends()[1:]:
            conv.update({f"{b.name}: {k}": v for k, v in b.conventions().items()})
        return conv

    def to(self, device: str | torch.device) -> "RoutedBackend":
        for b in self.backends():
            b.to(device)
        return self

    def answer(self, images: Sequence[Any], questions: Sequence[Sequence[Question]]) -> list[list[str | None]]:
        out: list[list[str | None]] = [[None] * len(qs) for qs in questions]
        for backend in self.backends()[1:]:
            self._fill(backend, images, questions, out, lambda q, b=backend: self.routes.get(q.kind) is b)
        self._fill(self.default, images, questions, out, lambda q: True)
        return out

    @staticmethod
    def _fill(backend, images, questions, out, mine) -> None:
        """Ask ``backend`` the questions ``mine`` selects that are still unanswered; record its answers."""
        todo = [[k for k, q in enumerate(qs) if out[b][k] is None and mine(q)]
                for b, qs in enumerate(questions)]
        if not any(todo):
            return
        got = backend.answer(images, [[questions[b][k] for k in ks] for b, ks in enumerate(todo)])
        for b, ks in enumerate(todo):
            for k, a in zip(ks, got[b], strict=True):
                out[b][k] = a
