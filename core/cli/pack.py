"""``gumshoe pack PROJECT OUT``: a self-contained copy to train on elsewhere (see
core.pack)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.pack import pack_project


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("pack", help="copy the project and its image cache into a folder to "
                                    "train on another machine")
    p.add_argument("project", type=Path)
    p.add_argument("out", type=Path, help="a new folder")
    p.add_argument("--image-size", type=int, action="append", dest="sizes", metavar="S",
                   help="image cache size to take (repeat for several; default: the sizes "
                        "already cached, else 64)")
    return p


def run(args: argparse.Namespace) -> int:
    dest = pack_project(args.project, args.out, args.sizes,
                        log=lambda line: print(line, file=sys.stderr))
    print(f"{dest}: train it with `gumshoe train {dest}` (or torchrun ... -m core train "
          f"{dest}); bring the run back with `gumshoe import-run {args.project} {args.out}`")
    return 0
