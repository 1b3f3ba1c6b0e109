"""The renderer: deterministic, labels agree with pixels and captions, the documented bias."""

import numpy as np
import pytest

from t2ibench.world import render as R


def test_deterministic():
    for seed in (0, 1, 12345, 10**9 + 7):
        a, b = R.render(seed), R.render(seed)
        assert np.array_equal(a.image, b.image)
        assert a.captions == b.captions and a.labels == b.labels
        assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert not np.array_equal(R.render(0, "objects").image, R.render(1, "objects").image)


def _close(pixel, rgb, tol=40):
    return np.abs(pixel.astype(int) - np.array(rgb)).max() <= tol


@pytest.mark.parametrize("seed", range(40))
def test_object_labels_match_pixels(seed):
    r = R.render(seed, "objects")
    lab = r.labels
    assert 1 <= len(lab["objects"]) <= 4
    cells = {(o["row"], o["col"]) for o in lab["objects"]}
    assert len(cells) == len(lab["objects"])  # one object per grid cell
    for o in lab["objects"]:
        x, y = int(round(o["x"])), int(round(o["y"]))
        # the object's colour (or its stripe shade) is at/near its centre
        patch = r.image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
        base = np.array(R.RGB[o["color"]])
        ok = any(_close(p, base) or (o["texture"] == "striped" and _close(p, base * (0.7 if o["color"] == "white" else 0.55)))
                 for p in patch)
        assert ok, (o, patch)
        if o["texture"] == "striped" and o["shape"] != "star":
            assert len({tuple(p) for p in patch}) > 1  # stripes visible
    bg = np.array([172, 208, 236]) if lab["background"] == "day" else np.array([22, 26, 58])
    for row in range(3):
        for col in range(3):
            if (row, col) not in cells:
                y, x = int((row + 0.5) * R.CELL), int((col + 0.5) * R.CELL)
                assert _close(r.image[y, x], bg, tol=14)


@pytest.mark.parametrize("seed", range(20))
def test_object_captions_mention_what_is_there(seed):
    r = R.render(seed, "objects")
    full = r.captions[0]
    for o in r.labels["objects"]:
        assert o["shape"] in full and o["color"] in full
        if o["texture"] == "striped":
            assert "striped" in full
    assert ("night" in full) == (r.labels["background"] == "night")
    for cap in r.captions:  # no caption mentions something absent
        for c in R.COLORS:
            if f" {c} " in f" {cap} ":
                assert any(o["color"] == c for o in r.labels["objects"]), cap


@pytest.mark.parametrize("seed", range(20))
def test_face_labels_match_pixels_and_captions(seed):
    r = R.render(seed, "face")
    lab = r.labels
    x, y, s = lab["x"], lab["y"], lab["style"]["scale"]
    cheek = r.image[int(y + 4 * s), int(x - 8 * s)]
    assert _close(cheek, R.SKIN_RGB[lab["skin"]], tol=3)
    top = r.image[int(y - 16.5 * s + 1), int(x)]
    assert _close(top, R.HAIR_RGB[lab["hair"]], tol=3)
    assert r.captions[1] == R.NEUTRAL_FACE
    full = r.captions[0]
    assert f"{lab['hair']} hair" in full and f"{lab['skin']} skin" in full
    assert ("with eyeglasses" in full or ", eyeglasses" in full or "with eyeglasses" in full.replace(" and", "")) \
        if lab["eyeglasses"] else "without eyeglasses" in full
    assert ("not smiling" in full) == (not lab["smiling"])


def test_eyeglasses_and_mouth_change_pixels():
    a = R.render(7, "face", face_attrs={"eyeglasses": False, "smiling": False})
    b = R.render(7, "face", face_attrs={"eyeglasses": True, "smiling": False})
    c = R.render(7, "face", face_attrs={"eyeglasses": False, "smiling": True})
    assert (a.image != b.image).any(axis=-1).sum() > 20
    assert (a.image != c.image).any(axis=-1).sum() > 20
    # everything else identical: only the fixed attribute changed
    assert {k: v for k, v in a.labels.items() if k != "eyeglasses"} == {k: v for k, v in b.labels.items() if k != "eyeglasses"}


def test_training_distribution_is_biased_as_documented():
    labs = [R.render(s, "face").labels for s in range(3000)]

    def share(key, v):
        return np.mean([lab[key] == v for lab in labs])

    assert abs(share("eyeglasses", True) - 0.15) < 0.03
    assert abs(share("smiling", True) - 0.25) < 0.03
    assert abs(share("hair", "gray") - 0.10) < 0.025
    assert abs(share("skin", "pale") - 0.55) < 0.03
    assert abs(share("skin", "dark") - 0.08) < 0.02


def test_family_mix_and_speed():
    import time

    t = time.time()
    fams = [R.render(s).labels["family"] for s in range(1000)]
    dt = time.time() - t
    assert 0.4 < np.mean([f == "face" for f in fams]) < 0.6
    assert dt < 10  # thousands per second unloaded; generous for a shared CPU
