import argparse

import pandas as pd
import pytest
import torch


@pytest.fixture
def run_cli(tiny_sd, monkeypatch):
    from t2ibench.analysis import cli

    monkeypatch.setattr(cli, "_load", lambda args: tiny_sd)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.add_commands(sub)

    def run(*argv):
        args = parser.parse_args(["analyze", *argv])
        return args.func(args)

    return run


@pytest.mark.slow
def test_analyze_maps_with_boxes(run_cli, tmp_path, capsys):
    assert run_cli("maps", "--model", "tiny-sd", "--prompt", "a red circle and a blue square", "--steps", "2", "--size", "32",
                   "--out", str(tmp_path), "--boxes", '{"circle": [0, 0, 16, 32], "square": [16, 0, 32, 32]}') == 0
    assert (tmp_path / "maps-seed0.png").stat().st_size > 0
    df = pd.read_csv(tmp_path / "maps-seed0.csv")
    assert list(df["word"]) == ["a", "red", "circle", "and", "a#2", "blue", "square"]
    assert df["share"].sum() == pytest.approx(1.0)
    boxes = pd.read_csv(tmp_path / "maps-seed0-boxes.csv")
    assert set(boxes["word"]) == {"circle", "square"} and (boxes["chance"] == 0.5).all()
    assert "share in box" in capsys.readouterr().out


@pytest.mark.slow
def test_analyze_maps_layer_selection(run_cli, tmp_path):
    from t2ibench.errors import UserError

    args = ("maps", "--prompt", "a red circle", "--steps", "2", "--size", "32")
    assert run_cli(*args, "--out", str(tmp_path / "all")) == 0
    assert run_cli(*args, "--out", str(tmp_path / "up"), "--layers", '{"blocks": ["up"], "levels": [0]}') == 0
    everything = pd.read_csv(tmp_path / "all" / "maps-seed0.csv")
    up = pd.read_csv(tmp_path / "up" / "maps-seed0.csv")
    assert list(up["word"]) == list(everything["word"]) and up["share"].sum() == pytest.approx(1.0)
    assert not up["share"].round(6).equals(everything["share"].round(6))  # a subset of layers: other maps
    assert run_cli(*args, "--out", str(tmp_path / "one"), "--layers", '["up_blocks.1.attentions.0"]') == 0
    one = pd.read_csv(tmp_path / "one" / "maps-seed0.csv")
    assert one["share"].sum() == pytest.approx(1.0) and not one["share"].round(6).equals(everything["share"].round(6))
    for bad in ('{"blocks": ["up"], "levels": [9]}', '{"kind": "self"}', "[1]", "[]", '["up_blocks.9"]', "{nope", '"up"'):
        with pytest.raises(UserError, match="--layers"):
            run_cli(*args, "--out", str(tmp_path / "bad"), "--layers", bad)


@pytest.mark.slow
def test_analyze_switch_with_iti_gen_tokens(run_cli, tiny_sd, tmp_path):
    from t2ibench.baselines.iti_gen import InclusiveTokens

    tok = InclusiveTokens("Smiling", ["not smiling", "smiling"], "a headshot of a person",
                          {"tokens": torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))})
    path = tok.save(tmp_path / "tokens")
    out = tmp_path / "switch"
    assert run_cli("switch", "--iti-gen", str(path), "--category", "1", "--switch-step", "1", "--steps", "2", "--size", "32",
                   "--out", str(out)) == 0
    df = pd.read_csv(out / "stats.csv")
    assert set(df["condition"]) == {"hard", "inclusive", "H2I@1", "I2H@1"}
    inc = df[(df["condition"] == "inclusive") & (df["token_group"] == "tsa")]
    assert set(inc["token"]) == {"<smiling:0>", "<smiling:1>", "<smiling:2>"}
    hard = df[(df["condition"] == "hard") & (df["token_group"] == "tsa")]
    assert set(hard["token"]) == {"smiling"}
    for name in ("grid.png", "distributions.png", "heatmaps_H2I_at_1.png", "share_over_steps.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_analyze_pid_and_bias_probe(run_cli, tmp_path, capsys):
    assert run_cli("pid", "--prompt", "a red circle", "--term1", "red", "--term2", "circle", "--seeds", "0",
                   "--estimator-seeds", "0,1", "--samples", "2", "--batch", "2", "--steps", "2", "--size", "32", "--out", str(tmp_path / "p")) == 0
    s = pd.read_csv(tmp_path / "p" / "pid_summary.csv")
    assert s.loc[0, "n"] == 2 and (tmp_path / "p" / "pid-seed0.png").exists()
    assert run_cli("pid", "--prompt", "a person", "--bias", "smiling,frowning", "--subject", "person", "--seeds", "0",
                   "--samples", "2", "--batch", "2", "--steps", "2", "--size", "32", "--out", str(tmp_path / "b")) == 0
    b = pd.read_csv(tmp_path / "b" / "bias_summary.csv")
    assert list(b["category"]) == ["smiling", "frowning"]
    assert (tmp_path / "b" / "bias_probe.png").exists()
    assert "R=" in capsys.readouterr().out


def test_bad_term_is_a_user_error(run_cli, tmp_path):
    from t2ibench.errors import UserError

    with pytest.raises(UserError, match="not a word"):
        run_cli("pid", "--prompt", "a red circle", "--term1", "green", "--term2", "circle", "--seeds", "0",
                "--samples", "2", "--steps", "2", "--size", "32", "--out", str(tmp_path))


@pytest.mark.slow
def test_analyze_maps_world_check_writes_word_and_token_tables(run_cli, tmp_path, capsys):
    assert run_cli("maps", "--world-check", "1", "--steps", "1", "--out", str(tmp_path)) == 0
    words = pd.read_csv(tmp_path / "world-check-renders.csv")
    assert sorted(zip(words["kind"], words["object"], strict=True)) == [("color", 1), ("color", 2), ("shape", 1), ("shape", 2)]
    tokens = pd.read_csv(tmp_path / "world-check-tokens.csv")
    assert list(tokens["role"])[:4] == ["<start>", "a", "colour 1", "shape 1"]
    assert tokens["mass_share"].sum() == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "shape words of object 1" in out and "which tokens' maps lie on the objects" in out
