"""The controls: temperature, token reweighting/amplification, object-focused masking, value mixing.

Conventions: probabilities are ``softmax(q kᵀ · scale)`` over the T key tokens; "weighting token
t by w" means ``p'_t = w_t p_t / Σ_s w_s p_s`` (multiply, then renormalise), implemented
exactly as the logit bias ``log w_t`` so it stays inside one SDPA call. Token positions index
the text encoder's 77-token sequence (0 = start-of-text).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .processor import AttentionControl, LayerCall


class Temperature(AttentionControl):
    """``softmax(q kᵀ · scale / tau)``: tau < 1 sharpens, tau > 1 flattens. Default: self-attention."""

    default_kind = "self"

    def __init__(self, tau: float, layers: Any = "self", steps: Any = None) -> None:
        if tau <= 0:
            raise ValueError(f"temperature tau must be > 0, got {tau}")
        super().__init__(layers, steps)
        self.tau = float(tau)

    def scale_multiplier(self, call: LayerCall) -> float:
        return 1.0 / self.tau


WeightsFn = Callable[[LayerCall], "torch.Tensor | None"]


class TokenReweight(AttentionControl):
    """Multiply the conditional rows' attention to each token by a weight, then renormalise.

    ``weights``: a tensor (n_cond, T) of non-negative weights (1 = unchanged, 0 = masked), or
    a function ``call -> tensor | None`` for weights that change with the step.
    """

    def __init__(self, weights: "torch.Tensor | WeightsFn", layers: Any = "cross", steps: Any = None) -> None:
        super().__init__(layers, steps)
        self.weights = weights
        self._cache: tuple[Any, torch.Tensor | None] | None = None

    def logit_bias(self, call: LayerCall) -> torch.Tensor | None:
        # the bias depends on the step at most: computed once per step (on the layer's device),
        # shared by the layers
        key = (call.step, call.num_steps, call.n_key, call.device) if callable(self.weights) else (call.n_key, call.device)
        if self._cache is None or self._cache[0] != key:
            w = self.weights(call) if callable(self.weights) else self.weights
            bias = None
            if w is not None:
                w = w.to(device=call.device) if call.device is not None else w
                bias = torch.log(w[..., : call.n_key].clamp_min(0)).to(torch.float32)[:, None, None, :]
            self._cache = (key, bias)
        return self._cache[1]


def token_weights(positions: Sequence[Sequence[int]], factor: float, n_tokens: int = 77) -> torch.Tensor:
    """(len(positions), n_tokens) weights: ``factor`` at each row's positions, 1 elsewhere."""
    w = torch.ones(len(positions), n_tokens)
    for row, pos in enumerate(positions):
        if len(pos):
            w[row, list(pos)] = float(factor)
    return w


class Amplify(TokenReweight):
    """Attention Amplification: the chosen tokens' attention times ``factor``.

    ``renormalize=True``: then the row is renormalised (a logit bias ``log factor``);
    ``False``: the chosen probabilities are multiplied and the others left as they are (rows
    no longer sum to 1; computed on the probabilities).
    """

    weights: torch.Tensor  # always token_weights(...): fixed over the steps

    def __init__(
        self, positions: Sequence[Sequence[int]], factor: float = 10.0, layers: Any = "cross", steps: Any = None,
        renormalize: bool = True,
    ) -> None:
        super().__init__(token_weights(positions, factor), layers, steps)
        self.factor = float(factor)
        self.positions = [list(p) for p in positions]
        self.renormalize = bool(renormalize)
        self.needs_probs = not self.renormalize

    def logit_bias(self, call: LayerCall) -> torch.Tensor | None:
        return super().logit_bias(call) if self.renormalize else None

    def edit_probs(self, call: LayerCall, probs: torch.Tensor) -> torch.Tensor:
        w = self.weights[..., : call.n_key].to(device=probs.device, dtype=probs.dtype)
        return probs * w[:, None, None, :]


