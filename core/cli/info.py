"""``gumshoe info PROJECT [--json]``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from core.image_cache import problem_rows
from core.paths import shown
from core.project import Project
from core.schemas import describe_schema

SHOWN_PROBLEMS = 20


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="summarise a project")
    p.add_argument("project", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        info = project.info()
        info["image_problems"] = problem_rows(project)
        schema = project.schema
    if schema is not None and schema.task == "landmarks":
        info.update(keypoint_names=list(schema.keypoints),
                    flip_pairs=[list(p) for p in schema.flip_pairs],
                    skeleton=[list(e) for e in schema.skeleton])
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['path']}")
    print(f"  task       {info['task']}" + (f" ({info['schema']}, {info['keypoints']} keypoints)"
                                            if info["task"] == "landmarks" else ""))
    if schema is not None and schema.task == "landmarks":
        for line in describe_schema(schema):
            print(f"  {line}")
    if info["task"] == "age":
        print(f"  ages       {info['age_min']:g} to {info['age_max']:g}")
    print(f"  samples    {info['samples']}  (" +
          ", ".join(f"{k} {v}" for k, v in sorted(info["splits"].items())) + ")")
    print("  review     " + ", ".join(f"{k} {v}" for k, v in info["review"].items()))
    print(f"  labels     {info['labels']} versions from {info['sources']} source(s)")
    print(f"  skipped    {info['skipped']} items at import")
    print(f"  runs       {info['runs']}")
    if info["conflicts"]:
        print(f"  conflicts  {info['conflicts']} samples changed in two merged copies "
              "(both versions kept; the queue flags them)")
    for warning in info["warnings"]:
        print(f"  warning    {warning}")
    problems = info["image_problems"]
    if problems:
        kinds = Counter(str(r["kind"]) for r in problems)
        print(f"  images     {len(problems)} images unusable ("
              + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
              + "), left out of training:")
        for r in problems[:SHOWN_PROBLEMS]:
            print(f"    {shown(str(r['path']))}: {r['kind']}")
        if len(problems) > SHOWN_PROBLEMS:
            print(f"    ... and {len(problems) - SHOWN_PROBLEMS} more (--json lists all)")
    return 0
