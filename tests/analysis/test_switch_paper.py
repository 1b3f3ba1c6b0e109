"""Prompt switching as FairQueue's analysis code does it: UNet calls counted (``i < 15`` of the 51
calls of 50 PNDM steps), guidance 7.5, its three-word hard prompts, and ``analyze switch --paper``."""

from __future__ import annotations

import torch

from t2ibench.analysis.switch import PAPER_HARD_PROMPTS, PromptSource, _switch_after, first_prompt_steps, switched_call


def _sd14_pndm_schedule(steps: int) -> list[float]:
    """SD 1.4's scheduler (diffusers PNDM, skip_prk_steps, its scheduler_config) at ``steps`` steps."""
    from diffusers import PNDMScheduler

    s = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                      set_alpha_to_one=False, steps_offset=1, num_train_timesteps=1000)
    s.set_timesteps(steps)
    return [float(t) for t in s.timesteps]


def _fairqueue_first_prompt_calls(schedule: list[float], step_start_switch: int) -> list[bool]:
    """Transcription of ``Analysis_Code/pipeline_stable_diffusion.py:696-716`` (H2I): for i, t in
    enumerate(timesteps): the hard prompt while i < step_start_switch."""
    return [i < step_start_switch for i, _ in enumerate(schedule)]


def test_call_counting_switches_where_fairqueue_does():
    schedule = _sd14_pndm_schedule(50)
    assert len(schedule) == 51 and schedule[1] == schedule[2]  # PNDM repeats its second timestep
    first = _fairqueue_first_prompt_calls(schedule, 15)
    last_first_call = max(i for i, f in enumerate(first) if f)
    assert _switch_after(schedule, 15, "calls") == last_first_call == 14
    # counting sampler steps instead, the second prompt starts one call later (step 15 = call 16)
    assert _switch_after(schedule, 15, "steps") == 15
    # maps are per sampler step: step 14 is call 15, already the second prompt's
    assert first_prompt_steps(schedule, 15, "calls") == set(range(14))
    assert first_prompt_steps(schedule, 15, "steps") == set(range(15))
    assert _switch_after(schedule, 0, "calls") is None and _switch_after(schedule, 51, "calls") is None


def test_switched_call_feeds_the_unet_the_first_prompt_for_the_counted_calls(tiny_sd):
    """Record the conditional text embedding of every UNet call: with ``count="calls"`` the first
    prompt for calls i < k (FairQueue), with ``count="steps"`` for the calls of sampler steps < k."""
    hard = PromptSource.hard(tiny_sd.tokenizer, "a headshot of a person smiling", ["smiling"])
    inc = PromptSource(label="inclusive", text="a headshot of a person wearing a hat", tsa=[6])
    e_hard = hard.encoded(tiny_sd).prompt_embeds[-1]
    seen: list[str] = []
    forward = tiny_sd.unet.forward

    def spy(sample, timestep, encoder_hidden_states, *a, **kw):
        cond = encoder_hidden_states[-1]
        seen.append("hard" if torch.allclose(cond, e_hard.to(cond.dtype)) else "other")
        return forward(sample, timestep, encoder_hidden_states, *a, **kw)

    tiny_sd.unet.forward = spy
    try:
        for count, want in (("calls", ["hard"] * 2 + ["other"] * 3), ("steps", ["hard"] * 3 + ["other"] * 2)):
            seen.clear()
            tm = switched_call(tiny_sd, hard, inc, 2, 0, steps=4, height=32, width=32, count=count)
            assert seen == want, count  # PNDM, 4 steps: 5 calls, steps [0, 0, 1, 2, 3]
            assert tm.meta["first_steps"] == ([0] if count == "calls" else [0, 1])
    finally:
        tiny_sd.unet.forward = forward


def test_paper_preset_is_fairqueues_analysis_setting():
    from t2ibench.analysis.cli import apply_paper_preset
    from t2ibench.cli import build_parser

    args = build_parser().parse_args(["analyze", "switch", "--paper", "--iti-gen", "t.safetensors"])
    apply_paper_preset(args)
    assert (args.steps, args.guidance, args.size, args.switch_step, args.count) == (50, 7.5, 512, 15, "calls")
    given = build_parser().parse_args(["analyze", "switch", "--paper", "--steps", "30", "--iti-gen", "t.safetensors"])
    apply_paper_preset(given)
    assert given.steps == 30 and given.guidance == 7.5  # what the user gives stays
    plain = build_parser().parse_args(["analyze", "switch", "--iti-gen", "t.safetensors"])
    apply_paper_preset(plain)
    assert (plain.steps, plain.guidance, plain.switch_step, plain.count) == (25, 5.0, 5, "steps")
    # cros_attn_analysis.py:55-58, word for word
    assert PAPER_HARD_PROMPTS == {
        "Smiling": "A headshot of a person smiling beaming grinning",
        "High_Cheekbones": "A headshot of a person high cheek bones",
        "Gray_Hair": "A headshot of a person with gray hair",
        "Chubby": "A headshot of a person chubby fleshy obese",
    }


def test_analyze_switch_paper_uses_fairqueues_hard_prompt_and_present_category(tiny_sd, tmp_path, monkeypatch):
    """``--paper`` with Smiling tokens: the hard prompt is FairQueue's three-word one (its last three
    words are the tSA tokens), the inclusive prompt the present category's tokens; 2 steps here."""
    import pandas as pd

    from t2ibench.analysis import cli
    from t2ibench.baselines.iti_gen import InclusiveTokens
    from t2ibench.cli import build_parser

    monkeypatch.setattr(cli, "_load", lambda args: tiny_sd)
    tok = InclusiveTokens("Smiling", ["not smiling", "smiling"], "a headshot of a person",
                          {"tokens": torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))})
    path = tok.save(tmp_path / "tokens")
    args = build_parser().parse_args(["analyze", "switch", "--paper", "--iti-gen", str(path), "--steps", "2", "--size", "32",
                                      "--switch-step", "1", "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert args.guidance == 7.5 and args.count == "calls"
    df = pd.read_csv(tmp_path / "out" / "stats.csv")
    hard = df[(df["condition"] == "hard") & (df["token_group"] == "tsa")]
    words = hard.drop_duplicates("position").sort_values("position")["token"]
    assert "".join(words) == "smilingbeaminggrinning"  # the last three words (sub-word tokens in the tiny vocabulary)
    inc = df[(df["condition"] == "inclusive") & (df["token_group"] == "tsa")]
    assert set(inc["token"]) == {"<smiling:0>", "<smiling:1>", "<smiling:2>"}
