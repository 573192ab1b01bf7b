"""``gumshoe merge PROJECT COPY``: bring an offline copy's label edits and review
decisions back (see core.store.merge)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.project import Project


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("merge", help="merge the label edits and reviews of a copy back in")
    p.add_argument("project", type=Path, help="the project to merge into")
    p.add_argument("copy", type=Path, help="a copy of it that someone edited (read only)")
    p.add_argument("--quiet", action="store_true", help="no line per conflict")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        if project.read_only:
            print(f"gumshoe: error: {args.project}: {project.read_only_reason}; cannot merge into it")
            return 1
        result = project.merge(args.copy)
        keys = {s.id: s.key for s in project.samples(ids={c.sample_id for c in result.conflicts})}
        if not args.quiet:
            for c in result.conflicts:
                kept = "theirs" if c.kept == c.theirs else "ours"
                print(f"conflict {keys.get(c.sample_id, c.sample_id)}: both changed its {c.kind}; "
                      f"both versions kept, the newer ({kept}) is current")
    print(result.summary())
    return 0
