"""``gumshoe import PROJECT SOURCE``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.progress import bar
from core.formats import READERS
from core.importer import import_source
from core.paths import shown
from core.project import Project


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="import a dataset into a project (created if missing)")
    p.add_argument("project", type=Path)
    p.add_argument("source", type=Path, help="dataset folder or label file")
    p.add_argument("--format", default="auto", choices=["auto", *READERS],
                   help="dataset format (default: detect)")
    p.add_argument("--task", choices=["landmarks", "age"], help="target (default: the format's first)")
    p.add_argument("--noise", help="contaminate the imported labels, e.g. l-ugo:0.3 (benchmarks)")
    p.add_argument("--seed", type=int, default=0, help="seed for --noise")
    p.add_argument("--strict", action="store_true", help="fail if any item is skipped")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths that are absolute or lead outside the dataset "
                        "folder (through '..' or a symlink); refused by default")
    return p


def run(args: argparse.Namespace) -> int:
    if not args.source.exists():
        raise FileNotFoundError(f"{shown(args.source)}: no such file or folder")
    with Project.open_or_create(args.project) as project, bar("import", unit="img") as pbar:
        def progress(n: int, _key: str) -> None:
            pbar.update(n - pbar.n)

        result = import_source(project, args.source, args.format, args.task,
                               noise=args.noise, seed=args.seed, progress=progress,
                               allow_outside_root=args.allow_outside_root)
    for skip in result.skipped:
        print(f"skipped {skip}", file=sys.stderr)
    print(f"{shown(args.project)}: {result.added} added, {result.existing} already present, "
          f"{len(result.skipped)} skipped ({result.format}, {result.task}, "
          f"{result.seconds:.1f} s, {result.images_per_s:.0f} images/s)"
          + (f", noise {result.noise}" if result.noise else ""))
    if args.strict and result.skipped:
        print(f"gumshoe: error: {len(result.skipped)} items skipped (--strict)", file=sys.stderr)
        return 2
    return 0
