"""Text selectivity: how much of each token state a text encoder gives to each object's colour.

On two-object captions ``"a {c1} {s1} and a {c2} {s2}"`` (every pair of distinct colours and
distinct shapes: 6·5·4·3 = 360 captions), take the encoder's last hidden state (after the final
layer norm: what the UNet cross-attends to) at six token roles and ask, for each role, which
share of the state's variance a one-hot linear fit of colour 1, and of colour 2, explains on
captions it was not fitted on (held-out R², summed over the hidden dimensions; two-fold, mean of
the folds). A token that carries its own object cleanly has a high share for its own colour and
a low one for the other object's; a causal text tower lets later tokens absorb earlier objects.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from .render import COLORS, SHAPES

ROLES = ("adj 1", "noun 1", "and", "adj 2", "noun 2", "end-of-text")
#: the token index of each role in "<bos> a c1 s1 and a c2 s2 <eot>" (one BPE token a word)
ROLE_POSITIONS = {"adj 1": 2, "noun 1": 3, "and": 4, "adj 2": 6, "noun 2": 7, "end-of-text": 8}
#: the roles that belong to each object (the selectivity targets are stated on these)
OBJECT_ROLES = {1: ("adj 1", "noun 1"), 2: ("adj 2", "noun 2")}


def probe_captions() -> list[tuple[str, int, int]]:
    """(caption, colour-1 index, colour-2 index) for every distinct-colour, distinct-shape pair."""
    out = []
    for (c1, s1), (c2, s2) in itertools.permutations(itertools.product(COLORS, SHAPES), 2):
        if c1 != c2 and s1 != s2:
            out.append((f"a {c1} {s1} and a {c2} {s2}", COLORS.index(c1), COLORS.index(c2)))
    return out


def heldout_r2(states: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0) -> float:
    """Two-fold held-out R² of a one-hot linear fit (with intercept) of ``states`` (N, D) on
    ``labels`` (N,): 1 - SSE / SST summed over the D dimensions, SST about the test fold's mean."""
    order = np.random.default_rng(seed).permutation(len(labels))
    folds = (order[: len(order) // 2], order[len(order) // 2:])
    onehot = np.eye(n_classes)[labels][:, 1:]  # drop one level: the intercept carries it
    design = np.concatenate([np.ones((len(labels), 1)), onehot], axis=1)
    scores = []
    for fit, test in (folds, folds[::-1]):
        coef, *_ = np.linalg.lstsq(design[fit], states[fit], rcond=None)
        resid = states[test] - design[test] @ coef
        sst = ((states[test] - states[test].mean(0)) ** 2).sum()
        scores.append(1.0 - float((resid ** 2).sum() / max(sst, 1e-12)))
    return float(np.mean(scores))


@torch.inference_mode()
def token_states(text_encoder: Any, tokenizer: Any, captions: list[str]) -> np.ndarray:
    """Last hidden states float64 (N, 9, D) of ``captions``, each checked to be 9 tokens long."""
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    lengths = (ids != tokenizer.eos_token_id).sum(1) + 1
    if not bool((lengths == 9).all()):
        raise ValueError("text probe: a probe caption is not one token per word (expected 9 tokens)")
    device = next(text_encoder.parameters()).device
    hidden = text_encoder(ids.to(device))[0][:, :9]
    return hidden.double().cpu().numpy()


def text_selectivity(text_encoder: Any, tokenizer: Any, seed: int = 0) -> dict[str, Any]:
    """The selectivity table: ``share[colour][role]`` (held-out R², see the module docstring) and
    whether each object's own words meet the target (other colour ≤ 0.1 and ≤ a third of own)."""
    rows = probe_captions()
    states = token_states(text_encoder, tokenizer, [r[0] for r in rows])
    colour = {"colour 1": np.array([r[1] for r in rows]), "colour 2": np.array([r[2] for r in rows])}
    share = {name: {role: heldout_r2(states[:, ROLE_POSITIONS[role]], lab, len(COLORS), seed) for role in ROLES}
             for name, lab in colour.items()}
    checks = {}
    for obj, roles in OBJECT_ROLES.items():
        own, other = f"colour {obj}", f"colour {3 - obj}"
        for role in roles:
            o, x = share[own][role], share[other][role]
            checks[role] = {"own": o, "other": x, "met": x <= 0.1 and x <= o / 3}
    return {"captions": len(rows), "caption_template": "a {c1} {s1} and a {c2} {s2}", "share": share,
            "own_vs_other": checks, "target": "other colour <= 0.1 and <= own / 3 on each object's adjective "
                                              "and noun", "met": all(c["met"] for c in checks.values())}