class ObjectFocusMask(AttentionControl):
    """Object-focused masking of cross-attention (conditional rows).

    ``groups[r]``: the entity groups of row r, each a list of token positions. Each query patch
    is assigned to the group whose tokens receive the most of its attention (summed over the
    group's tokens, averaged over heads); its attention to tokens of every *other* group is set
    to zero (logit −inf) and the rest renormalised. Tokens in no group (start/end of text,
    padding, verbs, prepositions, background words) stay visible to every patch. Rows with
    fewer than two groups are left as they are. ``last_assignment`` keeps the latest
    (n_cond, N) group indices (for tests and figures).
    """

    needs_probs = True

    def __init__(self, groups: Sequence[Sequence[Sequence[int]]], layers: Any = "cross", steps: Any = None) -> None:
        super().__init__(layers, steps)
        self.groups = [[list(g) for g in row if len(g)] for row in groups]
        self.last_assignment: torch.Tensor | None = None
        self._cache: dict[tuple[int, Any], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _tables(self, n_key: int, device: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """On ``device``, built once: (n_cond, G, T) membership, (n_cond, T) group id per token
        (−1: global), (n_cond, 1, G) "no such group" and (n_cond, 1, 1) "at least two groups"."""
        key = (n_key, device)
        if key not in self._cache:
            n_groups = max([len(r) for r in self.groups] + [1])
            member = torch.zeros(len(self.groups), n_groups, n_key)
            owner = torch.full((len(self.groups), n_key), -1, dtype=torch.long)
            for r, row in enumerate(self.groups):
                for g, toks in enumerate(row):
                    toks = [t for t in toks if t < n_key]
                    member[r, g, toks] = 1.0
                    owner[r, toks] = g
            counts = torch.tensor([len(r) for r in self.groups])
            absent = (torch.arange(n_groups)[None, :] >= counts[:, None])[:, None, :]
            several = (counts >= 2)[:, None, None]
            m, o, a, s = (t.to(device) for t in (member, owner, absent, several))
            self._cache[key] = (m, o, a, s)
        return self._cache[key]

    def edit_probs(self, call: LayerCall, probs: torch.Tensor) -> torch.Tensor:
        # zeroing then renormalising the softmax = adding −inf logits: one softmax, not two
        member, owner, absent, several = self._tables(call.n_key, probs.device)
        if member.shape[0] != probs.shape[0]:
            raise ValueError(f"object mask has groups for {member.shape[0]} prompts, the batch has {probs.shape[0]}")
        mass = torch.einsum("bhnt,bgt->bng", probs, member.to(probs.dtype))  # head sum; argmax = head mean's
        mass = mass.masked_fill(absent, -1.0)
        assign = mass.argmax(-1)  # (n, N)
        self.last_assignment = assign
        masked = (owner[:, None, :] >= 0) & (owner[:, None, :] != assign[:, :, None])
        masked &= several
        probs = probs.masked_fill(masked[:, None, :, :], 0.0)
        return probs / probs.sum(-1, keepdim=True)


class ValueMix(AttentionControl):
    """Values of the conditional rows from other encoder states (Structured Diffusion).

    ``states``: (n_cond, T, D) encoder states the conditional rows' values are computed from;
    keys still come from the layer's own encoder states. Give the mean of several sequences to
    get the mean of their outputs: ``to_v`` is affine, so ``softmax(q kᵀ) · to_v(mean_k E_k) =
    mean_k softmax(q kᵀ) · to_v(E_k)`` exactly.
    """

    def __init__(self, states: torch.Tensor, layers: Any = "cross", steps: Any = None) -> None:
        super().__init__(layers, steps)
        self.states = states

    def value_states(self, call: LayerCall) -> torch.Tensor | None:
        if self.states.shape[0] != call.n_cond:
            raise ValueError(f"value states for {self.states.shape[0]} prompts, the batch has {call.n_cond}")
        return self.states


class KeyMix(AttentionControl):
    """Keys of the conditional rows from several encoder states (Structured Diffusion's conjunction mode).

    ``states``: one (n_cond, T, D) tensor per key set; the conditional rows' attention
    probabilities are the mean over the sets of ``softmax(q · to_k(E_k)ᵀ · scale)``.
    ``counts[r]``: how many of the sets row r has (the first ``counts[r]``; rows with fewer
    phrases are padded); None = all.
    """

    needs_probs = True

    def __init__(self, states: Sequence[torch.Tensor], layers: Any = "cross", steps: Any = None,
                 counts: Sequence[int] | None = None) -> None:
        super().__init__(layers, steps)
        self.states = list(states)
        self.counts = None if counts is None else list(counts)

    def key_weights(self, call: LayerCall) -> torch.Tensor | None:
        if self.counts is None:
            return None
        return (torch.arange(len(self.states))[:, None] < torch.tensor(self.counts)[None, :]).float()

    def key_states(self, call: LayerCall) -> list[torch.Tensor]:
        for s in self.states:
            if s.shape[0] != call.n_cond:
                raise ValueError(f"key states for {s.shape[0]} prompts, the batch has {call.n_cond}")
        return self.states


def linear_curve(start: float, stop: float) -> Callable[[int, int], float]:
    """``f(step, num_steps)`` going linearly from ``start`` (step 0) to ``stop`` (last step)."""

    def curve(step: int, num_steps: int) -> float:
        frac = min(1.0, step / max(1, num_steps - 1))
        return start + (stop - start) * frac

    return curve


def cosine_curve(start: float, stop: float) -> Callable[[int, int], float]:
    """Half-cosine from ``start`` to ``stop`` over the steps (flat at both ends)."""

    def curve(step: int, num_steps: int) -> float:
        frac = min(1.0, step / max(1, num_steps - 1))
        return stop + (start - stop) * 0.5 * (1 + math.cos(math.pi * frac))

    return curve
