"""``hard-prompt``: the tSA category written into the prompt (HPS), balanced over categories.

Image ``i`` of a prompt uses ``meta.hard_prompts[i % K]`` ("a headshot of a person smiling").
"""

from __future__ import annotations

from t2ibench.baselines.fairness import category, category_meta
from t2ibench.errors import UserError
from t2ibench.method import Method
from t2ibench.types import ImageJob


class HardPrompt(Method):
    name = "hard-prompt"
    summary = "tSA category words added to the base prompt, equal images per category (baseline)"

    def __init__(self) -> None:
        pass

    def prompt_text(self, job: ImageJob) -> str:
        k, _ = category(job, self.name)
        prompts = job.prompt.meta.get("hard_prompts")
        if not prompts or len(prompts) <= k:
            raise UserError(f"method 'hard-prompt': prompt {job.prompt.id!r} has no meta.hard_prompts[{k}]; expected one per category")
        return str(prompts[k])

    def image_meta(self, job: ImageJob) -> dict:
        return category_meta(job, self.name)
