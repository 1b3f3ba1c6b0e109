"""FairQueue's TA and DreamSim (DS) scorers, checked against scipy / torchvision references."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.distance import cosine as scipy_cosine_distance

from t2ibench.metrics.common import NotAvailable
from t2ibench.metrics.dreamsim import ENV_VAR, DreamSimScorer
from t2ibench.metrics.text_alignment import TextAlignmentScorer, text_alignment

BASE = "a headshot of a person"


def _images(n: int, seed: int, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def _meta(method: str, tsa: str, index: int, prompt: str = BASE) -> dict:
    return {"method": method, "prompt_set": "celeba", "prompt_id": tsa, "index": index, "prompt": prompt,
            "prompt_meta": {"tsa": tsa, "categories": ["a", "b"]}}


# ------------------------------------------------------------------------------------------- TA


def test_text_alignment_is_clipscore_w_2_5_clamped_per_image():
    np.testing.assert_allclose(text_alignment([-0.2, 0.3, 0.27]), [0.0, 0.75, 0.675])
    np.testing.assert_allclose(text_alignment([0.3], w=1.0), [0.3])
    with pytest.raises(ValueError):
        TextAlignmentScorer(w=0)


def test_ta_scorer_matches_scipy_cosines_of_the_clip_embeddings_against_the_base_prompt(tiny_clip, hf_backend):
    images = _images(6, 0)
    # the prompt-set prompt is the base prompt; "method_prompt" (a method's rewrite) must not be read
    metas = [{**_meta("iti-gen", tsa, i), "method_prompt": "a cat"} for i, tsa in
             enumerate(["Smiling", "Smiling", "Smiling", "Young", "Young", "Young"])]
    scorer = TextAlignmentScorer(_backend=hf_backend)
    values = scorer.score(images, metas)
    out = scorer.aggregate(values, metas)

    # reference: raw CLIP features from the model, cosine from scipy, CLIPScore w = 2.5 by hand
    with torch.no_grad():
        px = hf_backend.image_processor(images=images, return_tensors="pt")["pixel_values"]
        img = tiny_clip.get_image_features(pixel_values=px)
        enc, _ = hf_backend.tokenize([BASE])
        txt = tiny_clip.get_text_features(**enc)
    img = getattr(img, "pooler_output", img).double().numpy()
    txt = getattr(txt, "pooler_output", txt).double().numpy()[0]
    cos = np.array([1.0 - scipy_cosine_distance(f, txt) for f in img])
    ta = 2.5 * np.maximum(cos, 0.0)
    np.testing.assert_allclose([v["cos"] for v in values], cos, atol=1e-6)
    assert out["ta"]["value"] == pytest.approx(ta.mean(), abs=1e-6)
    assert out["ta:Smiling"]["value"] == pytest.approx(ta[:3].mean(), abs=1e-6)
    assert out["ta:Young"]["value"] == pytest.approx(ta[3:].mean(), abs=1e-6)
    assert out["ta"]["n"] == 6 and out["ta:Young"]["n"] == 3 and out["ta"]["lower_is_better"] is False
    assert scorer.item_inputs(metas[0]) == {"text": BASE}

    # the paired-delta samples give the same statistic as the columns
    samples = scorer.column_samples(values, metas)
    pos = np.arange(3)[None]
    assert samples["ta:Young"].stat(pos)[0] == pytest.approx(out["ta:Young"]["value"])
    assert list(samples["ta:Young"].items) == [3, 4, 5]

    # an explicit prompt replaces the base prompt
    other = TextAlignmentScorer(_backend=hf_backend, prompt="a red car")
    assert other.item_inputs(metas[0]) == {"text": "a red car"}
    assert not np.allclose([v["cos"] for v in other.score(images, metas)], cos, atol=1e-4)


def test_ta_columns_group_by_tsa_and_clamp_each_image():
    metas = [_meta("fairqueue", t, i) for i, t in enumerate(["Smiling", "Smiling", "Young", "Young", "Young"])]
    values = [{"cos": c} for c in (0.30, 0.26, -0.1, 0.28, 0.24)]
    out = TextAlignmentScorer(_backend=object()).aggregate(values, metas)
    assert out["ta:Smiling"]["value"] == pytest.approx(2.5 * 0.28)
    assert out["ta:Young"]["value"] == pytest.approx(2.5 * (0.0 + 0.28 + 0.24) / 3)  # a negative cosine counts 0
    assert out["ta"]["value"] == pytest.approx(2.5 * (0.30 + 0.26 + 0.28 + 0.24) / 5)
    assert out["ta"]["ci"][0] <= out["ta"]["value"] <= out["ta"]["ci"][1]


# ------------------------------------------------------------------------------------- DreamSim


class StandIn(torch.nn.Module):
    """A tiny randomly initialised 'ensemble': two backbones whose features DreamSim concatenates."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(4 * 28 * 28, 5))
        self.b = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x) + 0.5, self.b(x) - 0.2  # offsets: centring the embedding matters


