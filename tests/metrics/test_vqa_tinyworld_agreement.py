"""End to end on tinyworld: images the shipped pipeline generates for the ``align`` prompts, judged
by the question pipeline (tinyworld answering backend) and by the shipped ``alignment`` scorer.
Both read the same evaluator, so "every question right" must match "every labelled fact right"
image by image, up to the existential reading of attribute questions (docs/protocols.md)."""

from __future__ import annotations

import pytest

from t2ibench.metrics.alignment import AlignmentScorer
from t2ibench.metrics.vqa_agreement import agreement_table
from t2ibench.metrics.vqa_alignment import VQAAlignmentScorer
from t2ibench.world.paths import pipeline_available, pipeline_dir


@pytest.mark.slow
@pytest.mark.skipif(not pipeline_available(), reason="tinyworld pipeline weights not shipped")
def test_question_pipeline_agrees_with_the_alignment_scorer_on_generated_images():
    from PIL import Image

    from t2ibench.models import load_pipeline
    from t2ibench.world.evaluate import sample_images
    from t2ibench.world.prompts import alignment_prompts

    prompts = alignment_prompts(per_category=4, sample_seed=0)
    pipe = load_pipeline(str(pipeline_dir()), device="cpu", precision="fp32")
    x = sample_images(pipe, [t for _, t, _ in prompts], list(range(len(prompts))), steps=25, guidance=5.0, batch=24)
    images = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype("uint8")) for im in x]
    metas = [{"prompt": t, "prompt_meta": m} for _, t, m in prompts]
    shipped = [v["correct"] == 1.0 for v in AlignmentScorer(judge="tinyworld").score(images, metas)]
    vqa = VQAAlignmentScorer(vqa="tinyworld").score(images, metas)
    assert all(a is not None for v in vqa for a in v["answers"])  # tinyworld shows everything its prompts say
    mine = [all(v["verdicts"]) for v in vqa]
    rows = {r["group"]: r for r in agreement_table([m["category"] for _, _, m in prompts], shipped, mine, n_boot=200)}
    assert 0.0 < rows["all"]["first"] < 1.0  # the generated images are neither all right nor all wrong
    assert rows["all"]["agreement"] >= 0.9, rows
    assert all(abs(r["difference"]) <= 0.25 for r in rows.values()), rows
