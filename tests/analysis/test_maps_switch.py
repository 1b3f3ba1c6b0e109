import numpy as np
import pytest
import torch

from t2ibench.analysis.maps import TokenMaps, box_shares, capture_maps
from t2ibench.analysis.switch import PromptSource, switch_experiment, switched_call, write_switch_outputs


@pytest.mark.slow
def test_capture_maps_words(tiny_sd):
    tm = capture_maps(tiny_sd, "a red circle", 0, steps=2, height=32, width=32)
    assert tm.steps() == [0, 1]  # PLMS: the extra UNet call (repeated second timestep) belongs to step 0
    assert tm.per_step[0].shape == (77, 16, 16)
    assert torch.allclose(tm.word_map("red"), tm.aggregate()[2])
    assert list(tm.word_maps()) == ["a", "red", "circle"]


def test_box_shares_on_synthetic_maps():
    m = torch.zeros(77, 8, 8)
    m[2, :4, :4] = 1.0  # "red" top-left quarter
    m[3, :, 4:] = 1.0  # "circle" right half
    tm = TokenMaps("a red circle", None, {0: m}, [], [("a", [1]), ("red", [2]), ("circle", [3])], 1)
    rows = {r["word"]: r for r in box_shares(tm, {"red": (0, 0, 32, 32), "circle": (0, 0, 32, 32)}, (64, 64))}
    assert rows["red"]["share"] == pytest.approx(1.0) and rows["red"]["chance"] == pytest.approx(0.25)
    assert rows["red"]["lift"] == pytest.approx(4.0)
    assert rows["circle"]["share"] == pytest.approx(0.0)


def _arr(im):
    return np.asarray(im, dtype=np.int16)


@pytest.mark.slow
def test_switch_endpoints_equal_single_prompts(tiny_sd, tmp_path):
    hard = PromptSource.hard(tiny_sd.tokenizer, "a headshot of a person smiling", ["smiling"])
    inc = PromptSource(label="inclusive", text="a headshot of a person * * *", tsa=[6, 7, 8])
    assert hard.tsa == [6]
    res = switch_experiment(tiny_sd, hard, inc, 1, seeds=[0], steps=2, height=32, width=32)
    assert list(res.images) == ["hard", "inclusive", "H2I@1", "I2H@1"]
    h2i0 = switched_call(tiny_sd, hard, inc, 0, 0, steps=2, height=32, width=32).image
    assert (_arr(h2i0) == _arr(res.images["inclusive"][0])).all()
    # a switch mid-way gives an image different from both prompts alone
    mid = _arr(res.images["H2I@1"][0])
    assert (mid != _arr(res.images["hard"][0])).any() and (mid != _arr(res.images["inclusive"][0])).any()
    rows = [r for r in res.rows if r["condition"] == "H2I@1"]
    assert {r["prompt"] for r in rows if r["step"] == 0} == {"hard"}
    assert {r["prompt"] for r in rows if r["step"] >= 1} == {"inclusive"}
    assert {r["position"] for r in rows if r["step"] == 1 and r["token_group"] == "tsa"} == {6, 7, 8}
    shares = [r["share"] for r in rows if r["step"] == 1]
    assert 0 < sum(shares) <= 1.0 + 1e-6
    written = write_switch_outputs(tiny_sd, res, hard, inc, 1, tmp_path)
    for key in ("grid", "stats", "distributions", "heatmaps_H2I_at_1"):
        assert written[key].exists() and written[key].stat().st_size > 0
