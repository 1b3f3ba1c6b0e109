"""Suites: a YAML file validated into typed objects (HELM-style: a run is built from a spec).

A suite names the model, the prompt sets, the methods and the metrics, the sampler and the
seed. Every validation error is one line naming the file, the key, the value and what was
expected. ``suite_hash`` covers everything that changes an image or a score.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from .errors import UserError
from .fileio import read_user_file
from .paths import NAME_PATTERN, check_name  # noqa: F401  (NAME_PATTERN: re-exported)
from .types import SamplerConfig
from .yaml_input import load_yaml

#: upper bounds: a value beyond them is a typo or a request no machine can serve
MAX_SIDE = 4096  # pixels, height and width
MAX_BATCH = 256  # images per pipeline call
MAX_IMAGES_PER_PROMPT = 10_000
#: a registered name (``sd``, ``clip_score``) or ``package.module:Attribute.path``
TARGET_PATTERN = (r"^(?:[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}"
                  r"|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
TARGET_EXPECTED = "a registered name or module:Attribute"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_target(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(TARGET_PATTERN, name):
        raise ValueError(f"not {TARGET_EXPECTED}")
    return name


def _checked_label(label: str, name: str) -> str:
    """The label (default: the name with ":" as "."), checked as one file name."""
    label = label or name.replace(":", ".")
    try:
        return check_name(label)
    except ValueError as exc:
        source = f"label {label!r}" + ("" if label == name else f" (from name {name!r})")
        raise ValueError(f"{source} {exc}") from None


class SamplerSpec(_Spec):
    scheduler: str = "default"
    steps: int = Field(50, gt=0, le=10_000)
    guidance: float = Field(7.5, ge=0, le=1000, allow_inf_nan=False)
    height: int = Field(512, gt=0, le=MAX_SIDE, multiple_of=8)
    width: int = Field(512, gt=0, le=MAX_SIDE, multiple_of=8)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        from .models import SCHEDULERS

        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler; expected one of {sorted(SCHEDULERS)}")
        return name

    def config(self) -> SamplerConfig:
        return SamplerConfig(**self.model_dump())


class PromptSetSpec(_Spec):
    name: str
    dataset: str
    params: dict[str, Any] = Field(default_factory=dict)
    limit: Optional[int] = Field(None, gt=0)
    sample_seed: int = 0
    #: images per prompt of this set (overrides the suite's ``images_per_prompt``): e.g. many
    #: alignment prompts with one image each beside few fairness prompts with many images each
    images_per_prompt: Optional[int] = Field(None, gt=0, le=MAX_IMAGES_PER_PROMPT)

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))
    _dataset = field_validator("dataset")(classmethod(lambda cls, v: _check_target(v)))


class _LabelledSpec(_Spec):
    """A registered method or metric (``name``) under a ``label`` of its own (default: the name),
    with its ``params`` and the prompt sets it applies to (None: all)."""

    name: str
    label: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    prompt_sets: Optional[list[str]] = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_target(v)))

    @model_validator(mode="after")
    def _default_label(self) -> "_LabelledSpec":
        object.__setattr__(self, "label", _checked_label(self.label, self.name))
        return self


class MethodSpec(_LabelledSpec):
    #: classifier-free guidance scale for this entry's images (default: the suite sampler's);
    #: several entries of one method with different values make a guidance sweep
    guidance: Optional[float] = Field(None, ge=0, le=1000, allow_inf_nan=False)


class MetricSpec(_LabelledSpec):
    pass


class AnalysisSpec(_Spec):
    """An analysis ``run`` writes into ``RUN/analysis/<label>/`` after scoring (for the report).

    ``maps``: per-word cross-attention maps (DAAM aggregation) of ``prompt`` generated with each
    of ``seeds`` under the suite's sampler, as ``t2ibench analyze maps --prompt`` writes them."""

    kind: Literal["maps"]
    label: str
    prompt: str = Field(min_length=1, max_length=1000)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=16)

    _label = field_validator("label")(classmethod(lambda cls, v: check_name(v)))


