"""The ``t2ibench`` command line (subcommands: ``t2ibench --help``; usage in README.md).

Bad input is one line on stderr, ``t2ibench: error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import UserError
from .log import get_logger, setup_logging

DEFAULT_SUITE = "tinyworld"
FALLBACK_SUITE = "smoke"
log = get_logger(__name__)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected an integer > 0")
    return value


def _with_added_methods(suite, specs: list[str]):
    """The suite plus methods given as ``NAME[@SET,SET]`` (a registered name or ``module:Class``,
    default parameters, label = the name with ":" as "."; ``@`` restricts the prompt sets)."""
    from .registry import METHODS
    from .suite import parse_suite

    data = suite.canonical()
    for spec in specs:
        name, _, sets = spec.partition("@")
        METHODS.get(name, where=f"--add-method {spec}")
        entry: dict = {"name": name}
        if sets:
            entry["prompt_sets"] = _csv(sets)
        data["methods"].append(entry)
    return parse_suite(data, f"suite {suite.name!r} with --add-method")


def _load_suite(name: str | None, methods: list[str] | None, limit: int | None, add: list[str] | None = None):
    from .suite import resolve_suite

    if name is None:
        name = DEFAULT_SUITE if _default_available() else FALLBACK_SUITE
        if name != DEFAULT_SUITE:
            log.warning(f"t2ibench: the tinyworld default is not available in this installation; running {name!r}")
    suite = resolve_suite(name)
    if methods:
        suite = suite.select_methods(methods)
    if add:
        suite = _with_added_methods(suite, add)
    if limit:
        sets = [p.model_copy(update={"limit": min(limit, p.limit or limit)}) for p in suite.prompt_sets]
        suite = suite.model_copy(update={"prompt_sets": sets})
    return suite


def _default_available() -> bool:
    from .suite import shipped_suites

    if DEFAULT_SUITE not in shipped_suites():
        return False
    try:
        from .models import resolve_model

        resolve_model("tinyworld")
        return True
    except (UserError, ImportError):
        return False


def _generate(args, suite):
    """(run directory, GenerateSummary)."""
    from .runner import Shard, generate

    out = Path(args.out) if args.out else Path("t2ibench-runs") / suite.name
    shard = Shard.parse(args.shard) if getattr(args, "shard", None) else None
    summary = generate(suite, out, shard=shard, device=args.device, precision=args.precision, progress=not args.quiet,
                       threads=args.threads)
    print(summary.line(out))
    return out, summary


def cmd_generate(args) -> int:
    suite = _load_suite(args.suite, args.methods, args.limit, args.add_method)
    _generate(args, suite)
    return 0


def cmd_run(args) -> int:
    """Generate, score, write the tables and the report; print where they are and where time went."""
    import time

    suite = _load_suite(args.suite, args.methods, args.limit, args.add_method)
    args.shard = None
    t0 = time.perf_counter()
    out, summary = _generate(args, suite)
    profile = {"generate": time.perf_counter() - t0}
    profile.update({f"generate {label}": s for label, s in summary.method_seconds.items()})
    from .report.html import write_report
    from .results.scoring import score_run
    from .results.table import write_tables

    # the suite given on this command line is trusted (like a Makefile); the run directory's copy is not read
    aggregates = score_run(out, trust_remote_code=True, device=args.device, suite=suite)
    for label, info in aggregates["metrics"].items():
        profile[f"score {label}"] = info.get("seconds", 0.0)
    t1 = time.perf_counter()
    from .analysis.suite_analyses import run_analyses

    run_analyses(suite, out, device=args.device)
    profile["analyses"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    write_tables([out], out / "results" / "leaderboard.md", "md")
    print(f"t2ibench: results in {out / 'results'}")
    report = write_report(out)
    print(f"t2ibench: report {report}")
    profile["tables + report"] = time.perf_counter() - t1
    profile["total"] = time.perf_counter() - t0
    from .fileio import atomic_write_json

    atomic_write_json(out / "results" / "profile.json", {k: round(v, 2) for k, v in profile.items()})
    log.info("t2ibench: time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in profile.items()))
    return 0


def cmd_suites(args) -> int:
    from .suite import load_suite, shipped_suites

    for name, path in sorted(shipped_suites().items()):
        suite = load_suite(path)
        print(f"{name:28s} {suite.model:10s} {suite.description}")
    return 0


def cmd_methods(args) -> int:
    from .registry import METHODS

    for name in METHODS.names():
        try:
            cls = METHODS.get(name)
            summary = getattr(cls, "summary", "") or (cls.__doc__ or "").strip().splitlines()[0]
            params = ", ".join(f"{k}={v!r}" for k, v in cls.param_defaults().items())
        except Exception as exc:  # a broken plug-in must not hide the others
            summary, params = f"(cannot load: {exc})", ""
        print(f"{name:24s} {summary}" + (f"  [{params}]" if params and args.verbose else ""))
    return 0


def cmd_metrics(args) -> int:
    from .registry import METRICS

    for name in METRICS.names():
        try:
            obj = METRICS.get(name)
            doc = (getattr(obj, "summary", "") or (obj.__doc__ or "").strip().splitlines()[0]) if obj.__doc__ or hasattr(obj, "summary") else ""
        except Exception as exc:
            doc = f"(cannot load: {exc})"
        print(f"{name:24s} {doc}")
    return 0


def _add_generation_args(p: argparse.ArgumentParser, suite_required: bool) -> None:
    if suite_required:
        p.add_argument("suite", help="a shipped suite name (`t2ibench suites`) or a suite YAML file")
    else:
        p.add_argument("suite", nargs="?", default=None, help=f"suite name or YAML file (default: {DEFAULT_SUITE})")
    p.add_argument("--out", help="run directory (default: t2ibench-runs/<suite name>)")
    p.add_argument("--methods", type=_csv, help="only these method labels, comma-separated")
    p.add_argument("--add-method", action="append", metavar="NAME[@SETS]",
                   help="add a method (registered name or module:Class, default parameters) to the suite, "
                        "on all prompt sets or on @set1,set2; repeatable. Images already in --out are kept")
    p.add_argument("--limit", type=_positive_int, help="at most N prompts per prompt set")
    p.add_argument("--device", help="torch device of the pipeline (and, for run, of the scorers); default: cuda if "
                                    "available, else cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="weights dtype (auto: the suite's precision key; if that is auto too, fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=_positive_int,
                   help="torch CPU threads per process (default: as OMP_NUM_THREADS / torch set it); recorded "
                        "per image, since CPU images are byte-identical only with the same thread count")


#: commands that read a suite file the user names on the command line: its code is trusted
SUITE_COMMANDS = {"run", "generate"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2ibench", description="Benchmark attention-level control of text-to-image diffusion.")
    parser.add_argument("--version", action="version", version=f"t2ibench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="generate, score and tabulate a suite (default: the embedded tinyworld suite)")
    _add_generation_args(p, suite_required=False)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("generate", help="generate a suite's images into a run directory (resumable, shardable)")
    _add_generation_args(p, suite_required=True)
    p.add_argument("--shard", help="i/n: this process does shard i of n (accelerate launch sets it for you)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("suites", help="list the shipped suites")
    p.set_defaults(func=cmd_suites)
    p = sub.add_parser("methods", help="list the available methods")
    p.add_argument("-v", "--verbose", action="store_true", help="show parameters and defaults")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("metrics", help="list the available metrics")
    p.set_defaults(func=cmd_metrics)

    # each of these modules adds its own subcommands; those that read a run directory take
    # --trust-remote-code through the parent parser in cliargs
    from .analysis import cli as analysis_cli
    from .baselines.iti_gen import cli as iti_gen_cli
    from .report import cli as report_cli
    from .report import review as review_cli
    from .results import cli as results_cli
    from .world import cli as world_cli

    for module in (results_cli, analysis_cli, report_cli, review_cli, world_cli, iti_gen_cli):
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("default", module="t2ibench")
    setup_logging()  # progress on stderr; level from $T2IBENCH_LOG_LEVEL (default INFO)
    from .registry import builtins_only

    trusted = args.command in SUITE_COMMANDS or bool(getattr(args, "trust_remote_code", False))
    try:
        with builtins_only(not trusted):
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"t2ibench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("t2ibench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
