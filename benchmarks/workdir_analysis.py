"""What the scripts that analyse ``gumshoe bench --workdir`` projects share
(``image_statistics``, ``point_bound``, ``uniform_width``): their command line
(projects, ``--json OUT``), a line printed per project, the results file with
the command that made it, and a sample's label as imported (before the bench
contaminated it)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from core.project import Project
    from core.store.records import Label


def imported_label(project: Project, sample_id: int) -> Label:
    """The sample's label as it was imported: the clean one the noise moved."""
    return next(v for v in project.label_history(sample_id) if v.origin == "import")


def imported_points(project: Project, sample_id: int) -> np.ndarray:
    """The points of :func:`imported_label`."""
    return imported_label(project, sample_id).points


def run(doc: str, benchmark: str, analyse: Callable[[Path], dict[str, Any]],
        line: Callable[[dict[str, Any]], str]) -> None:
    """Parse ``projects... --json OUT``, analyse each project (printing ``line`` of
    its row as it finishes) and write ``{benchmark, command, results}`` to OUT."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("projects", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    for path in args.projects:
        rows.append(analyse(path))
        print(line(rows[-1]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": benchmark,
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "results": rows}, indent=1))
