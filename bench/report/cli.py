"""``t2ibench report RUN``: one self-contained HTML page for a run directory."""

from __future__ import annotations

from pathlib import Path

from ..cliargs import trust_remote_code


def cmd_report(args) -> int:
    from .html import write_report

    out = write_report(
        Path(args.run), Path(args.output) if args.output else None, analysis_dirs=args.analysis or (),
        max_prompts=args.max_prompts, max_images=args.max_images,
    )
    print(f"t2ibench: report {out}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("report", parents=[trust_remote_code()], help="one self-contained HTML page for a run (results, plots, samples, analyses)")
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", help="HTML file (default: RUN/results/report.html)")
    p.add_argument("--analysis", action="append", help="a folder of analysis figures to link (repeatable; RUN/analysis is always searched)")
    p.add_argument("--max-prompts", type=int, default=6, help="prompts per prompt set in the sample grids (default 6)")
    p.add_argument("--max-images", type=int, default=2, help="images per prompt in the sample grids (default 2)")
    p.set_defaults(func=cmd_report)
