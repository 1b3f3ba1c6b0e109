import pytest

from t2ibench.analysis.maps import capture_maps_on_image
from t2ibench.analysis.world_checks import object_box, object_word_box_shares, two_object_renders


def test_two_object_renders_have_distinct_words():
    rs = two_object_renders(range(100), 3)
    assert len(rs) == 3
    for _, r in rs:
        a, b = r.labels["objects"]
        assert a["shape"] != b["shape"] and a["color"] != b["color"]
        x0, y0, x1, y1 = object_box(a)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64


def test_maps_on_image_and_box_shares_mechanics(tiny_sd):
    _, r = two_object_renders(range(100), 1)[0]
    tm = capture_maps_on_image(tiny_sd, r.pil(), "a red circle", fractions=(0.5,))
    assert tm.steps() == [0] and tm.per_step[0].shape == (77, 32, 32)
    rows = object_word_box_shares(tiny_sd, 1, fractions=(0.5,))
    assert len(rows) == 4  # 2 objects x (shape, colour)
    for row in rows:
        assert 0 <= row["share_own"] <= 1 and 0 < row["chance_own"] < 1


class _FakeEvaluator:
    """Finds the named objects in fixed cells: (1, 0) for the first, (1, 2) for the second."""

    def __init__(self, objects):
        self.objects = objects

    def predict(self, images):
        return {"objects": [self.objects]}

    @staticmethod
    def unbatch(pred):
        return [{"objects": pred["objects"][0]}]


def test_generated_word_box_shares_mechanics(tiny_sd):
    from t2ibench.analysis.world_checks import generated_word_box_shares, two_object_prompts

    (a, b), = two_object_prompts(1, seed=0)
    ev = _FakeEvaluator([{**a, "row": 1, "col": 0}, {**b, "row": 1, "col": 2}])
    rows, counts = generated_word_box_shares(tiny_sd, ev, 1, steps=1)
    assert counts == {"images": 1, "objects_named": 2, "objects_found": 2}
    assert len(rows) == 4 and all(r["chance_own"] == pytest.approx(1 / 9, rel=0.1) for r in rows)
