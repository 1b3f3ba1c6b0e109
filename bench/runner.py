"""The generation runner: suite → images in a run directory; deterministic, resumable, sharded.

Determinism. Each image's seed is derived from (suite seed, prompt set, prompt id, image
index) alone. Jobs are cut into batches once, globally, in suite order and never across a
(method, prompt set) boundary; a rank takes every ``world_size``-th batch. Every batch is
therefore computed with the same members whatever the number of ranks, and a batch that
was interrupted is regenerated whole (only its missing images are written), so a resumed or
sharded run writes the same bytes as one uninterrupted process on the same hardware.

Safety. Images are written atomically with a sidecar naming their hash (``store``). A
sidecar whose configuration hash differs from the suite's is an error, never a silent mix.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import __version__
from .errors import UserError
from .fileio import atomic_write_json, atomic_write_text
from .image_writer import ImageWriter
from .log import get_logger
from .prompt_sets import load_prompt_set
from .registry import METHODS, METRICS
from .store import RunDir, config_hash
from .suite import MethodSpec, Suite
from .types import ImageJob, PromptItem

#: images per suite: beyond it the plan alone would not fit in memory
MAX_IMAGES = 1_000_000
log = get_logger(__name__)


def derive_seed(suite_seed: int, prompt_set: str, prompt_id: str, index: int) -> int:
    """A 63-bit seed from SHA-256 of ``"{suite_seed}/{prompt_set}/{prompt_id}/{index}"``."""
    digest = hashlib.sha256(f"{suite_seed}/{prompt_set}/{prompt_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Shard:
    """This process's part of the work: rank ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        """From the variables ``accelerate launch`` / torchrun (RANK, WORLD_SIZE) or MPI set."""
        def first(names: tuple[str, ...], default: str) -> str:
            return next((os.environ[n] for n in names if os.environ.get(n, "").strip()), default)

        rank_text = first(("RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), "0")
        world_text = first(("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"), "1")
        return cls._checked(
            rank_text, world_text,
            not_integers=f"rank/world size from the environment ({rank_text!r}/{world_text!r}): expected integers",
            out_of_range=lambda rank, world: f"rank {rank} of world size {world} from the environment: "
                                             "expected 0 <= rank < world size")

    @classmethod
    def _checked(cls, rank_text: str, world_text: str, *, not_integers: str,
                 out_of_range: Callable[[int, int], str]) -> "Shard":
        """Rank ``rank_text`` of ``world_text`` (integers with 0 <= rank < world); otherwise a
        ``UserError`` with the caller's wording."""
        try:
            rank, world = int(rank_text), int(world_text)
        except ValueError:
            raise UserError(not_integers) from None
        if not (world > 0 and 0 <= rank < world):
            raise UserError(out_of_range(rank, world))
        return cls(rank, world)

    @staticmethod
    def launched_by_accelerate() -> bool:
        """Whether ``accelerate launch`` started this process (it always sets ACCELERATE_MIXED_PRECISION)."""
        return "ACCELERATE_MIXED_PRECISION" in os.environ

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"i/n"``: rank i of n (0-based)."""
        not_integers = f"--shard {text!r}: expected i/n with integers, e.g. 0/4"
        parts = text.split("/")
        if len(parts) != 2:
            raise UserError(not_integers)
        return cls._checked(parts[0], parts[1], not_integers=not_integers,
                            out_of_range=lambda rank, world: f"--shard {text!r}: expected 0 <= i < n")


@dataclass
class Batch:
    method: MethodSpec
    prompt_set: str
    jobs: list[ImageJob]


@dataclass
class Plan:
    """All jobs of a suite, cut into batches, with each job's configuration record."""

    suite: Suite
    batches: list[Batch]
    configs: dict[str, dict] = field(default_factory=dict)  # job key -> configuration record

    @property
    def n_images(self) -> int:
        return sum(len(b.jobs) for b in self.batches)

    def for_shard(self, shard: Shard) -> list[Batch]:
        return [b for i, b in enumerate(self.batches) if i % shard.world_size == shard.rank]


def _config_record(suite: Suite, method: MethodSpec, params: dict, ps_name: str, prompt: PromptItem, seed: int) -> dict:
    return {
        "model": suite.model,
        **({"vae": suite.vae} if suite.vae else {}),
        "sampler": {**suite.sampler.model_dump(), "guidance": suite.sampler_of(method).guidance},
        "method_name": method.name,
        "method_params": params,
        "prompt_set": ps_name,
        "prompt": prompt.text,
        "prompt_meta": dict(prompt.meta),
        "seed": seed,
    }


def plan(suite: Suite) -> Plan:
    """Load the prompt sets, build the methods' parameter records, and cut the batches.

    Unknown datasets, methods, method parameters and metrics are reported here, before any work.
    """
    for i, metric in enumerate(suite.metrics):
        METRICS.get(metric.name, where=f"metrics[{i}].name")
    prompts = {
        ps.name: load_prompt_set(ps, where=f"prompt_sets[{i}] ({ps.name})")
        for i, ps in enumerate(suite.prompt_sets)
    }
    total = sum(len(prompts[ps.name]) * suite.images_per_prompt_of(ps) * len([m for m in suite.methods if ps in suite.prompt_sets_of(m)])
                for ps in suite.prompt_sets)
    if total > MAX_IMAGES:
        raise UserError(f"the suite asks for {total} images; at most {MAX_IMAGES} per suite "
                        "(lower prompt_sets[].limit or images_per_prompt, or split the suite)")
    result = Plan(suite, [])
    for mi, mspec in enumerate(suite.methods):
        cls = METHODS.get(mspec.name, where=f"methods[{mi}].name")
        params = cls.build(mspec.params, where=f"methods[{mi}] ({mspec.label})").params
        for ps in suite.prompt_sets_of(mspec):
            jobs = []
            for prompt in prompts[ps.name]:
                for index in range(suite.images_per_prompt_of(ps)):
                    seed = derive_seed(suite.seed, ps.name, prompt.id, index)
                    job = ImageJob(mspec.label, ps.name, prompt, index, seed)
                    result.configs[job.key] = _config_record(suite, mspec, params, ps.name, prompt, seed)
                    jobs.append(job)
            for start in range(0, len(jobs), suite.batch_size):
                result.batches.append(Batch(mspec, ps.name, jobs[start : start + suite.batch_size]))
    return result


def png_bytes(image: Any) -> bytes:
    """PNG encoding of a PIL image (deterministic: no timestamps, default compression)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class GenerateSummary:
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    truncated_prompts: int = 0
    #: torch CPU threads of this process while generating (0: nothing generated)
    threads: int = 0
    #: wall seconds per method label (model loading excluded)
    method_seconds: dict[str, float] = field(default_factory=dict)

    def line(self, out: Path) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        trunc = f", {self.truncated_prompts} prompts truncated to 77 tokens" if self.truncated_prompts else ""
        threads = f", {self.threads} torch threads" if self.threads else ""
        return (
            f"t2ibench: generated {self.written} images ({self.skipped} already done) in "
            f"{self.seconds:.1f} s ({rate:.2f} img/s{threads}){trunc} -> {out}"
        )


def expected_images(the_plan: Plan) -> dict[str, int]:
    """``{"<method label>/<prompt set>": images the suite asks for}`` over the whole plan (every shard)."""
    counts: Counter[str] = Counter(key.rsplit("/", 1)[0] for key in the_plan.configs)
    return dict(sorted(counts.items()))


def prepare_run_dir(run: RunDir, suite: Suite, the_plan: Plan) -> None:
    """Store the resolved suite (keeps every suite ever used) and, in ``run.json``, the images it asks
    for per method and prompt set (so a reader can tell a partial run). Called only after every
    check passed."""
    atomic_write_text(run.path / "suites" / f"{suite.hash}.yaml", suite.to_yaml())
    atomic_write_text(run.path / "suite.yaml", suite.to_yaml())
    atomic_write_json(run.path / "run.json", {"suite": suite.name, "suite_hash": suite.hash, "t2ibench": __version__,
                                              "expected_images": expected_images(the_plan)})


def _stored_suite_hash(run: RunDir) -> str | None:
    """The hash of the suite ``run.json`` and ``suite.yaml`` hold; None if either is missing, damaged
    or they disagree."""
    try:
        stored = run.suite()
    except UserError:
        return None
    return stored.hash if run.run_info().get("suite_hash") == stored.hash else None


def _pending(run: RunDir, batch: Batch, configs: dict[str, dict]) -> list[ImageJob]:
    """Jobs of ``batch`` without a finished image; a finished image of another config is an error."""
    missing = []
    for job in batch.jobs:
        meta = run.read_meta(job.key)
        if meta is None:
            missing.append(job)
        elif meta.get("config_hash") != config_hash(configs[job.key]):
            raise UserError(
                f"{run.meta_path(job.key)} was generated with another configuration "
                f"(config {meta.get('config_hash')} != {config_hash(configs[job.key])}); "
                "expected the same suite: use a new --out directory for a changed suite"
            )
    return missing


def generate(
    suite: Suite,
    out: str | Path,
    *,
    shard: Shard | None = None,
    pipe: Any = None,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
    threads: int | None = None,
) -> GenerateSummary:
    """Generate every image of ``suite`` that ``out`` does not have yet (this shard's part).

    Order: every input is checked (suite, prompt sets, methods, metrics, model on disk, images
    already in ``out``) before the model loads, and ``run.json`` / ``suite.yaml`` are written only
    after the pipeline accepted the sampler settings. threads: torch CPU threads per process
    (None: as set, e.g. by ``OMP_NUM_THREADS``); recorded in every sidecar, since CPU kernels
    round differently with another thread count.
    """
    import torch

    from .placement import resolve_device

    if pipe is None:
        device = str(resolve_device(device))  # an unusable --device is one line before anything is written
    shard = shard or _shard_from_environment()
    if threads is not None:
        torch.set_num_threads(threads)
    run = RunDir(out)
    run.check_contained()  # a link inside it would lead writes out of it
    the_plan = plan(suite)
    if pipe is None:
        _check_model_files(suite)  # a missing model is reported before anything is written
    start = time.perf_counter()  # the summary's seconds include loading the pipeline
    todo, summary, pipe = _open_run(run, suite, the_plan, shard, pipe, device, precision)
    if not todo:
        return summary
    summary.threads = torch.get_num_threads()
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(m) for _, m in todo), unit="img", disable=not progress, position=shard.rank,
               desc=f"generate {shard.rank}/{shard.world_size}" if shard.world_size > 1 else "generate", dynamic_ncols=True)
    writer = ImageWriter(run, png_bytes)  # PNG encoding and writing on a background thread
    try:
        for mspec, group in _by_method(todo):
            method_start = time.perf_counter()
            _generate_method(pipe, suite, the_plan, mspec, group, writer, summary, bar.update)
            summary.method_seconds[mspec.label] = (summary.method_seconds.get(mspec.label, 0.0)
                                                   + time.perf_counter() - method_start)
        writer.close()  # waits for the last writes; a write error is raised here
    finally:
        writer.close(raise_error=False)  # after another error: still finish what was queued
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def _shard_from_environment() -> Shard:
    """This process's shard as ``accelerate launch`` (or torchrun) set it; a warning when launched
    with one process, which does all the work."""
    shard = Shard.from_env()
    if shard.world_size == 1 and Shard.launched_by_accelerate():
        log.warning("t2ibench: warning: started by `accelerate launch` with world size 1: one process does all the "
                    "work, no sharding (on a CPU use `accelerate launch --multi_gpu --num_processes N ...`, "
                    "see the README)")
    return shard


def _check_model_files(suite: Suite) -> None:
    """A ``UserError`` when the suite's model (or VAE) is not on this machine."""
    from .models import TINY_MODELS, resolve_model, resolve_vae

    if suite.model not in TINY_MODELS:
        resolve_model(suite.model)
    if suite.vae:
        resolve_vae(suite.vae)


def _open_run(run: RunDir, suite: Suite, the_plan: Plan, shard: Shard, pipe: Any, device: str | None,
              precision: str) -> tuple[list[tuple[Batch, list[ImageJob]]], GenerateSummary, Any]:
    """The batches of this shard with missing images, the summary so far and the pipeline (loaded
    here when images are missing and none was given), with the run directory prepared for them.
    A run directory created here is removed again when anything fails before it holds a file."""
    from .models import check_resolution, load_pipeline, set_scheduler

    created = not run.path.exists()
    run.ensure_writable()
    try:
        run.clean_stale_temporaries()
        todo = [(b, _pending(run, b, the_plan.configs)) for b in the_plan.for_shard(shard)]
        summary = GenerateSummary(skipped=sum(len(b.jobs) - len(m) for b, m in todo))
        todo = [(b, m) for b, m in todo if m]
        if not todo:
            if _stored_suite_hash(run) != suite.hash:
                # every image is there and matches its configuration (checked above): the run
                # directory now holds this suite (a changed metric list, a damaged run.json)
                prepare_run_dir(run, suite, the_plan)
            return todo, summary, pipe
        if pipe is None:
            pipe = load_pipeline(suite.model, device=device, precision=precision if precision != "auto" else suite.precision,
                                 vae=suite.vae)
        set_scheduler(pipe, suite.sampler.scheduler)
        check_resolution(pipe, suite.sampler.height, suite.sampler.width)
    except BaseException:
        if created:  # leave no half-made run directory behind
            try:
                run.path.rmdir()
            except OSError:
                pass
        raise
    prepare_run_dir(run, suite, the_plan)
    return todo, summary, pipe


def _generate_method(pipe: Any, suite: Suite, the_plan: Plan, mspec: MethodSpec,
                     group: list[tuple[Batch, list[ImageJob]]], writer: ImageWriter, summary: GenerateSummary,
                     advance: Callable[[int], Any]) -> None:
    """Run one method over its batches (set up once, torn down after), submitting each missing
    image with its sidecar to ``writer``."""
    method = METHODS.get(mspec.name).build(mspec.params, where=mspec.label)
    sampler = suite.sampler_of(mspec)
    method.setup(pipe)
    try:
        for batch, missing in group:
            outputs = method.generate(pipe, batch.jobs, sampler)
            if len(outputs) != len(batch.jobs):
                raise RuntimeError(f"method {mspec.name!r} returned {len(outputs)} images for {len(batch.jobs)} jobs")
            wanted = {job.key for job in missing}
            for job, out_img in zip(batch.jobs, outputs, strict=True):
                if job.key not in wanted:
                    continue
                record = the_plan.configs[job.key]
                meta = {**record, **out_img.meta, "method": job.method, "prompt_id": job.prompt.id, "index": job.index,
                        "config_hash": config_hash(record), "suite_hash": suite.hash, "height": sampler.height,
                        "width": sampler.width, "torch_threads": summary.threads}
                summary.truncated_prompts += bool(out_img.meta.get("truncated_tokens"))
                writer.submit(job.key, out_img.image, meta)
                summary.written += 1
                advance(1)
    finally:
        method.teardown(pipe)


def _by_method(todo: Sequence[tuple[Batch, list[ImageJob]]]) -> Iterable[tuple[MethodSpec, list]]:
    """Consecutive groups of batches sharing a method (one setup/teardown per group)."""
    for _, items in itertools.groupby(todo, key=lambda item: item[0].method.label):
        group = list(items)
        yield group[0][0].method, group

