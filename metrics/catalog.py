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
}
