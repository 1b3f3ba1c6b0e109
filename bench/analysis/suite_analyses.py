"""The analyses a suite names (``analyses:``), written by ``t2ibench run`` into ``RUN/analysis/<label>/``
after scoring, where the report shows them. They use the suite's model and sampler and change no
image or score; a folder that already holds an analysis's figures is kept (a rerun resumes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..log import get_logger
from ..suite import AnalysisSpec, Suite

log = get_logger(__name__)


def _maps(pipe: Any, suite: Suite, spec: AnalysisSpec, out: Path) -> list[Path]:
    from .cli import prompt_maps

    written: list[Path] = []
    for seed in spec.seeds:
        if (out / f"maps-seed{seed}.png").is_file():
            continue
        sampler = suite.sampler
        written += prompt_maps(pipe, spec.prompt, seed, out, steps=sampler.steps, guidance=sampler.guidance,
                               height=sampler.height, width=sampler.width)[1]
    return written


def run_analyses(suite: Suite, run_dir: Path, device: str | None = None) -> list[Path]:
    """Write every analysis of ``suite`` into ``run_dir/analysis/<label>/``; returns the new files."""
    if not suite.analyses:
        return []
    from ..models import load_pipeline, set_scheduler

    pipe = load_pipeline(suite.model, device=device, precision="fp32", vae=suite.vae)
    set_scheduler(pipe, suite.sampler.scheduler)
    written: list[Path] = []
    for spec in suite.analyses:
        out = run_dir / "analysis" / spec.label
        out.mkdir(parents=True, exist_ok=True)
        written += _maps(pipe, suite, spec, out)
    for path in written:
        log.info(f"t2ibench: analysis {path}")
    return written
