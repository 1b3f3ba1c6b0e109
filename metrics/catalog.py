"""Built-in scorers: name → ``module:Class`` (imported only when used).

Each target is a :class:`t2ibench.metrics.common.Scorer` subclass; a suite's metric spec
``{name, params}`` builds ``Class(**params)``. The torchmetrics-style Metric classes and the
functional forms live in the same modules.
"""

CATALOG: dict[str, str] = {
    "fid": "t2ibench.metrics.frechet:FIDScorer",
    "fid_tsa": "t2ibench.metrics.fid_reference:FIDPerTSAScorer",
    "clip_score": "t2ibench.metrics.clip_score:CLIPScoreScorer",
    "image_reward": "t2ibench.metrics.image_reward:ImageRewardScorer",
    "fairness": "t2ibench.metrics.fairness:FairnessScorer",
    "alignment": "t2ibench.metrics.alignment:AlignmentScorer",
    "ta": "t2ibench.metrics.text_alignment:TextAlignmentScorer",
    "dreamsim": "t2ibench.metrics.dreamsim:DreamSimScorer",
    "vqa_alignment": "t2ibench.metrics.vqa_alignment:VQAAlignmentScorer",
}

#: Built-in reference sets (FID references, labelled classifier-accuracy sets), keyed by the
#: ``module:callable`` the shipped suites name, so reading a run directory with built-in names
#: only (``t2ibench score`` without ``--trust-remote-code``) still resolves them.
REFERENCE_SETS: dict[str, str] = {
    "t2ibench.metrics.tinyworld:heldout_references": "t2ibench.metrics.tinyworld:heldout_references",
    "t2ibench.metrics.tinyworld:tsa_references": "t2ibench.metrics.tinyworld:tsa_references",
}
