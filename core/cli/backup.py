"""``gumshoe backup PROJECT DEST``: a consistent one-file copy of a project, safe
while the project is open elsewhere (SQLite's online backup)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.project import Project


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("backup", help="copy a project safely (also while it is in use)")
    p.add_argument("project", type=Path)
    p.add_argument("dest", type=Path, help="the copy to write (must not exist)")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        dest = project.backup(args.dest)
        n = project.count_samples()
    print(f"{dest}: copy of {args.project} ({n} samples, {dest.stat().st_size} bytes); "
          "the image cache is not copied (it is rebuilt when needed)")
    return 0
