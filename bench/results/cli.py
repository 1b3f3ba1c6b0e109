"""``t2ibench score | table | check``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cliargs import trust_remote_code
from ..log import get_logger

log = get_logger(__name__)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def cmd_score(args) -> int:
    from .scoring import score_run

    shard = None
    if args.shard:
        from ..runner import Shard  # the same i/n syntax and checks as `generate --shard`

        parsed = Shard.parse(args.shard)
        shard = (parsed.rank, parsed.world_size)
    out = score_run(Path(args.run), args.metrics, quiet=args.quiet, shard=shard,
                    trust_remote_code=getattr(args, "trust_remote_code", False), device=args.device)
    from ..store import RunDir
    from .scoring import metric_specs

    scored = {spec.label for spec in metric_specs(RunDir(args.run).suite(), args.metrics)}
    for label, info in out["metrics"].items():
        if label not in scored:  # kept from an earlier call that scored other metrics
            continue
        if info.get("available"):
            log.info(f"{label}: {info.get('newly_scored', 0)} newly scored, {info.get('cached', 0)} cached")
        else:
            print(f"{label}: not available: {info.get('reason')}")
    if shard:
        print(f"t2ibench: shard {shard[0]}/{shard[1]} scored; run `t2ibench score {args.run}` once all shards are done to aggregate")
        return 0
    print(f"t2ibench: aggregates in {Path(args.run) / 'results' / 'aggregates.json'}")
    return 0


def cmd_table(args) -> int:
    import shlex

    from ..suite import resolve_suite
    from .table import write_tables

    for name in args.pending or []:
        resolve_suite(name)  # an unknown suite is a one-line error before anything is written
    command = shlex.join(["t2ibench", "table", *sys.argv[2:]]) if sys.argv[1:2] == ["table"] else None
    text = write_tables([Path(r) for r in args.runs], Path(args.output) if args.output else None, args.format,
                        pending=args.pending or [], command=command, notes=args.notes)
    if args.output:
        print(f"t2ibench: wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args) -> int:
    from .check import check_run

    failures, compared = check_run(Path(args.run), Path(args.against), Path(args.tolerance) if args.tolerance else None)
    if failures:
        print(f"t2ibench check: {len(failures)} of {compared} entries worse than the reference beyond tolerance:")
        for f in failures:
            print(f"  {f.line()}")
        return 1
    print(f"t2ibench check: {compared} entries within tolerance of {args.against}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("score", parents=[trust_remote_code()], help="score a run directory incrementally (cached per image)")
    p.add_argument("run", help="run directory")
    p.add_argument("--metrics", type=_csv, help="only these metrics (labels or names), comma-separated")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--shard", help="i/n: score only this share of the missing images, no aggregates (parallel ranks)")
    p.add_argument("--device", help="where the scorers' networks run (default: cuda if available, else cpu); "
                                    "values and their cache do not depend on it")
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("table", parents=[trust_remote_code()], help="method x metric tables of one or more scored runs")
    p.add_argument("runs", nargs="+", help="run directories (scored)")
    p.add_argument("-o", "--output", help="write to this file (e.g. leaderboard.md); default stdout")
    p.add_argument("--format", default="md", choices=["md", "csv", "json"], help="md (default), csv, or json (the reference format of check)")
    p.add_argument("--pending", action="append", metavar="SUITE",
                   help="md: add a section for a suite that has no run yet (what it needs, how to run it); repeatable")
    p.add_argument("--notes", metavar="FILE",
                   help="md: include this hand-written markdown (what the numbers say) before the tables")
    p.set_defaults(func=cmd_table)

    p = subparsers.add_parser("check", parents=[trust_remote_code()], help="exit 1 if a scored run got worse than a reference table beyond tolerance")
    p.add_argument("run", help="run directory (scored)")
    p.add_argument("--against", required=True, help="reference JSON written by `t2ibench table --format json`")
    p.add_argument("--tolerance", help="tolerance file (JSON/YAML; see t2ibench.results.check)")
    p.set_defaults(func=cmd_check)
