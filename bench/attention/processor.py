"""The attention processor that runs controls, and the controller that installs it.

``ControlledAttnProcessor`` replaces the processor of one layer. At a step where none of its
controls is active it calls the processor that was there before (diffusers'
``AttnProcessor2_0``: the plain pipeline, byte for byte). Otherwise it computes q, k, v as
``AttnProcessor2_0`` does and then:

- the softmax scale is ``attn.scale`` times every control's ``scale_multiplier`` (passed to
  ``F.scaled_dot_product_attention`` explicitly: ``AttnProcessor2_0`` ignores ``attn.scale``);
- controls may replace the value input of the conditional rows (``value_states``) and add
  logit biases on the conditional rows (``logit_bias``: token reweighting, amplification);
- if no active control needs the probabilities, one SDPA call does it all (biases become a
  float ``attn_mask``); otherwise the conditional rows are computed eagerly
  (``softmax(q kᵀ · scale + bias)``, each control's ``edit_logits``, the softmax, each
  ``edit_probs``, then ``observe``) and the
  unconditional rows still go through SDPA.

Conditional rows: with classifier-free guidance the UNet batch is ``[uncond; cond]`` (the
diffusers SD/SDXL layout), so the second half; without guidance, all rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F

from ..method import installed_processors
from .layers import LayerInfo, attention_layers, spatial_shape
from .steps import StepState, scheduler_timesteps


@dataclass
class LayerCall:
    """What a control sees of one attention call (shapes: B batch, H heads, N queries, T keys)."""

    layer: LayerInfo
    step: int
    num_steps: int
    batch: int
    cond: slice  # conditional rows of the batch
    heads: int
    n_query: int
    n_key: int
    latent_hw: tuple[int, int] | None
    encoder_hidden_states: torch.Tensor | None
    #: where the layer runs: controls build their tensors here (once, then cached)
    device: torch.device | None = None

    @property
    def n_cond(self) -> int:
        return len(range(*self.cond.indices(self.batch)))

    @property
    def hw(self) -> tuple[int, int]:
        """(h, w) of the query patches (for spatial maps)."""
        return spatial_shape(self.n_query, self.layer.level, self.latent_hw)


class AttentionControl:
    """Base class of a control: which layers and steps, and hooks the processor calls.

    ``layers``: a ``LayerSelector`` spec (``"cross"``, ``"self"``, a mapping) or a list of layer
    names; ``steps``: a ``StepWindow`` or ``[start, stop]`` fractions (None = all steps).
    Hooks (all optional): ``scale_multiplier``, ``value_states``, ``logit_bias`` and, for
    controls with ``needs_probs = True``, ``edit_logits``, ``edit_probs`` and ``observe``.
    """

    needs_probs: bool = False
    default_kind: str = "cross"

    def __init__(self, layers: Any = None, steps: Any = None) -> None:
        from .layers import LayerSelector
        from .steps import StepWindow

        self.layers_spec = layers
        self.selector = None if isinstance(layers, (list, tuple)) else LayerSelector.of(layers, self.default_kind)
        self.window = StepWindow.of(steps)

    def layer_names(self, unet: Any) -> list[str]:
        if self.selector is None:
            return list(self.layers_spec)
        return [info.name for info in self.selector.select(unet)]

    def active(self, state: StepState) -> bool:
        return self.window.contains(state.step, state.num_steps)

    # hooks ---------------------------------------------------------------------------------
    def scale_multiplier(self, call: LayerCall) -> float:
        return 1.0

    def value_states(self, call: LayerCall) -> torch.Tensor | None:
        """Encoder states (n_cond, T, D) to compute the conditional rows' values from."""
        return None

    def key_states(self, call: LayerCall) -> list[torch.Tensor] | None:
        """Several encoder states [(n_cond, T, D), …] to compute keys from (controls with ``needs_probs``):
        the conditional rows' probabilities become the mean of the softmax over each key set."""
        return None

    def key_weights(self, call: LayerCall) -> torch.Tensor | None:
        """(n_sets, n_cond) weights of the key sets per row (0 = the row has no such set); None = equal."""
        return None

    def logit_bias(self, call: LayerCall) -> torch.Tensor | None:
        """Additive logits for the conditional rows, broadcastable to (n_cond, H, N, T)."""
        return None

    def edit_logits(self, call: LayerCall, logits: torch.Tensor) -> torch.Tensor:
        """Logits (n_cond, H, N, T), float32, before the softmax."""
        return logits

    def edit_probs(self, call: LayerCall, probs: torch.Tensor) -> torch.Tensor:
        """Probabilities (n_cond, H, N, T), float32, after the softmax (rows must stay normalised)."""
        return probs

    def observe(self, call: LayerCall, probs: torch.Tensor) -> None:
        """The final probabilities of the conditional rows, (n_cond, H, N, T)."""


