"""Per-token cross-attention maps of one generation, on top of ``t2ibench.attention``.

``capture_maps`` runs the pipeline once with :class:`t2ibench.attention.CrossAttentionMaps`
installed (DAAM's aggregation: 8x8 layers skipped, each head's map of the conditional rows
upsampled bicubically to the latent grid and clamped at 0) and returns a :class:`TokenMaps`: the
image and ``per_step[s]`` = ``(T, h, w)``, the mean over heads and layers at step s, of the
prompt's tokens (T = 77 positions, 0 = start-of-text).

Words: ``TokenMaps.word_map(word)`` sums the maps of that word's tokens (a word like
"eyeglasses" is two CLIP tokens), over a step range. ``box_shares`` gives the share of each
word's attention mass inside a box (e.g. its object's box from the renderer's labels) and the
box's area share (the chance level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..errors import UserError
from .stats import box_area_share, box_mass_share
from .tokens import find_term, word_token_spans


@dataclass
class TokenMaps:
    """Captured maps of one image: ``per_step[s]`` is (T, h, w) (float32, latent grid)."""

    prompt: str
    image: Any  # PIL image
    per_step: dict[int, torch.Tensor]
    labels: list[tuple[int, str]]  # (position, token string) incl. start/end tokens
    spans: list[tuple[str, list[int]]]  # (word, token positions)
    num_steps: int
    meta: dict[str, Any] = field(default_factory=dict)

    def steps(self) -> list[int]:
        return sorted(self.per_step)

    def aggregate(self, steps: Iterable[int] | None = None) -> torch.Tensor:
        """(T, h, w) summed over ``steps`` (default all captured)."""
        keys = self.steps() if steps is None else [s for s in steps if s in self.per_step]
        if not keys:
            raise UserError(f"steps {list(steps or [])}: none captured; expected some of {self.steps()}")
        return torch.stack([self.per_step[s] for s in keys]).sum(0)

    def word_positions(self, word: str) -> list[int]:
        idx = find_term(self.prompt, word)
        return [p for i in idx for p in self.spans[i][1]]

    def word_map(self, word: str, steps: Iterable[int] | None = None) -> torch.Tensor:
        """(h, w) summed over the word's token positions and the steps."""
        return self.aggregate(steps)[self.word_positions(word)].sum(0)

    def word_maps(self, steps: Iterable[int] | None = None) -> dict[str, torch.Tensor]:
        """Every word of the prompt (label ``i:word`` when a word repeats) -> (h, w) map."""
        agg = self.aggregate(steps)
        out: dict[str, torch.Tensor] = {}
        seen: dict[str, int] = {}
        for w, pos in self.spans:
            n = seen.get(w, 0)
            seen[w] = n + 1
            out[w if n == 0 else f"{w}#{n + 1}"] = agg[pos].sum(0)
        return out


def capture_maps(
    pipe: Any,
    prompt: str,
    seed: int = 0,
    *,
    steps: int = 25,
    guidance: float = 5.0,
    height: int = 64,
    width: int = 64,
    layers: Any = "cross",
    prompt_embeds: Any = None,
    callback: Any = None,
    tensor_inputs: Sequence[str] = ("latents",),
) -> TokenMaps:
    """Generate one image from ``prompt`` (CPU generator seeded ``seed``) capturing every step's maps.

    ``prompt_embeds`` (optional, a ``PromptEmbeds`` or tensor) replaces the text encoding (e.g.
    learned ITI-GEN tokens); ``prompt`` still names the tokens. ``callback``: an extra diffusers
    step callback run before the map capture's own (e.g. a prompt switch), with
    ``tensor_inputs`` the tensors it needs.
    """
    from ..attention import CrossAttentionMaps, token_labels

    maps = CrossAttentionMaps(pipe, layers=layers)
    maps.begin(steps, height, width)
    call: dict[str, Any] = dict(
        num_inference_steps=steps, guidance_scale=guidance, height=height, width=width,
        generator=torch.Generator("cpu").manual_seed(int(seed)), output_type="pil",
    )
    if prompt_embeds is None:
        call["prompt"] = prompt
    else:
        call.update(prompt_embeds.kwargs() if hasattr(prompt_embeds, "kwargs") else {"prompt_embeds": prompt_embeds})

    def cb(p, i, t, kw):
        if callback is not None:
            kw = callback(p, i, t, kw)
        return maps.callback(p, i, t, kw)

    call["callback_on_step_end"] = cb
    call["callback_on_step_end_tensor_inputs"] = list(dict.fromkeys(["latents", *tensor_inputs]))
    with torch.no_grad(), maps.installed():
        image = pipe(**call).images[0]
    per_step = {s: m[0] / max(1, maps.map_counts.get(s, 1)) for s, m in maps.per_step.items()}  # DAAM: mean per step
    return TokenMaps(
        prompt=prompt, image=image, per_step=per_step, labels=token_labels(pipe.tokenizer, prompt),
        spans=word_token_spans(pipe.tokenizer, prompt), num_steps=steps,
        meta={"seed": seed, "steps": steps, "guidance": guidance, "height": height, "width": width},
    )