@pytest.fixture
def checkpoint(tmp_path):
    net = StandIn().eval()
    path = tmp_path / "dreamsim-standin.pt"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 224, 224)), str(path))
    return net, path


def _reference_distance(net: StandIn, a: Image.Image, b: Image.Image) -> float:
    """dreamsim's preprocessing (torchvision) and distance (centred embeddings, scipy cosine)."""
    from torchvision import transforms

    t = transforms.Compose([transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.ToTensor()])
    with torch.no_grad():
        ea, eb = (torch.cat(net(t(im)[None]), dim=-1)[0].double().numpy() for im in (a, b))
    return float(scipy_cosine_distance(ea - ea.mean(), eb - eb.mean()))


def test_dreamsim_pairs_each_image_with_the_reference_image_of_the_same_prompt_and_index(checkpoint, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    net, path = checkpoint
    ref_imgs, mine_imgs = _images(4, 1, size=48), _images(5, 2, size=48)
    keys = [("Smiling", 0), ("Smiling", 1), ("Young", 0), ("Young", 1)]
    ref_metas = [_meta("sd", t, i) for t, i in keys]
    mine_metas = [_meta("iti-gen", t, i) for t, i in keys] + [_meta("iti-gen", "Young", 7)]  # last: no reference
    order = list(range(5))
    random.Random(3).shuffle(order)  # pairing must follow (prompt id, index), not position
    mine_imgs, mine_metas = [mine_imgs[i] for i in order], [mine_metas[i] for i in order]

    scorer = DreamSimScorer(checkpoint=str(path))
    scorer.check_available()
    ref_vals, mine_vals = scorer.score(ref_imgs, ref_metas), scorer.score(mine_imgs, mine_metas)
    scorer.observe(mine_vals + ref_vals, mine_metas + ref_metas)
    out = scorer.aggregate(mine_vals, mine_metas)

    ref_of = {(m["prompt_id"], m["index"]): im for m, im in zip(ref_metas, ref_imgs, strict=True)}
    want = {(m["prompt_id"], m["index"]): _reference_distance(net, im, ref_of[(m["prompt_id"], m["index"])])
            for m, im in zip(mine_metas, mine_imgs, strict=True) if (m["prompt_id"], m["index"]) in ref_of}
    assert out["dreamsim"]["value"] == pytest.approx(np.mean(list(want.values())), abs=1e-5)
    assert out["dreamsim:Smiling"]["value"] == pytest.approx(np.mean([want[("Smiling", 0)], want[("Smiling", 1)]]), abs=1e-5)
    assert out["dreamsim"]["n"] == 4 and out["dreamsim"]["n_unpaired"] == 1 and out["dreamsim"]["lower_is_better"]
    assert scorer.aggregate(ref_vals, ref_metas)["dreamsim"]["value"] is None  # the references themselves
    samples = scorer.column_samples(mine_vals, mine_metas)
    assert samples["dreamsim"].stat(np.arange(4)[None])[0] == pytest.approx(out["dreamsim"]["value"])
    # identical images are at distance 0
    same = scorer.score(ref_imgs[:1], [_meta("iti-gen", "Smiling", 0)])
    assert scorer.aggregate(same, [_meta("iti-gen", "Smiling", 0)])["dreamsim"]["value"] == pytest.approx(0.0, abs=1e-9)


def test_dreamsim_not_available_without_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(NotAvailable, match=r"DreamSim checkpoint not found: none given; expected a TorchScript"):
        DreamSimScorer().check_available()
    missing = tmp_path / "nope.pt"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(NotAvailable, match=r"DreamSim checkpoint not found: .*nope\.pt; expected"):
        DreamSimScorer().check_available()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(NotAvailable, match="not a TorchScript file"):
        DreamSimScorer(checkpoint=str(junk)).check_available()
    with pytest.raises(NotAvailable, match="comparison method"):  # a driver that never calls observe
        DreamSimScorer(_network=StandIn()).aggregate([np.zeros(8)], [_meta("iti-gen", "Smiling", 0)])


SUITE = """
name: fq-metrics
model: tinyworld
seed: 0
images_per_prompt: 2
prompt_sets:
  - {{name: celeba, dataset: prompts, params: {{}}}}
methods:
  - {{name: sd}}
  - {{name: other}}
metrics:
  - {{name: dreamsim, params: {{checkpoint: {ckpt}}}}}
  - {{name: dreamsim, label: ds-missing, params: {{checkpoint: {missing}}}}}
"""


def test_score_run_pairs_across_methods_whatever_the_group_order(checkpoint, tmp_path, monkeypatch):
    """'other' is aggregated before 'sd' (sorted order): the driver's observe call makes sd's images known."""
    from t2ibench.fileio import atomic_write_json
    from t2ibench.results.scoring import score_run
    from t2ibench.store import RunDir

    monkeypatch.delenv(ENV_VAR, raising=False)
    net, path = checkpoint
    run = RunDir(tmp_path / "run")
    run.ensure_writable()
    (run.path / "suite.yaml").write_text(SUITE.format(ckpt=path, missing=tmp_path / "absent.pt"))
    atomic_write_json(run.path / "run.json", {"suite": "fq-metrics", "suite_hash": "test", "t2ibench": "0"})
    imgs = {"sd": _images(2, 5, size=32), "other": _images(2, 6, size=32)}
    for method, ims in imgs.items():
        for i, im in enumerate(ims):
            import io

            buf = io.BytesIO()
            im.save(buf, format="PNG")
            run.write_image(f"{method}/celeba/Smiling-{i:04d}", buf.getvalue(), _meta(method, "Smiling", i))
    agg = score_run(run.path)
    rows = {(r["method"], r["metric"], r["column"]): r for r in agg["rows"]}
    want = np.mean([_reference_distance(net, imgs["other"][i], imgs["sd"][i]) for i in range(2)])
    assert rows[("other", "dreamsim", "dreamsim")]["value"] == pytest.approx(want, abs=1e-5)
    assert rows[("other", "dreamsim", "dreamsim:Smiling")]["n"] == 2
    assert agg["metrics"]["ds-missing"]["available"] is False
    assert agg["metrics"]["ds-missing"]["reason"].startswith("DreamSim checkpoint not found:")


def test_dreamsim_loads_a_torch_export_archive_too(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    net = StandIn().eval()
    path = tmp_path / "dreamsim-standin.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 224, 224),)), str(path))
    a, b = _images(2, 9, size=48)
    scorer = DreamSimScorer(checkpoint=str(path))
    va, vb = scorer.score([a], [_meta("sd", "Smiling", 0)]), scorer.score([b], [_meta("x", "Smiling", 0)])
    scorer.observe(va + vb, [_meta("sd", "Smiling", 0), _meta("x", "Smiling", 0)])
    got = scorer.aggregate(vb, [_meta("x", "Smiling", 0)])["dreamsim"]["value"]
    assert got == pytest.approx(_reference_distance(net, b, a), abs=1e-5)
