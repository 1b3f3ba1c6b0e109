"""Answering backends on local transformers models: a BLIP-VQA-class model and a zero-shot detector.

Models come from a local folder or the Hugging Face cache (``local_files_only``; nothing is
downloaded); a missing model is :class:`NotAvailable` with the reason.

- :class:`BlipVQA` (``BlipForQuestionAnswering``): each question as written, greedy decoding of
  at most ``max_new_tokens`` tokens; the answer is normalised by the scorer (VQA-v2 rules).
- :class:`ImageTextToTextVQA` (any ``AutoModelForImageTextToText`` VLM with a chat template):
  the question in the short-answer prompt :data:`SHORT_ANSWER`, one image per conversation,
  greedy decoding; only the new tokens are the answer.
- :class:`ZeroShotDetector` (``Owlv2ForObjectDetection``-class: text queries, per-patch boxes)
  with GenEval's rules (djghosh13/geneval ``evaluation/evaluate_images.py``): a detection counts
  when its score exceeds ``threshold`` (0.3), or ``counting_threshold`` (0.9) for count
  questions; detections sorted by score, at most ``max_objects`` (16), and a detection
  overlapping a kept one by IoU > ``nms_threshold`` (1.0: none removed) dropped; a position is
  read from the most confident detection of each object, centre offset shrunk by
  ``position_threshold`` x (the two box sizes), relation when the shrunk unit offset is beyond
  0.5 along that axis. The query is "a photo of a <target>" (target = the noun with its colour
  and texture words). It answers presence, counts and left/right/above/below; other questions
  get None (answered by the VQA model through routing).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from t2ibench.metrics.common import NotAvailable
from t2ibench.metrics.questions import Question, Target

DTYPES = {None: torch.float32, "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
QUERY_TEMPLATE = "a photo of a {}"
SHORT_ANSWER = "{question} Answer with yes or no, a number, or one word."


def _dtype(dtype: str | None) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}; expected one of {sorted(k for k in DTYPES if k)}")
    return DTYPES[dtype]


def _load(cls, processor_cls, name_or_path: str, revision: str | None, dtype: str | None, what: str):
    try:
        model = cls.from_pretrained(name_or_path, revision=revision, local_files_only=True, dtype=_dtype(dtype))
        processor = processor_cls.from_pretrained(name_or_path, revision=revision, local_files_only=True)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith("dtype"):
            raise
        raise NotAvailable(f"{what} {name_or_path!r} not found locally (a local directory or the HF cache; "
                           "no download here)") from None
    return model.eval(), processor


class _ModelHolder:
    model: Any

    def to(self, device: str | torch.device):
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        from t2ibench.placement import module_device

        return module_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class _FreeFormVQA(_ModelHolder):
    """A VQA model answering each (image, question) pair in free form through ``ask``."""

    model_name: str
    revision: str | None
    max_new_tokens: int
    prompt: str  # how the question is put to the model, for the conventions

    def conventions(self) -> dict[str, Any]:
        return {"vqa model": self.model_name, "vqa revision": self.revision or "as stored", "vqa prompt": self.prompt,
                "vqa decoding": f"greedy, <= {self.max_new_tokens} new tokens",
                "vqa dtype": str(self.dtype).replace("torch.", "")}

    def ask(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def answer(self, images: Sequence[Any], questions: Sequence[Sequence[Question]]) -> list[list[str | None]]:
        pairs = [(im, q.text) for im, qs in zip(images, questions, strict=True) for q in qs]
        got = iter(self.ask([p[0] for p in pairs], [p[1] for p in pairs])) if pairs else iter(())
        return [[next(got) for _ in qs] for qs in questions]


class BlipVQA(_FreeFormVQA):
    """A BLIP-VQA-class model answering every question in free form (see module doc)."""

    def __init__(self, model, processor, name: str, revision: str | None = None, max_new_tokens: int = 10,
                 batch_size: int = 16) -> None:
        self.model, self.processor, self.name = model, processor, f"{name} (VQA)"
        self.model_name, self.revision = name, revision
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.prompt = "the question as written"

    @torch.inference_mode()
    def ask(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        """One free-form answer per (image, question) pair."""
        out: list[str] = []
        dtype = self.dtype
        for i in range(0, len(questions), self.batch_size):
            ims = [im.convert("RGB") for im in images[i:i + self.batch_size]]
            enc = self.processor(images=ims, text=list(questions[i:i + self.batch_size]), return_tensors="pt", padding=True)
            ids = self.model.generate(pixel_values=enc["pixel_values"].to(self.device, dtype),
                                      input_ids=enc["input_ids"].to(self.device),
                                      attention_mask=enc["attention_mask"].to(self.device),
                                      max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
            out += [s.strip() for s in self.processor.batch_decode(ids.cpu(), skip_special_tokens=True)]
        return out


class ImageTextToTextVQA(_FreeFormVQA):
    """A chat VLM answering each question in the short-answer prompt (see module doc)."""

    def __init__(self, model, processor, name: str, revision: str | None = None, template: str = SHORT_ANSWER,
                 max_new_tokens: int = 10, batch_size: int = 8) -> None:
        self.model, self.processor, self.name = model, processor, f"{name} (VLM)"
        self.model_name, self.revision, self.template = name, revision, template
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.prompt = f"chat template, image then {template!r}"
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # a decoder-only batch continues from its last token

    @torch.inference_mode()
    def ask(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        out: list[str] = []
        dtype = self.dtype
        for i in range(0, len(questions), self.batch_size):
            chats = [[{"role": "user", "content": [{"type": "image"},
                                                   {"type": "text", "text": self.template.format(question=q)}]}]
                     for q in questions[i:i + self.batch_size]]
            text = self.processor.apply_chat_template(chats, add_generation_prompt=True, tokenize=False)
            ims = [im.convert("RGB") for im in images[i:i + self.batch_size]]
            enc = self.processor(images=ims, text=text, return_tensors="pt", padding=True)
            enc = {k: v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device) for k, v in enc.items()}
            ids = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
            new = ids[:, enc["input_ids"].shape[1]:].cpu()
            out += [s.strip() for s in self.processor.batch_decode(new, skip_special_tokens=True)]
        return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """GenEval's IoU (pixel boxes, inclusive corners: +1)."""
    def area(box) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def relative_position(a: np.ndarray, b: np.ndarray, position_threshold: float = 0.1) -> set[str]:
    """GenEval: the directions of box ``a`` (x0, y0, x1, y1; y down) relative to box ``b``:
    subset of {"left", "right", "above", "below"}."""
    boxes = np.array([a, b], dtype=np.float64)[:, :4].reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left")
    if dx > 0.5:
        rel.add("right")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def select_detections(scores: np.ndarray, boxes: np.ndarray, threshold: float, nms_threshold: float = 1.0,
                      max_objects: int = 16) -> list[int]:
    """GenEval's selection: indices with score > threshold, by decreasing score, at most
    ``max_objects``, each with IoU <= ``nms_threshold`` to every kept one."""
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > threshold][:max_objects]
    kept: list[int] = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= nms_threshold for k in kept):
            kept.append(i)
    return kept


