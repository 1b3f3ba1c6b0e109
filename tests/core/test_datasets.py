"""Prompt-set loaders on small files written here."""

from __future__ import annotations

import json

import pytest

from t2ibench.datasets.attributes import TSAS, load_attribute_prompts
from t2ibench.datasets.coco2014 import load_captions
from t2ibench.datasets.files import inline_prompts, load_prompt_file
from t2ibench.errors import UserError


@pytest.fixture
def coco_file(tmp_path):
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg"} for i in range(1, 21)]
    anns = [{"id": 100 * i + j, "image_id": i, "caption": f"  caption {j} of image {i} "} for i in range(1, 21) for j in range(5)]
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path


def test_coco_one_caption_per_image_fixed_by_seed(coco_file):
    a = load_captions({"path": str(coco_file)}, limit=8, sample_seed=3)
    b = load_captions({"path": str(coco_file)}, limit=8, sample_seed=3)
    c = load_captions({"path": str(coco_file)}, limit=8, sample_seed=4)
    assert a == b and a != c
    ids = [p.meta["coco_image_id"] for p in a]
    assert len(set(ids)) == 8 and ids == sorted(ids)
    for p in a:
        assert p.text.endswith(f"of image {p.meta['coco_image_id']}") and p.text == " ".join(p.text.split())
        assert p.meta["file_name"] == f"COCO_val2014_{p.meta['coco_image_id']:012d}.jpg"
        assert p.id == f"coco{p.meta['coco_image_id']:012d}"
    assert len(load_captions({"path": str(coco_file)}, limit=None)) == 20  # fewer than 30k: all


def test_coco_bad_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        load_captions({"path": str(bad)})
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(UserError, match="annotations"):
        load_captions({"path": str(bad)})
    with pytest.raises(UserError, match="params.path: missing"):
        load_captions({})


def test_attribute_prompts():
    items = load_attribute_prompts({"tsas": ["Smiling", "Age", "Skin_Tone"]})
    assert [i.id for i in items] == ["Smiling", "Age", "Skin_Tone"]
    for item in items:
        k = len(TSAS[item.id])
        assert item.text == "a headshot of a person"
        assert len(item.meta["categories"]) == len(item.meta["hard_prompts"]) == len(item.meta["class_prompts"]) == k
    assert len(items[1].meta["categories"]) == 9 and len(items[2].meta["categories"]) == 6
    with pytest.raises(UserError, match="unknown attribute 'Hat'"):
        load_attribute_prompts({"tsas": ["Hat"]})


def test_prompt_files(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("a cat\n\n a dog \n")
    assert [(p.id, p.text) for p in load_prompt_file({"path": str(txt)})] == [("p00000", "a cat"), ("p00001", "a dog")]
    csv = tmp_path / "p.csv"
    csv.write_text("id,prompt\nx1,a cat\nx2,a dog\n")
    assert [(p.id, p.text) for p in load_prompt_file({"path": str(csv)})] == [("x1", "a cat"), ("x2", "a dog")]
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "a cat", "category": "animal"}\n{"prompt": "a dog", "id": "d"}\n')
    items = load_prompt_file({"path": str(jl)})
    assert items[0].meta == {"category": "animal"} and items[1].id == "d"
    assert len(load_prompt_file({"path": str(txt)}, limit=1, sample_seed=0)) == 1
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "a cat"}\nnot json\n')
    with pytest.raises(UserError, match=r"p.jsonl:2: invalid JSON"):
        load_prompt_file({"path": str(bad)})
    with pytest.raises(UserError, match="no column 'text'"):
        load_prompt_file({"path": str(csv), "column": "text"})
    with pytest.raises(UserError, match="non-empty list"):
        inline_prompts({"prompts": []})
