"""The model cards are rendered from templates: the shipped eval.json and training.json give
back the committed README files byte for byte."""

import json
import shutil
from pathlib import Path

import pytest

from t2ibench.world.modelcards import CARDS, render_cards, write_cards

WEIGHTS = Path(__file__).resolve().parents[2] / "bench" / "world" / "weights"


def _shipped():
    return json.loads((WEIGHTS / "training.json").read_text()), json.loads((WEIGHTS / "eval.json").read_text())


@pytest.mark.parametrize("name", sorted(CARDS))
def test_rendered_card_equals_the_committed_one(name):
    train, figures = _shipped()
    assert render_cards(train, figures)[name] == (WEIGHTS / name / "README.md").read_text()


def test_write_cards_writes_only_present_model_folders(tmp_path):
    train, figures = _shipped()
    shutil.copy(WEIGHTS / "training.json", tmp_path)
    (tmp_path / "clip").mkdir()
    write_cards(tmp_path, figures)
    assert (tmp_path / "clip" / "README.md").read_text() == (WEIGHTS / "clip" / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip", "training.json"]
    assert [p.name for p in (tmp_path / "clip").iterdir()] == ["README.md"]  # no temporary file left


def test_card_without_figures_or_training_record():
    cards = render_cards({}, {})
    assert cards["clip"].endswith("## Training\n\n(no training record)\n\n## Held-out figures (`t2ibench world eval`)\n\n")
    assert "### Generation" not in cards["pipeline"] and "Zero-shot" not in cards["clip"]


def test_binding_figures_get_their_own_section():
    figures = {"binding": {"steps": 25, "guidance": 5.0, "n_prompts": 64, "n_images": 128,
                           "binding_accuracy": 0.40625, "both_colors_present": 0.625}}
    card = render_cards({}, figures)["pipeline"]
    assert "### Binding (25 steps, guidance 5.0)" in card
    assert "64 held-out prompts, 128 images" in card
    assert "| binding: both objects' shape and colour right (target 0.5) | 0.406 |" in card
    assert "| both colours present, shapes ignored | 0.625 |" in card
    assert "### Binding" not in render_cards({}, {"binding": {"not_available": "no pipeline"}})["pipeline"]