class Suite(_Spec):
    name: str
    description: str = ""
    model: str
    #: optional folder of a diffusers ``AutoencoderKL`` to use instead of the model's own VAE
    #: (e.g. an fp16-safe SDXL VAE); absent from the canonical form when not set
    vae: Optional[str] = None
    #: weights dtype of the pipeline: ``auto`` = fp16 on CUDA, fp32 on CPU (``generate --precision``
    #: overrides it); absent from the canonical form when ``auto``
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    seed: int = 0
    images_per_prompt: int = Field(1, gt=0, le=MAX_IMAGES_PER_PROMPT)
    batch_size: int = Field(8, gt=0, le=MAX_BATCH)
    sampler: SamplerSpec = SamplerSpec()
    prompt_sets: list[PromptSetSpec] = Field(min_length=1)
    methods: list[MethodSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(default_factory=list)
    reference: Optional[str] = None  # the method deltas are taken against; None: "sd" when the suite has it
    #: analyses ``run`` writes for the report; they change no image or score
    analyses: list[AnalysisSpec] = Field(default_factory=list, max_length=16)

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))

    @field_validator("prompt_sets", "methods", "metrics", "analyses")
    @classmethod
    def _unique(cls, items: list) -> list:
        seen: set[str] = set()
        for i, item in enumerate(items):
            key = getattr(item, "label", "") or item.name
            if key in seen:
                raise ValueError(f"duplicate name/label {key!r} at position {i}")
            seen.add(key)
        return items

    @model_validator(mode="after")
    def _known_prompt_sets(self) -> "Suite":
        names = {p.name for p in self.prompt_sets}
        targets: list[tuple[str, Sequence[_LabelledSpec]]] = [("methods", self.methods), ("metrics", self.metrics)]
        for kind, items in targets:
            for i, item in enumerate(items):
                for ps in item.prompt_sets or []:
                    if ps not in names:
                        raise ValueError(
                            f"{kind}[{i}].prompt_sets names {ps!r}, which is not a prompt set of this suite "
                            f"(expected one of {sorted(names)})"
                        )
        return self

    @model_validator(mode="after")
    def _known_reference(self) -> "Suite":
        if self.reference is not None and self.reference not in {m.label for m in self.methods}:
            raise ValueError(f"reference {self.reference!r} is not a method label of this suite "
                             f"(expected one of {[m.label for m in self.methods]})")
        return self

    # -- derived ------------------------------------------------------------------------------
    def canonical(self) -> dict:
        data = self.model_dump(mode="json")
        for optional in ("vae", "reference", "analyses"):
            if not data.get(optional):
                data.pop(optional, None)  # suites without the key keep the hash they had before it existed
        if data.get("precision") == "auto":
            data.pop("precision")
        return data

    def reference_method(self) -> str | None:
        """The method label deltas are taken against: ``reference``, else ``sd`` if the suite runs it."""
        if self.reference is not None:
            return self.reference
        return "sd" if any(m.label == "sd" for m in self.methods) else None

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of the suite."""
        blob = json.dumps(self.canonical(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.canonical(), sort_keys=False, allow_unicode=True)

    def sampler_of(self, method: MethodSpec) -> SamplerConfig:
        """The sampler settings of ``method``'s images (its guidance override applied)."""
        sampler = self.sampler.config()
        if method.guidance is not None:
            sampler = dataclasses.replace(sampler, guidance=method.guidance)
        return sampler

    def images_per_prompt_of(self, prompt_set: PromptSetSpec) -> int:
        return prompt_set.images_per_prompt or self.images_per_prompt

    def prompt_sets_of(self, method: MethodSpec) -> list[PromptSetSpec]:
        wanted = method.prompt_sets
        return [p for p in self.prompt_sets if wanted is None or p.name in wanted]

    def select_methods(self, labels: list[str]) -> "Suite":
        """The suite restricted to the methods with these labels (or names)."""
        known = {m.label: m for m in self.methods} | {m.name: m for m in self.methods}
        missing = [x for x in labels if x not in known]
        if missing:
            raise UserError(f"--methods: {missing[0]!r} is not in suite {self.name!r}; expected one of {[m.label for m in self.methods]}")
        chosen = [m for m in self.methods if m.label in labels or m.name in labels]
        return self.model_copy(update={"methods": chosen})


def _format_error(source: str, err: ErrorDetails, data: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-after"))
    value: Any = data
    for part in err.get("loc", ()):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            value = "<missing>" if err.get("type") == "missing" else value
            break
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    shown = value if isinstance(value, (str, int, float, bool, type(None))) else "..."
    where = f"{source}: {loc}" if loc else source
    if err.get("type") == "missing":
        return f"{where}: missing; this key is required"
    if err.get("type") == "extra_forbidden":
        return f"{where}: unknown key; check the spelling (see `t2ibench suites` and the README)"
    return f"{where} = {shown!r}: {msg}"


def parse_suite(data: Any, source: str) -> Suite:
    """Validate a parsed YAML document into a ``Suite`` (errors name ``source``)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of suite keys at the top level, got {type(data).__name__}")
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_error(source, exc.errors()[0], data)) from None


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file."""
    path = Path(path)
    text = read_user_file(path, what="suite file", text=True,
                          expected="a UTF-8 YAML file or a shipped suite name (`t2ibench suites`)")
    data = load_yaml(text, str(path), "a YAML mapping of suite keys")
    return parse_suite(data, str(path))


def shipped_suites() -> dict[str, Path]:
    """Shipped suite name → path of its YAML file inside the package."""
    folder = resources.files("t2ibench") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def resolve_suite(name_or_path: str) -> Suite:
    """A shipped suite by name, or a YAML file by path."""
    shipped = shipped_suites()
    if name_or_path in shipped and not Path(name_or_path).exists():
        return load_suite(shipped[name_or_path])
    if not Path(name_or_path).exists() and not name_or_path.endswith((".yaml", ".yml")):
        raise UserError(f"unknown suite {name_or_path!r}: not a file and not one of the shipped suites {sorted(shipped)}")
    return load_suite(name_or_path)