def split_rows(x: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """(B, T, heads·head_dim) → (B, heads, T, head_dim)."""
    return x.view(x.shape[0], -1, heads, head_dim).transpose(1, 2)


class ControlledAttnProcessor:
    """Processor of one layer running ``controls``; ``fallback`` when none is active."""

    def __init__(self, controller: "AttentionController", layer: LayerInfo, controls: Sequence[AttentionControl], fallback: Any) -> None:
        self.controller = controller
        self.layer = layer
        self.controls = list(controls)
        self.fallback = fallback

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        state = self.controller.state
        active = [c for c in self.controls if c.active(state)]
        if not active:
            if temb is not None:
                kwargs["temb"] = temb
            return self.fallback(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kwargs)
        return self._controlled(attn, hidden_states, encoder_hidden_states, attention_mask, temb, active)

    def _controlled(self, attn, hidden_states, encoder_hidden_states, attention_mask, temb, active):
        residual = hidden_states
        hidden_states, spatial = _as_tokens(attn, hidden_states, temb)
        batch, n_query, _ = hidden_states.shape
        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        key, value = attn.to_k(context), attn.to_v(context)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        cond = self.controller.cond_rows(batch)
        state = self.controller.state
        call = LayerCall(
            layer=self.layer, step=state.step, num_steps=state.num_steps, batch=batch, cond=cond, heads=heads,
            n_query=n_query, n_key=context.shape[1], latent_hw=state.latent_hw,
            encoder_hidden_states=encoder_hidden_states, device=query.device,
        )
        value = _with_control_values(attn, active, call, value)
        query, key, value = (split_rows(x, heads, head_dim) for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        scale, bias = _scale_and_bias(attn, active, call)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, call.n_key, batch)
            attention_mask = attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        prob_controls = [c for c in active if c.needs_probs]
        if prob_controls:
            out = _eager_attention(attn, prob_controls, call, query, key, value, context.dtype, attention_mask, scale, bias)
        else:
            out = _sdpa_with_bias(query, key, value, cond, attention_mask, scale, bias)
        hidden_states = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if spatial is not None:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, *spatial)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _as_tokens(attn: Any, hidden_states: torch.Tensor, temb: torch.Tensor | None,
               ) -> tuple[torch.Tensor, tuple[int, int, int] | None]:
    """The layer's input as (B, N, C) tokens after its spatial and group norms, and (C, H, W) when
    it came as a feature map (to fold the output back)."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    spatial = None
    if hidden_states.ndim == 4:
        batch, channel, height, width = hidden_states.shape
        spatial = (channel, height, width)
        hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    return hidden_states, spatial


def _with_control_values(attn: Any, active: Sequence[AttentionControl], call: LayerCall, value: torch.Tensor) -> torch.Tensor:
    """``value`` (B, T, D) with the conditional rows computed from the first active control's
    ``value_states``, if any gives them."""
    for control in active:
        states = control.value_states(call)
        if states is not None:
            if attn.norm_cross:
                states = attn.norm_encoder_hidden_states(states)
            value = value.clone()
            value[call.cond] = attn.to_v(states.to(device=value.device, dtype=value.dtype))
            return value
    return value


def _scale_and_bias(attn: Any, active: Sequence[AttentionControl], call: LayerCall) -> tuple[float, torch.Tensor | None]:
    """The softmax scale (``attn.scale`` times every control's multiplier) and the summed float32
    logit bias of the conditional rows (None: no control adds one)."""
    scale = float(attn.scale)
    for control in active:
        scale *= float(control.scale_multiplier(call))
    bias = None
    for control in active:
        b = control.logit_bias(call)
        if b is not None:
            b = b.to(device=call.device, dtype=torch.float32)
            bias = b if bias is None else bias + b
    return scale, bias


def _sdpa_with_bias(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cond: slice,
                    attention_mask: torch.Tensor | None, scale: float, bias: torch.Tensor | None) -> torch.Tensor:
    """One SDPA call over the whole batch; the conditional rows' bias joins the mask as floats."""
    mask = attention_mask
    if bias is not None:
        full = torch.zeros((query.shape[0], *bias.shape[1:]), dtype=query.dtype, device=query.device)
        full[cond] = bias.to(query.dtype)
        mask = full if mask is None else mask + full
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False, scale=scale)


