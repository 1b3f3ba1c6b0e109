"""docs/protocols.md's check column against the shipped paper suites and the code's defaults.

Every table row of the protocols document with a check cell of one or more ``SUITE: PATH = VALUE``
or ``default: module:Object.param = VALUE`` checks must hold; the document cannot drift from the
code.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml

from t2ibench.suite import shipped_suites

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
CHECK = re.compile(r"`(?P<where>[\w.-]+|default): (?P<path>[^`=]+?) = (?P<value>[^`]+)`")


def checks() -> list[tuple[str, str, str]]:
    """Every check of every row's last cell (a cell may hold several, separated by ``;``)."""
    rows = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            continue
        last = line.rstrip().rstrip("|").rsplit(" | ", 1)[-1]
        rows += [(m["where"], m["path"].strip(), m["value"].strip()) for m in CHECK.finditer(last)]
    return rows


def resolve(doc: object, path: str) -> object:
    node = doc
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)\[([\w.-]+)\]", part)
        if m:
            items = node[m[1]]
            hits = [x for x in items if x.get("label") == m[2]] or [x for x in items if x.get("name") == m[2]]
            assert hits, f"no {m[1]} entry named {m[2]!r}"
            node = hits[0]
        else:
            node = node[part]
    return node


def default_of(path: str) -> object:
    target, param = path.rsplit(".", 1)
    module, obj = target.split(":")
    fn = importlib.import_module(module)
    for attr in obj.split("."):
        fn = getattr(fn, attr)
    return inspect.signature(fn).parameters[param].default


def test_the_document_has_checks_for_both_paper_suites():
    where = {w for w, _, _ in checks()}
    assert {"fairness-sd14", "coco2014-sdxl", "default"} <= where
    assert len(checks()) >= 30


@pytest.mark.parametrize("where,path,value", checks())
def test_protocol_row_holds(where, path, value):
    expected = yaml.safe_load(value)
    if where == "default":
        got = default_of(path)
    else:
        suite = yaml.safe_load(Path(shipped_suites()[where]).read_text())
        got = resolve(suite, path)
    got = list(got) if isinstance(got, tuple) else got  # a tuple default reads as a YAML list
    assert got == expected, f"{where}: {path} is {got!r}; docs/protocols.md says {value}"


def test_attribute_class_prompts_follow_iti_gen_evaluation_wording():
    from t2ibench.datasets.attributes import load_attribute_prompts
    from t2ibench.errors import UserError

    # ITI-GEN README.md:260: --class-list 'a headshot of a person wearing eyeglasses' 'a headshot of a person'
    # (categories here are [absent, present]); the shipped paper suite uses that style
    (item,) = load_attribute_prompts({"tsas": ["Eyeglasses"], "class_prompts": "iti-gen"})
    assert item.meta["class_prompts"] == ["a headshot of a person", "a headshot of a person wearing eyeglasses"]
    smiling, male = load_attribute_prompts({"tsas": ["Smiling", "Male"], "class_prompts": "iti-gen"})
    assert smiling.meta["class_prompts"] == ["a headshot of a person", "a headshot of a person smiling"]
    assert male.meta["class_prompts"] == ["a headshot of a woman", "a headshot of a man"]  # both categories affirmative
    suite = yaml.safe_load(Path(shipped_suites()["fairness-sd14"]).read_text())
    assert resolve(suite, "prompt_sets[celeba].params.class_prompts") == "iti-gen"
    (headshot,) = load_attribute_prompts({"tsas": ["Smiling"]})
    assert headshot.meta["class_prompts"] == ["a headshot of a person not smiling", "a headshot of a person smiling"]
    (photo,) = load_attribute_prompts({"tsas": ["Eyeglasses"], "class_prompts": "photo"})
    assert photo.meta["class_prompts"] == ["a photo of a person without eyeglasses", "a photo of a person with eyeglasses"]
    with pytest.raises(UserError, match="class_prompts"):
        load_attribute_prompts({"tsas": ["Eyeglasses"], "class_prompts": "selfie"})
