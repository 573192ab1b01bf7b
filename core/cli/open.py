"""``gumshoe open [PROJECT]``: the desktop app (the default command)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("open", help="open a project in the GUI (the demo project if none)")
    p.add_argument("project", nargs="?", help="a .gumshoe file")
    return p


def run(args: argparse.Namespace) -> int:
    if args.gui is None:
        raise ValueError("the GUI is not available here; run `gumshoe` from the app install")
    return int(args.gui(args.project))
