"""``sd``: the pipeline as it is (SDXL in the COCO suite, SD 1.4 in the fairness suite)."""

from t2ibench.method import Method


class PlainPipeline(Method):
    """The unmodified pipeline: prompt in, image out; the reference every method is compared to."""

    name = "sd"
    summary = "the plain pipeline, unmodified (baseline)"
