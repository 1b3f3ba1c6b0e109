"""tinyworld: a procedural synthetic world and tiny models trained on it, shipped in the package.

Cheap to import (no torch). The parts:
- ``t2ibench.world.render``: the renderer (``render(seed, family)``), vocabularies, bias;
- ``t2ibench.world.sets``: held-out and balanced reference sets from seeds;
- ``t2ibench.world.evaluator``: ``load_evaluator()``, ``Evaluator.predict``, ``check_prompt``;
- ``t2ibench.world.clip``: ``load_clip()`` (the tiny CLIP in float32);
- ``t2ibench.world.train`` (a package: loop, export, one module per stage) / ``evaluate`` / ``cli``:
  ``t2ibench world train|eval|render``; ``modelcards``: the model cards from ``cards/*.md``.
"""

from .paths import clip_dir, evaluator_dir, pipeline_available, pipeline_dir, weights_dir

__all__ = ["pipeline_dir", "clip_dir", "evaluator_dir", "weights_dir", "pipeline_available"]