def _phrase(t: Target) -> str:
    return " ".join([*t.colors, *t.textures, t.noun])


class ZeroShotDetector(_ModelHolder):
    """An OWLv2-class detector answering presence, counts and directions (see module doc)."""

    kinds = ("presence", "count", "relation")

    def __init__(self, model, processor, name: str, revision: str | None = None, threshold: float = 0.3,
                 counting_threshold: float = 0.9, nms_threshold: float = 1.0, position_threshold: float = 0.1,
                 max_objects: int = 16) -> None:
        self.model, self.processor, self.name = model, processor, f"{name} (detector)"
        self.model_name, self.revision = name, revision
        self.threshold, self.counting_threshold, self.nms_threshold = threshold, counting_threshold, nms_threshold
        self.position_threshold, self.max_objects = position_threshold, max_objects

    def conventions(self) -> dict[str, Any]:
        return {"detector model": self.model_name, "detector revision": self.revision or "as stored",
                "detector query": QUERY_TEMPLATE.format("<target>"),
                "detector rules": (f"GenEval: score > {self.threshold} (counts > {self.counting_threshold}), "
                                   f"NMS IoU {self.nms_threshold}, <= {self.max_objects} objects, "
                                   f"position threshold {self.position_threshold}, most confident box per object")}

    @torch.inference_mode()
    def detect(self, image: Any, phrases: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scores (P, Q) per predicted box and text query, and boxes (P, 4) x0, y0, x1, y1 in pixels
        of the image padded to a square (OWLv2's input), both float64 on the host."""
        enc = self.processor(text=[[QUERY_TEMPLATE.format(p) for p in phrases]], images=[image.convert("RGB")],
                             return_tensors="pt", padding=True)
        dtype = self.dtype
        out = self.model(input_ids=enc["input_ids"].to(self.device), attention_mask=enc["attention_mask"].to(self.device),
                         pixel_values=enc["pixel_values"].to(self.device, dtype))
        scores = torch.sigmoid(out.logits[0].float())  # (P, Q)
        cx, cy, w, h = out.pred_boxes[0].float().unbind(-1)  # normalised to the padded square
        side = float(max(image.size))
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * side
        return scores.cpu().double().numpy(), boxes.cpu().double().numpy()

    def answer(self, images: Sequence[Any], questions: Sequence[Sequence[Question]]) -> list[list[str | None]]:
        out: list[list[str | None]] = []
        for image, qs in zip(images, questions, strict=True):
            targets = sorted({_phrase(t) for q in qs if q.kind in self.kinds for t in (q.subject, q.object) if t})
            if not targets:
                out.append([None] * len(qs))
                continue
            scores, boxes = self.detect(image, targets)
            col = {p: j for j, p in enumerate(targets)}

            def found(t: Target, threshold: float, scores=scores, boxes=boxes, col=col) -> list[int]:
                # this image's detections, bound now (the function is only called for this image)
                return select_detections(scores[:, col[_phrase(t)]], boxes, threshold, self.nms_threshold, self.max_objects)

            row: list[str | None] = []
            for q in qs:
                if q.subject is None or q.kind not in self.kinds:
                    row.append(None)
                elif q.kind == "presence":
                    row.append("yes" if found(q.subject, self.threshold) else "no")
                elif q.kind == "count":
                    row.append(str(len(found(q.subject, self.counting_threshold))))
                elif q.object is None or q.value not in ("left", "right", "above", "below"):
                    row.append(None)
                else:
                    a, b = found(q.subject, self.threshold), found(q.object, self.threshold)
                    ok = bool(a and b) and q.value in relative_position(boxes[a[0]], boxes[b[0]], self.position_threshold)
                    row.append("yes" if ok else "no")
            out.append(row)
        return out


def load_vqa_backend(name_or_path: str, revision: str | None = None, dtype: str | None = None,
                     template: str | None = None) -> BlipVQA | ImageTextToTextVQA:
    """A local VQA model: BLIP (``model_type`` "blip": ``BlipForQuestionAnswering``) or any
    image-text-to-text VLM (``AutoModelForImageTextToText`` + ``AutoProcessor``)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, BlipForQuestionAnswering, BlipProcessor

    try:
        model_type = AutoConfig.from_pretrained(name_or_path, revision=revision, local_files_only=True).model_type
    except (OSError, ValueError):
        raise NotAvailable(f"VQA model {name_or_path!r} not found locally (a local directory or the HF cache; "
                           "no download here)") from None
    if model_type == "blip":
        model, processor = _load(BlipForQuestionAnswering, BlipProcessor, name_or_path, revision, dtype, "VQA model")
        return BlipVQA(model, processor, name_or_path, revision)
    model, processor = _load(AutoModelForImageTextToText, AutoProcessor, name_or_path, revision, dtype, "VQA model")
    return ImageTextToTextVQA(model, processor, name_or_path, revision, template or SHORT_ANSWER)


def load_detector_backend(name_or_path: str, revision: str | None = None, dtype: str | None = None,
                          **options: Any) -> ZeroShotDetector:
    """A local OWLv2-class zero-shot detector (``Owlv2ForObjectDetection`` + its processor)."""
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    model, processor = _load(Owlv2ForObjectDetection, Owlv2Processor, name_or_path, revision, dtype, "detector")
    return ZeroShotDetector(model, processor, name_or_path, revision, **options)