def box_shares(
    maps: TokenMaps,
    boxes: Mapping[str, Sequence[float]],
    image_size: tuple[int, int],
    steps: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """For each ``{word: box}`` (pixel box ``(x0, y0, x1, y1)`` of an image of ``image_size``),
    the share of the word's attention mass inside its box and the chance level (the box's area
    share); rows ``{word, share, chance, lift}`` with ``lift = share / chance``."""
    rows = []
    for word, box in boxes.items():
        m = maps.word_map(word, steps)
        share = box_mass_share(m.numpy(), box, image_size)
        chance = box_area_share(box, (m.shape[0], m.shape[1]), image_size)
        rows.append({"word": word, "share": share, "chance": chance, "lift": share / chance if chance else float("nan")})
    return rows


def capture_maps_on_image(
    pipe: Any,
    image: Any,
    prompt: str,
    *,
    fractions: Sequence[float] = (0.3, 0.5, 0.7),
    seed: int = 0,
    layers: Any = "cross",
) -> TokenMaps:
    """Cross-attention maps of the denoiser reading a given image (e.g. a render with known boxes).

    The image is VAE-encoded, noised to the training timesteps ``t = fraction · (T − 1)``
    (DDPM forward process, one noise draw from ``seed`` per timestep), and the UNet is called
    once per timestep with ``prompt`` (conditional only, no guidance). ``per_step[i]`` holds the
    maps of timestep ``fractions[i]``. No sampling happens, so the maps describe where the words
    attend on *this* image — the ground-truth counterpart of :func:`capture_maps`.
    """
    from ..attention import CrossAttentionMaps, token_labels
    from .pid import _alphas_cumprod, _eps, encode_image, encode_texts

    lat = encode_image(pipe, image)
    cond = encode_texts(pipe, [prompt])[prompt]
    ac = _alphas_cumprod(pipe)
    maps = CrossAttentionMaps(pipe, layers=layers)
    h, w = image.size[1], image.size[0]
    maps.begin(len(fractions), h, w, cfg=False)
    gen = torch.Generator("cpu").manual_seed(int(seed))
    with torch.no_grad(), maps.installed():
        for i, f in enumerate(fractions):
            if i:
                maps.callback(pipe, i - 1, None, {})
            t = int(round(float(f) * (len(ac) - 1)))
            ab = ac[t].reshape(1)
            eps = torch.randn(lat.shape, generator=gen)
            x_t = ab.sqrt().float() * lat + (1 - ab).sqrt().float() * eps
            _eps(pipe, x_t.to(pipe.unet.device), torch.tensor([float(t)]), [cond], ab)
    per_step = {s: m[0] / max(1, maps.map_counts.get(s, 1)) for s, m in maps.per_step.items()}  # DAAM: mean per step
    return TokenMaps(
        prompt=prompt, image=image, per_step=per_step, labels=token_labels(pipe.tokenizer, prompt),
        spans=word_token_spans(pipe.tokenizer, prompt), num_steps=len(fractions),
        meta={"seed": seed, "fractions": list(fractions), "source": "image"},
    )
