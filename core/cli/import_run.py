"""``gumshoe import-run PROJECT BUNDLE``: bring runs trained in a pack back into the
project (see core.pack)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.pack import import_runs


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("import-run", help="bring the runs trained in a pack (gumshoe pack) "
                                          "back into the project")
    p.add_argument("project", type=Path)
    p.add_argument("bundle", type=Path, help="the pack folder (or its project file)")
    p.add_argument("--run", type=int, help="only this run of the pack (default: every run "
                                           "trained in it)")
    return p


def run(args: argparse.Namespace) -> int:
    result = import_runs(args.project, args.bundle, args.run)
    if not result.runs:
        print(f"{args.bundle}: no run trained in the pack yet; nothing imported")
        return 0
    for theirs, here, new in result.runs:
        print(f"run {theirs} of the pack -> run {here} of {args.project}"
              + ("" if new else " (updated)"))
    print(f"{result.scores} scores imported"
          + (f"; {result.unmatched} scored samples of the pack are not in the project"
             if result.unmatched else ""))
    if result.edited:
        print(f"note: {result.edited} labels were edited here since the pack was made; "
              "their scores judge the label as it was packed")
    return 0
