"""``gumshoe info PROJECT [--json]``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from core.image_problems import problem_rows
from core.pack import describe_runs, find_project_file, pack_info
from core.paths import shown
from core.project import Project
from core.schemas import describe_schema

SHOWN_PROBLEMS = 20


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="summarise a project (or a pack, and how its run is going)")
    p.add_argument("project", type=Path, help="a project file, or a pack folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    with Project.open(find_project_file(args.project)) as project:
        info = project.info()
        pack = pack_info(project)
        if pack is not None:
            info["pack"] = {"origin": pack.origin, "packed_at": pack.packed_at,
                            "image_sizes": list(pack.image_sizes)}
        runs = describe_runs(project)
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
    if "pack" in info:
        print(f"  pack of    {info['pack']['origin']} ({info['pack']['packed_at']}, "
              f"cache {', '.join(str(s) for s in info['pack']['image_sizes'])} px)")
    for line in runs:
        print(f"    {line}")
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
