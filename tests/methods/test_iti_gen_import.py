"""Importing the authors' released ITI-GEN files and ITI-GEN's reference-folder layout."""

from __future__ import annotations

import collections

import pytest
import torch

from t2ibench.baselines.iti_gen import InclusiveTokens, ItiGen, encode_inclusive, import_released, reference_folders
from t2ibench.errors import UserError

from _helpers.methods import SAMPLER, fair_jobs


def test_fairtoken_state_dict_imports_in_prompt_set_order(tmp_path):
    para = torch.randn(2, 3, 32)  # rows: [positive (smiling), negative]
    torch.save({"para": para}, tmp_path / "basis_perturbation_embed_29_Smiling.pth")
    tok = import_released(tmp_path / "basis_perturbation_embed_29_Smiling.pth", "Smiling", ["not smiling", "smiling"])
    torch.testing.assert_close(tok.tokens["tokens"][0], para[1])  # "not smiling" = the negative row
    torch.testing.assert_close(tok.tokens["tokens"][1], para[0])
    assert tok.layout == "reference" and tok.meta["kind"] == "tokens"
    tok.save(tmp_path / "out")
    again = InclusiveTokens.load(tmp_path / "out" / "Smiling.safetensors")
    assert again.layout == "reference" and again.categories == ["not smiling", "smiling"]


def test_released_prompt_embeddings_are_used_as_they_are(tmp_path, sd_pipe):
    emb = torch.randn(2, 77, 32)
    torch.save(emb, tmp_path / "basis_final_embed_29.pt")
    tok = import_released(tmp_path / "basis_final_embed_29.pt", "Colour", ["red", "blue"], order=[0, 1])
    out = encode_inclusive(sd_pipe, ["a headshot of a person"] * 2, [tok, tok], [1, 0])
    torch.testing.assert_close(out.embeds.prompt_embeds, emb[[1, 0]])
    assert out.positions == [[6, 7, 8]] * 2 and out.after == [9, 9]
    tok.save(tmp_path / "tok")
    m = ItiGen.build({"tokens_dir": str(tmp_path / "tok")})
    embeds, _ = m.inclusive_embeds(sd_pipe, fair_jobs(2))
    torch.testing.assert_close(embeds.prompt_embeds, emb)
    assert len(m.generate(sd_pipe, fair_jobs(2), SAMPLER)) == 2


class Opaque:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_import_refuses_pickled_code_and_wrong_shapes(tmp_path):
    torch.save({"para": torch.zeros(2, 3, 4), "x": Opaque()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="weights_only=True"):
        import_released(tmp_path / "evil.pth", "Smiling", ["a", "b"])
    torch.save(collections.OrderedDict(para=torch.zeros(3, 3, 4)), tmp_path / "three.pth")
    with pytest.raises(UserError, match="3 rows"):
        import_released(tmp_path / "three.pth", "Smiling", ["a", "b"])


def test_reference_folders_in_iti_gen_layout(tmp_path):
    for name in ("positive", "negative"):
        (tmp_path / "Smiling" / name).mkdir(parents=True)
    got = reference_folders(tmp_path, "Smiling", ["not smiling", "smiling"])
    assert got == {"not smiling": tmp_path / "Smiling" / "negative", "smiling": tmp_path / "Smiling" / "positive"}
    with pytest.raises(UserError, match="Eyeglasses"):
        reference_folders(tmp_path, "Eyeglasses", ["no", "yes"])
