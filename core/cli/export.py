"""``gumshoe export PROJECT OUT --format F``."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.progress import bar
from core.export import export
from core.formats import WRITERS
from core.project import Project


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="write the (cleaned) dataset and a change report")
    p.add_argument("project", type=Path)
    p.add_argument("out", type=Path, help="output file (csv, coco) or folder (pts)")
    p.add_argument("--format", required=True, choices=sorted(WRITERS))
    p.add_argument("--original", action="store_true",
                   help="write the labels as imported instead of the current (fixed) ones")
    p.add_argument("--reviewed-only", action="store_true", help="only samples someone reviewed")
    p.add_argument("--keep-excluded", action="store_true", help="keep samples marked excluded")
    p.add_argument("--max-score", type=float,
                   help="drop samples whose outlier score in the latest run is above this")
    p.add_argument("--no-report", action="store_true", help="skip the change report")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing export and its report (never the project)")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project, bar("export", unit="sample") as pbar:
        def progress(n: int, _key: str) -> None:
            pbar.update(n - pbar.n)

        result = export(project, args.out, args.format, current=not args.original,
                        reviewed_only=args.reviewed_only, drop_excluded=not args.keep_excluded,
                        max_score=args.max_score, report=not args.no_report,
                        overwrite=args.overwrite, progress=progress)
    print(result.summary())
    return 0