def _control_keys(attn: Any, prob_controls: Sequence[AttentionControl], call: LayerCall, key: torch.Tensor,
                  context_dtype: torch.dtype) -> tuple[list[torch.Tensor], torch.Tensor | None, AttentionControl | None]:
    """The conditional rows' key sets (B_cond, H, T, d): the layer's own keys, or those of the
    first control that gives ``key_states``; with that control's set weights and the control."""
    found = next(((c, sets) for c in prob_controls if (sets := c.key_states(call)) is not None), None)
    if found is None:
        return [key[call.cond]], None, None
    key_control, key_sets = found
    heads, head_dim = key.shape[1], key.shape[-1]
    keys = []
    for states in key_sets:
        states = states.to(device=key.device, dtype=context_dtype)
        if attn.norm_cross:
            states = attn.norm_encoder_hidden_states(states)
        k = split_rows(attn.to_k(states), heads, head_dim)
        keys.append(attn.norm_k(k) if attn.norm_k is not None else k)
    return keys, key_control.key_weights(call), key_control


def _eager_attention(attn: Any, prob_controls: Sequence[AttentionControl], call: LayerCall, query: torch.Tensor,
                     key: torch.Tensor, value: torch.Tensor, context_dtype: torch.dtype,
                     attention_mask: torch.Tensor | None, scale: float, bias: torch.Tensor | None) -> torch.Tensor:
    """Attention output (B, H, N, d): the unconditional rows through SDPA, the conditional rows
    eagerly in float32 (softmax of fp16 logits loses the small probabilities) so that the
    controls can edit logits and probabilities and observe them."""
    cond = call.cond
    out = query.new_empty((call.batch, call.heads, call.n_query, value.shape[-1]))
    # the other rows as slices (no boolean indexing: that would sync with the host)
    for other in _complement(cond, call.batch):
        m = None if attention_mask is None else attention_mask[other]
        out[other] = F.scaled_dot_product_attention(query[other], key[other], value[other], attn_mask=m, scale=scale)
    keys, set_w, key_control = _control_keys(attn, prob_controls, call, key, context_dtype)
    probs = None
    for i, k in enumerate(keys):
        logits = torch.matmul(query[cond], k.transpose(-1, -2)).float() * scale
        if bias is not None:
            logits = logits + bias
        if attention_mask is not None:
            logits = logits + attention_mask[cond].float()
        for control in prob_controls:
            logits = control.edit_logits(call, logits)
        p = logits.softmax(dim=-1)
        if set_w is not None:
            p = p * set_w[i].to(device=p.device, dtype=p.dtype)[:, None, None, None]
        probs = p if probs is None else probs + p
    if probs is None:
        raise ValueError(f"{type(key_control).__name__}.key_states gave no key states")
    probs = probs / (len(keys) if set_w is None else set_w.sum(0).to(device=probs.device, dtype=probs.dtype)[:, None, None, None])
    for control in prob_controls:
        probs = control.edit_probs(call, probs)
    for control in prob_controls:
        control.observe(call, probs)
    out[cond] = torch.matmul(probs.to(value.dtype), value[cond])
    return out


