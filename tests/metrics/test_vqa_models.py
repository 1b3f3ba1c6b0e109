"""transformers answering backends: tiny random-init BLIP-VQA and OWLv2 built from their configs,
saved with save_pretrained and loaded through the scorer's loader, fp32 and bf16 on the CPU and
on ``meta``; GenEval's detection rules against hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._pytree import tree_leaves

from t2ibench.metrics.common import NotAvailable
from t2ibench.metrics.questions import prompt_questions
from t2ibench.metrics.vqa_alignment import VQAAlignmentScorer
from t2ibench.metrics.vqa_models import (
    load_detector_backend,
    relative_position,
    select_detections,
)

from _helpers.devices import MixedDevices

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "is", "are", "there", "a", "dog", "dogs",
         "?", "the", "red", "how", "many", "2", "cat"]
TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)


def _images(n: int) -> list:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    """A tiny BLIP-VQA whose decoder always prefers "yes" (output bias), saved like a hub folder."""
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    root = tmp_path_factory.mktemp("blip")
    (root / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tok = BertTokenizer(str(root / "vocab.txt"), bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    torch.manual_seed(0)
    config = BlipConfig(vision_config=dict(TINY, image_size=32, patch_size=8), projection_dim=32,
                        text_config=dict(TINY, vocab_size=len(WORDS), max_position_embeddings=64, bos_token_id=5,
                                         pad_token_id=0, sep_token_id=3, eos_token_id=3))
    model = BlipForQuestionAnswering(config).eval()
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.decoder.bias
        bias.zero_()
        bias[WORDS.index("yes")] = 100.0
    out = root / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def owl_dir(tmp_path_factory):
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    from t2ibench.tokenizer import clip_tokenizer

    tok = clip_tokenizer()
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    torch.manual_seed(0)
    config = Owlv2Config(text_config=dict(TINY, vocab_size=tok.vocab_size, max_position_embeddings=16),
                         vision_config=dict(TINY, image_size=32, patch_size=8), projection_dim=32)
    out = tmp_path_factory.mktemp("owl") / "model"
    Owlv2ForObjectDetection(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    """A tiny LLaVA (CLIP vision tower + Llama) with a chat template, saved like a hub folder."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from t2ibench.tokenizer import clip_tokenizer

    tok = clip_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
                "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} answer:{% endif %}")
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                               tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=template,
                               image_token="<image>", num_additional_image_tokens=1)
    torch.manual_seed(0)
    config = LlavaConfig(vision_config=dict(TINY, model_type="clip_vision_model", image_size=32, patch_size=8),
                         text_config=dict(TINY, model_type="llama", vocab_size=len(tok), num_key_value_heads=4,
                                          max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                                          eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id),
                         image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    out = tmp_path_factory.mktemp("vlm") / "model"
    LlavaForConditionalGeneration(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_image_text_to_text_vlm_answers_through_the_scorer(vlm_dir, dtype):
    s = VQAAlignmentScorer(vqa=str(vlm_dir), dtype=dtype, vqa_prompt="{question} One word.", bootstrap=50)
    s.check_available()
    assert type(s.backend).__name__ == "ImageTextToTextVQA"
    assert next(s.backend.model.parameters()).dtype == (torch.bfloat16 if dtype else torch.float32)
    v = s.score(_images(2), [{"prompt": "two red dogs"}, {"prompt": "a cat at night"}])
    assert [len(x["answers"]) for x in v] == [3, 2]
    # the answer is the generated continuation only, never the prompt echoed back
    assert all(isinstance(a, str) and "One word" not in a for x in v for a in x["answers"])
    assert s.backend.processor.tokenizer.padding_side == "left"
    assert "{question} One word." in s.conventions()["vqa prompt"]


def test_missing_models_are_not_available(tmp_path):
    with pytest.raises(NotAvailable, match="VQA model .* not found locally"):
        VQAAlignmentScorer(vqa=str(tmp_path / "absent")).check_available()
    with pytest.raises(NotAvailable, match="detector .* not found locally"):
        load_detector_backend(str(tmp_path / "absent"))


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_blip_vqa_answers_through_the_scorer(blip_dir, dtype):
    s = VQAAlignmentScorer(vqa=str(blip_dir), dtype=dtype, bootstrap=50)
    s.check_available()
    want = torch.bfloat16 if dtype else torch.float32
    assert next(s.backend.model.parameters()).dtype == want
    v = s.score(_images(2), [{"prompt": "two red dogs"}, {"prompt": "a cat"}])
    # the decoder's bias makes every answer start with "yes": yes/no questions right, the count wrong
    assert [q["text"] for q in v[0]["questions"]] == ["Are there dogs?", "Are the dogs red?", "How many red dogs are there?"]
    assert all(a.split()[0] == "yes" for a in v[0]["answers"])
    assert v[0]["verdicts"] == [True, True, False] and v[1]["verdicts"] == [True]
    conv = s.conventions()
    assert conv["vqa model"] == str(blip_dir) and conv["vqa dtype"] == ("bfloat16" if dtype else "float32")


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_detector_answers_presence_counts_and_directions(owl_dir, blip_dir, dtype):
    s = VQAAlignmentScorer(vqa=str(blip_dir), detector=str(owl_dir), dtype=dtype, detector_threshold=0.0,
                           counting_threshold=0.0, max_objects=3, bootstrap=50)
    v = s.score(_images(1), [{"prompt": "two red dogs to the left of a cat"}])[0]
    kinds = [q["kind"] for q in v["questions"]]
    assert kinds == ["presence", "presence", "color", "count", "relation"]
    got = dict(zip(kinds, v["answers"], strict=True))
    # every box scores above 0 -> present; at most max_objects counted; colour asked to BLIP
    assert v["answers"][:2] == ["yes", "yes"] and got["count"] == "3"
    assert got["color"].split()[0] == "yes" and got["relation"] in ("yes", "no")
    assert "detector rules" in " ".join(s.conventions())


def test_detector_scores_are_read_per_query(owl_dir):
    det = load_detector_backend(str(owl_dir))
    scores, boxes = det.detect(_images(1)[0], ["cat", "dog"])
    assert scores.shape == (16, 2) and boxes.shape == (16, 4)  # (32 / 8)^2 patches
    assert ((scores >= 0) & (scores <= 1)).all()
    got = det.answer(_images(1), [list(prompt_questions("a red cat at night").questions)])[0]
    assert got[0] in ("yes", "no") and got[1:] == [None, None]  # colour and time: not a detector's


def test_geneval_selection_threshold_order_cap_and_overlap():
    scores = np.array([0.2, 0.95, 0.5, 0.9, 0.31])
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59], [0, 0, 9, 9]], dtype=float)
    assert select_detections(scores, boxes, 0.3) == [1, 3, 2, 4]
    assert select_detections(scores, boxes, 0.9) == [1]  # strictly above the counting threshold
    assert select_detections(scores, boxes, 0.3, max_objects=2) == [1, 3]
    # IoU of boxes 1 and 2: 81 / (100 + 100 - 81) = 0.68 -> dropped at 0.5; box 4 equals box 1 (IoU 1)
    assert select_detections(scores, boxes, 0.3, nms_threshold=0.5) == [1, 3]


