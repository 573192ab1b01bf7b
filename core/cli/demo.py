"""``gumshoe demo PATH``: a procedurally drawn face project with known bad labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.progress import bar
from core.demo import make_demo


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="create the demo project (drawn faces, some labels corrupted)")
    p.add_argument("path", type=Path, help="the .gumshoe file to create")
    p.add_argument("-n", type=int, default=300, help="number of faces (default 300)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> int:
    if args.path.exists():
        raise FileExistsError(f"{args.path}: already exists")
    with bar("demo", total=args.n, unit="face") as pbar:
        def progress(n: int, _msg: str = "") -> None:
            pbar.update(n - pbar.n)

        path = make_demo(args.path, n=args.n, seed=args.seed, progress=progress)
    print(f"{path}: demo project with {args.n} faces; open it with `gumshoe open {path}`")
    return 0