def _complement(rows: slice, batch: int) -> list[slice]:
    """The rows of ``range(batch)`` outside the contiguous slice ``rows``, as non-empty slices."""
    start, stop, step = rows.indices(batch)
    if step != 1:
        raise ValueError(f"conditional rows must be contiguous, got {rows}")
    return [s for s in (slice(0, start), slice(max(start, stop), batch)) if s.stop > s.start]


class AttentionController:
    """Several controls on one pipeline, one shared ``StepState``.

    Usage::

        ctl = AttentionController(pipe, [Temperature(0.8, layers="self", steps=(0, 0.2))])
        images = ctl(prompt="a red cube", num_inference_steps=25).images   # installs, runs, restores

    or by hand: ``ctl.begin(num_steps, height, width)``, ``with ctl.installed(): pipe(...,
    callback_on_step_end=ctl.callback)``. Only the layers some control names get a
    ``ControlledAttnProcessor``; every other layer keeps its processor. Nesting controllers
    composes them (the inner one's fallback is the outer one's processor).
    """

    def __init__(self, pipe: Any, controls: Iterable[AttentionControl] = ()) -> None:
        self.pipe = pipe
        self.state = StepState()
        self.controls: list[AttentionControl] = []
        for control in controls:
            self.add(control)

    def add(self, control: AttentionControl) -> AttentionControl:
        self.controls.append(control)
        return control

    def processors(self) -> dict[str, ControlledAttnProcessor]:
        unet = self.pipe.unet
        current = unet.attn_processors
        infos = {info.name: info for info in attention_layers(unet)}
        by_layer: dict[str, list[AttentionControl]] = {}
        for control in self.controls:
            for name in control.layer_names(unet):
                if name not in infos:
                    raise ValueError(f"no attention layer named {name!r} in this UNet")
                by_layer.setdefault(name, []).append(control)
        return {name: ControlledAttnProcessor(self, infos[name], cs, current[name]) for name, cs in by_layer.items()}

    def installed(self) -> installed_processors:
        return installed_processors(self.pipe, self.processors())

    def begin(self, num_steps: int, height: int | None = None, width: int | None = None, cfg: bool | None = None) -> None:
        """Reset the step counter before a pipeline call (heights/widths in pixels)."""
        self.state.begin(num_steps, self.latent_hw(height, width), cfg)

    def latent_hw(self, height: int | None, width: int | None) -> tuple[int, int]:
        factor = int(getattr(self.pipe, "vae_scale_factor", 8))
        default = int(self.pipe.unet.config.sample_size) * factor
        return (int(height or default) // factor, int(width or default) // factor)

    def callback(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        """diffusers ``callback_on_step_end``: advances the shared step counter (sampler steps, see ``steps.py``)."""
        self.state.advance(step, scheduler_timesteps(pipe, step, timestep))
        return callback_kwargs

    def cond_rows(self, batch: int) -> slice:
        cfg = self.state.cfg
        if cfg is None:
            try:
                cfg = bool(self.pipe.do_classifier_free_guidance)
            except AttributeError:
                cfg = False
        return slice(batch // 2, batch) if cfg and batch % 2 == 0 else slice(0, batch)

    def __call__(self, **pipe_kwargs: Any) -> Any:
        """Run the pipeline with the controls installed (composes any given step callback)."""
        self.begin(pipe_kwargs.get("num_inference_steps", 50), pipe_kwargs.get("height"), pipe_kwargs.get("width"))
        user_cb = pipe_kwargs.pop("callback_on_step_end", None)

        def callback(pipe, step, timestep, kw):
            if user_cb is not None:
                kw = user_cb(pipe, step, timestep, kw)
            return self.callback(pipe, step, timestep, kw)

        with self.installed():
            return self.pipe(**pipe_kwargs, callback_on_step_end=callback)
