"""Plain value types shared across the package: prompts, sampler settings, image jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a prompt set.

    id: stable identifier inside its set (file-name safe); text: the prompt as given;
    meta: set-specific facts (COCO image id, tSA and its categories, tinyworld labels, ...).
    """

    id: str
    text: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplerConfig:
    """How to denoise: scheduler name, steps, classifier-free guidance scale, pixel size."""

    scheduler: str = "default"
    steps: int = 50
    guidance: float = 7.5
    height: int = 512
    width: int = 512


@dataclass(frozen=True)
class ImageJob:
    """One image to make: the prompt, its index among the prompt's images, and its seed.

    The seed is derived from (suite seed, prompt set, prompt id, index) and does not depend on
    the method, so methods are compared on the same initial noise.
    """

    method: str  # the method's label in the suite
    prompt_set: str
    prompt: PromptItem
    index: int
    seed: int

    @property
    def key(self) -> str:
        """Run-directory relative stem: ``<method>/<prompt_set>/<prompt_id>-<index>``."""
        return f"{self.method}/{self.prompt_set}/{self.prompt.id}-{self.index:04d}"


@dataclass
class GeneratedImage:
    """A method's output for one job: the image and what the method wants recorded."""

    image: Any  # PIL.Image.Image
    meta: dict[str, Any] = field(default_factory=dict)
