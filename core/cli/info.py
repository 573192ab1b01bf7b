"""``gumshoe info PROJECT [--json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.project import Project
from core.schemas import describe_schema


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="summarise a project")
    p.add_argument("project", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        info = project.info()
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
    return 0
