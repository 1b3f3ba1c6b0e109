import math

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


@pytest.mark.slow
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


def _synthetic_capture(tokenizer, objects, token_maps):
    """A RenderMaps whose per-step maps are all zero except ``token_maps`` {position: (64, 64) map}."""
    import torch

    from t2ibench.analysis.maps import TokenMaps
    from t2ibench.analysis.tokens import word_token_spans
    from t2ibench.analysis.world_checks import RenderMaps
    from t2ibench.attention import token_labels

    a, b = objects
    prompt = f"a {a['color']} {a['shape']} and a {b['color']} {b['shape']}"
    m = torch.zeros(77, 64, 64)
    for p, v in token_maps.items():
        m[p] = v
    tm = TokenMaps(prompt=prompt, image=None, per_step={0: m}, labels=token_labels(tokenizer, prompt),
                   spans=word_token_spans(tokenizer, prompt), num_steps=1)
    return RenderMaps(seed=0, objects=(a, b), maps=tm, size=(64, 64))


def test_token_roles_cover_every_position(tiny_sd):
    from t2ibench.analysis.world_checks import token_roles

    a = {"shape": "circle", "color": "red", "x": 16, "y": 16, "radius": 8}
    b = {"shape": "square", "color": "blue", "x": 48, "y": 48, "radius": 8}
    cap = _synthetic_capture(tiny_sd.tokenizer, (a, b), {})
    roles = token_roles(cap.maps, cap.objects)
    assert [p for p, _ in roles] == list(range(77))
    names = [r for _, r in roles]
    assert names[:10] == ["<start>", "a", "colour 1", "shape 1", "and", "a#2", "colour 2", "shape 2", "<end>", "padding 1-10"]
    assert names[18] == "padding 1-10" and names[19] == "padding 11+" and names[-1] == "padding 11+"


def test_token_role_and_word_shares_known_answer(tiny_sd):
    """A map that is one box exactly has share 1 there and 0 in the other box; mass shares add to 1."""
    import torch

    from t2ibench.analysis.world_checks import object_word_box_shares, token_role_box_shares, token_role_table

    a = {"shape": "circle", "color": "red", "x": 16, "y": 16, "radius": 8}
    b = {"shape": "square", "color": "blue", "x": 48, "y": 48, "radius": 8}
    box1, box2, flat = torch.zeros(64, 64), torch.zeros(64, 64), torch.ones(64, 64)
    box1[8:24, 8:24] = 1.0
    box2[40:56, 40:56] = 1.0
    # "circle" (position 3) on object 1; "and" (4) on object 2 (a swapped reading); the rest flat
    cap = _synthetic_capture(tiny_sd.tokenizer, (a, b), {0: flat, 3: box1, 4: 3 * box2})
    rows = token_role_box_shares([cap])
    assert list(token_role_table(rows + rows).index[:5]) == ["<start>", "a", "colour 1", "shape 1", "and"]
    roles = {r["role"]: r for r in rows}
    assert roles["shape 1"]["share_object1"] == pytest.approx(1.0) and roles["shape 1"]["share_object2"] == 0.0
    assert roles["and"]["share_object2"] == pytest.approx(1.0) and roles["and"]["share_object1"] == 0.0
    assert roles["<start>"]["share_object1"] == pytest.approx(roles["<start>"]["chance_object1"]) == pytest.approx(256 / 4096)
    assert sum(r["mass_share"] for r in roles.values()) == pytest.approx(1.0)
    # total mass: flat 4096 + box1 256 + 3 * 256
    assert roles["and"]["mass_share"] == pytest.approx(768 / (4096 + 256 + 768))
    words = {(r["word"], r["object"]): r for r in object_word_box_shares(None, captures=[cap])}
    assert words[("circle", 1)]["share_own"] == pytest.approx(1.0) and words[("circle", 1)]["share_other"] == 0.0
    assert words[("circle", 1)]["mass_share"] == pytest.approx(256 / (4096 + 256 + 768))
    assert math.isnan(words[("square", 2)]["share_own"])  # an empty map
