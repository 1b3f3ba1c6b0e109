"""tinyworld prompt sets and the evaluator's prompt checks (on ground-truth predictions)."""

import hashlib
import json

import pytest

from t2ibench.errors import UserError
from t2ibench.world import render as R
from t2ibench.world.evaluator import TSAS, check_prompt
from t2ibench.world.prompts import CATEGORIES, category_prompts


def test_alignment_set_interleaves_categories_and_is_seeded():
    from t2ibench.datasets.tinyworld import load_alignment

    items = load_alignment({}, limit=12, sample_seed=0)
    assert [i.meta["category"] for i in items] == list(CATEGORIES) * 2
    assert items == load_alignment({}, limit=12, sample_seed=0)
    assert items != load_alignment({}, limit=12, sample_seed=1)
    assert len({i.id for i in load_alignment({})}) == len(load_alignment({}))
    only = load_alignment({"categories": ["count"], "per_category": 5}, limit=None, sample_seed=0)
    assert len(only) == 5 and all(i.meta["category"] == "count" for i in only)
    with pytest.raises(UserError):
        load_alignment({"categories": ["smell"]}, limit=None, sample_seed=0)
    with pytest.raises(UserError):
        load_alignment({"colour": 1}, limit=None, sample_seed=0)


def test_fairness_set_meta():
    from t2ibench.datasets.tinyworld import load_fairness

    items = load_fairness({"tsas": ["eyeglasses", "smiling"]}, limit=None, sample_seed=0)
    assert [i.id for i in items] == ["eyeglasses", "smiling"]
    m = items[1].meta
    assert items[1].text == m["base_prompt"] == "a headshot of a person"
    assert m["categories"] == ["not smiling", "smiling"]
    assert m["hard_prompts"] == ["a headshot of a person not smiling", "a headshot of a person smiling"]
    assert len(m["class_prompts"]) == 2
    assert len(load_fairness({}, limit=None, sample_seed=0)) == len(TSAS)
    with pytest.raises(UserError):
        load_fairness({"tsas": ["Male"]}, limit=None, sample_seed=0)


def test_catalog_has_tinyworld_sets():
    from t2ibench.datasets.catalog import CATALOG

    assert CATALOG["tinyworld-alignment"].endswith(":load_alignment")
    assert CATALOG["tinyworld-fairness"].endswith(":load_fairness")


def _truth(labels):
    """A perfect 'prediction' from renderer labels."""
    if labels["family"] == "objects":
        objs = [{k: o[k] for k in ("shape", "color", "texture", "row", "col")} for o in labels["objects"]]
        return {"family": "objects", "background": labels["background"], "objects": objs, "count": len(objs)}
    return {"family": "face", **{k: labels[k] for k in ("skin", "hair", "eyeglasses", "smiling")}}


def test_prompt_texts_are_training_captions():
    """Every alignment prompt text is a caption the renderer writes for a scene like it."""
    caps = set()
    for s in range(4000):
        caps.update(R.render(s, "objects").captions)
    for cat in CATEGORIES:
        texts = [t for t, _ in category_prompts(cat)]
        hit = sum(t in caps for t in texts)
        assert hit > 0, cat  # each category's phrasing occurs in training captions
    for cat in ("color", "texture", "time"):
        texts = [t for t, _ in category_prompts(cat)]
        assert sum(t in caps for t in texts) > 0.5 * len(texts), cat


def test_check_prompt_on_scenes_rendered_for_the_prompt():
    for cat in CATEGORIES:
        for text, labels in category_prompts(cat)[:30]:
            objs = []
            for g in labels["objects"]:
                objs += [{"shape": g["shape"], "color": g["color"], "texture": g.get("texture") or "plain"}] * g["count"]
            rel = labels.get("relation")
            if rel:  # place subject and object to satisfy the relation
                where = {"to the left of": ((1, 0), (1, 2)), "to the right of": ((1, 2), (1, 0)),
                         "above": ((0, 1), (2, 1)), "below": ((2, 1), (0, 1))}[rel["relation"]]
                for o, (row, col) in zip(objs, where, strict=True):
                    o.update(row=row, col=col)
            r = R.render(5, "objects", objects=objs, background=labels.get("background"))
            res = check_prompt(labels, _truth(r.labels))
            assert res["correct"], (text, res)
            # a wrong colour fails
            bad = _truth(r.labels)
            bad["objects"] = [dict(o, color="white" if o["color"] != "white" else "red") for o in bad["objects"]]
            assert not check_prompt(labels, bad)["correct"], text


def test_check_prompt_faces():
    r = R.render(3, "face", face_attrs={"eyeglasses": True})
    assert check_prompt({"family": "face", "eyeglasses": True}, _truth(r.labels))["correct"]
    assert not check_prompt({"family": "face", "eyeglasses": False}, _truth(r.labels))["correct"]
    assert not check_prompt({"family": "objects", "objects": [{"shape": "star"}]}, _truth(r.labels))["correct"]


#: sha256 (first 16 hex digits) of each category's prompts as sorted-key JSON: the leaderboard's
#: tinyworld alignment prompts, which a change to the prompt builders must leave as they are
CATEGORY_FINGERPRINTS = {
    "color": (24, "bdf5180b014528c1"), "count": (48, "ac98ebe36f03b8b6"), "texture": (24, "f7ed33c624a06f53"),
    "time": (48, "0fcc18718d0f8794"), "location": (1440, "f5d5927a7e39f5b9"), "binding": (360, "3e60d964c0dd7a50"),
}


@pytest.mark.parametrize("category", CATEGORIES)
def test_category_prompts_are_the_leaderboards(category):
    prompts = category_prompts(category)
    digest = hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()[:16]
    assert (len(prompts), digest) == CATEGORY_FINGERPRINTS[category]