def test_geneval_relative_position():
    a, b = np.array([0, 40, 20, 60]), np.array([60, 40, 80, 60])  # a's centre 60 px left of b's, same row
    assert relative_position(a, b) == {"left"} and relative_position(b, a) == {"right"}
    assert relative_position(np.array([40, 0, 60, 20]), np.array([40, 60, 60, 80])) == {"above"}
    # centres 10 px apart, boxes 20 px wide: shrunk by 0.1 * 40 = 4 px, 6 / 10 > 0.5 -> left
    assert relative_position(np.array([0, 0, 20, 20]), np.array([10, 0, 30, 20])) == {"left"}
    # shrunk below zero on both axes -> no relation
    assert relative_position(np.array([0, 0, 20, 20]), np.array([2, 1, 22, 21])) == set()
    # a diagonal offset (1, 1): both components 0.707 > 0.5 -> left and above
    assert relative_position(np.array([0, 0, 2, 2]), np.array([40, 40, 42, 42])) == {"left", "above"}


@pytest.mark.parametrize("which", ["vqa", "detector", "vlm"])
def test_backends_run_on_the_scorers_device(blip_dir, owl_dir, vlm_dir, which):
    """On ``meta``: every forward input on meta, no op mixing devices; only reading a value on the host fails."""
    s = VQAAlignmentScorer(vqa=str(vlm_dir if which == "vlm" else blip_dir),
                           detector=str(owl_dir) if which == "detector" else None, bootstrap=10)
    s.check_available()
    model = s.backend.routes["presence"].model if which == "detector" else s.backend.model
    assert s.to("meta") is s
    assert all(p.device.type == "meta" for p in model.parameters())
    seen: list[set[str]] = []

    def record(module, args, kwargs):
        seen.append({t.device.type for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)})

    hooks = [sub.register_forward_pre_hook(record, with_kwargs=True) for sub in model.modules()]
    if hasattr(model, "generate"):  # transformers' generate reads its own special-token tensors on the host
        generate = model.generate   # before the first forward on meta: record what the backend hands it

        def recording_generate(*args, **kwargs):
            record(model, args, kwargs)
            return generate(*args, **kwargs)

        model.generate = recording_generate
    try:
        with MixedDevices() as mode, pytest.raises((NotImplementedError, RuntimeError), match="meta"):
            s.score(_images(1), [{"prompt": "two dogs"}])
    finally:
        for h in hooks:
            h.remove()
    assert not mode.mixed, mode.mixed[:5]
    assert seen and all(d <= {"meta"} for d in seen), seen
