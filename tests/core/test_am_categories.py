"""The am-categories prompt set: COCO captions drawn into Attention Modulation's six categories."""

from __future__ import annotations

import json

import pytest

from t2ibench.datasets.am_categories import ORDER, caption_categories, load_am_categories
from t2ibench.errors import UserError

CAPTIONS = {
    1: "A dog running on the beach at sunset",  # time, location, content
    2: "A wooden bench in a park",  # texture, location
    3: "Three cats on a sofa",  # numerical, location
    4: "A red car",  # color
    5: "A man riding a horse",  # content
    6: "A cat to the left of a dog",  # location
    7: "A plate of food",  # presence only: no category
    8: "It is raining.",  # no question
    9: "A blue bus at night",  # time, color
    10: "Two men holding umbrellas",  # numerical, content
}


@pytest.fixture()
def coco(tmp_path):
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps({"annotations": [{"image_id": i, "id": i, "caption": c} for i, c in CAPTIONS.items()],
                                "images": [{"id": i, "file_name": f"im{i}.jpg"} for i in CAPTIONS]}))
    return path


def test_caption_categories():
    assert caption_categories(CAPTIONS[1]) == {"time", "location", "content"}
    assert caption_categories(CAPTIONS[7]) == set() and caption_categories(CAPTIONS[8]) == set()
    assert caption_categories(CAPTIONS[10]) == {"numerical", "content"}


def test_each_caption_goes_to_one_category_rarest_first(coco):
    items = load_am_categories({"path": str(coco)}, limit=1, sample_seed=0)
    cats = [it.meta["category"] for it in items]
    assert cats == list(ORDER)  # one per category, in the filling order
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.meta["category"] in caption_categories(it.text)
        assert it.meta["file_name"] == f"im{it.meta['coco_image_id']}.jpg"
    assert not {it.text for it in items} & {CAPTIONS[7], CAPTIONS[8]}


def test_limit_counts_per_category_and_the_draw_is_seeded(coco):
    two = load_am_categories({"path": str(coco)}, limit=2, sample_seed=0)
    counts = {c: sum(it.meta["category"] == c for it in two) for c in ORDER}
    assert all(n <= 2 for n in counts.values()) and counts["time"] == 2  # captions 1 and 9 are the only time ones
    assert [it.id for it in two] == [it.id for it in load_am_categories({"path": str(coco)}, limit=2, sample_seed=0)]
    orders = {tuple(it.id for it in load_am_categories({"path": str(coco)}, limit=1, sample_seed=s)) for s in range(6)}
    assert len(orders) > 1


def test_unknown_parameter_is_a_user_error(coco):
    with pytest.raises(UserError, match="unknown parameter 'per_category'"):
        load_am_categories({"path": str(coco), "per_category": 3})
