"""Attention control for diffusers UNets: per-layer processors, step windows, map capture.

Pieces (each a small module):

- ``layers``: ``attention_layers(unet)`` → ``LayerInfo(name, kind "self"|"cross", block
  "down"|"mid"|"up", block_index, level)`` (level 0 = full latent resolution); ``LayerSelector``
  picks layers by kind, block and level (``"cross"``, ``{kind: self, levels: [0]}``).
- ``steps``: ``StepState`` (the shared step counter: index of the UNet call in progress,
  advanced by the pipeline's ``callback_on_step_end``) and ``StepWindow`` ([start, stop) as
  fractions of the steps, or indices).
- ``processor``: ``ControlledAttnProcessor`` (installed only on the layers a control names;
  calls the layer's previous processor at steps where no control is active, so an inactive
  control is the plain pipeline byte for byte; passes ``attn.scale`` to SDPA itself) and
  ``AttentionController`` (several controls on one pipeline, one ``StepState``).
- ``controls``: ``Temperature`` (self-attention τ), ``TokenReweight`` / ``Amplify`` (multiply the
  chosen tokens' attention by w, then renormalise — as a logit bias log w, still one SDPA call),
  ``ObjectFocusMask`` (each patch sees only its own entity group's tokens plus global tokens),
  ``ValueMix`` / ``KeyMix`` (values / keys from other encoder states: Structured Diffusion).
- ``maps``: ``CrossAttentionMaps`` — cross-attention map capture per token, layer and step,
  aggregated DAAM style (heads and layers summed, upsampled to the latent grid); eager softmax
  only on the captured layers and steps, conditional rows only. ::

      maps = CrossAttentionMaps(pipe, layers="cross", steps=None, tokens=None, keep_layers=False)
      out = maps.run(prompt=[text], num_inference_steps=25, generator=g)
      maps.aggregate()                 # (B, 77, H, W) over all captured steps
      maps.aggregate(steps=range(5))   # early steps only
      maps.per_step[s]                 # (B, 77, H, W) for step s
      maps.per_layer[(s, layer_name)]  # (B, 77, h, w), with keep_layers=True
      maps.heatmaps(size=(512, 512))   # upsampled, min-max normalised per token
      token_labels(pipe.tokenizer, text)  # [(position, token)]

- ``text``: ``encode_prompts`` (the pipeline's own encoding; SDXL: prompt + pooled embeds),
  ``injected_tokens`` (learned token vectors at placeholder positions), spaCy noun chunks /
  entity groups and their CLIP token positions.
- ``switch``: ``PromptSwitch(at_step, embeds)`` — a step callback that swaps the conditional
  prompt embeddings (SDXL: and pooled) so sampler step ``at_step`` is the first with the new
  prompt (Prompt Queuing; I2H/H2I switching).
- ``method``: ``ControlledMethod``, the ``Method`` base for methods built from controls.
"""

from .controls import (
    Amplify,
    KeyMix,
    ObjectFocusMask,
    Temperature,
    TokenReweight,
    ValueMix,
    cosine_curve,
    linear_curve,
    token_weights,
)
from .layers import LayerInfo, LayerSelector, attention_layers
from .maps import CrossAttentionMaps, token_labels
from .method import ControlledMethod
from .processor import AttentionControl, AttentionController, ControlledAttnProcessor, LayerCall
from .steps import StepState, StepWindow
from .switch import PromptSwitch
from .text import PromptEmbeds, char_span_tokens, encode_prompts, entity_groups, injected_tokens, noun_phrases

__all__ = [
    "Amplify", "AttentionControl", "AttentionController", "ControlledAttnProcessor", "ControlledMethod",
    "CrossAttentionMaps", "LayerCall", "LayerInfo", "LayerSelector", "ObjectFocusMask", "PromptEmbeds", "PromptSwitch",
    "StepState", "StepWindow", "Temperature", "TokenReweight", "ValueMix", "KeyMix", "attention_layers",
    "char_span_tokens", "cosine_curve", "encode_prompts", "entity_groups", "injected_tokens",
    "linear_curve", "noun_phrases", "token_labels", "token_weights",
]
