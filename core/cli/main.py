"""The ``gumshoe`` command line (headless: no Qt is imported here).

Each sub-command lives in its own module of ``core.cli`` with
``add_parser(subparsers)`` and ``run(args) -> int``. ``gumshoe`` with no
argument, and ``gumshoe open``, start the GUI through a hook that
``app.entry`` passes in, so ``core`` never imports Qt.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from core import __version__
from core.formats.base import FormatError
from core.images import ImageError
from core.paths import disk_full, one_line, shown
from core.project import ProjectError

# command name -> module of core.cli
COMMANDS = {"open": "open", "demo": "demo", "import": "imports", "info": "info",
            "export": "export", "train": "train", "rank": "rank", "bench": "bench",
            "pack": "pack", "import-run": "import_run", "merge": "merge", "backup": "backup"}

GuiHook = Callable[[str | None], int]


def build_parser(gui: GuiHook | None = None, only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's module is imported (the engine's
    modules import torch, which costs seconds that `gumshoe info` should not pay)."""
    parser = argparse.ArgumentParser(
        prog="gumshoe",
        description="Find and fix bad labels in landmark and age datasets. "
        "With no command, opens the GUI on the demo project.",
    )
    parser.add_argument("--version", action="version", version=f"gumshoe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"core.cli.{mod}")
        p = module.add_parser(sub)
        p.set_defaults(func=module.run, gui=gui)
    return parser


def main(argv: Sequence[str] | None = None, gui: GuiHook | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["open"]
    parser = build_parser(gui, only=argv[0] if argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # under torchrun, the other processes of a run name their rank
    launched = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
    rank = os.environ.get("RANK", "0") if launched else "0"
    prog = "gumshoe" if rank == "0" else f"gumshoe (rank {rank})"
    if launched and args.command != "train":
        if rank == "0":
            print(f"gumshoe: error: only `train` runs under torchrun (each process would run "
                  f"`{args.command}` on its own)", file=sys.stderr)
        return 1
    code = _run(args, prog)
    if launched:
        end_worker(code)
    return code


def _run(args: argparse.Namespace, prog: str) -> int:
    """The command's exit code; a failure it reports is one line naming its cause."""
    try:
        return int(args.func(args) or 0)
    except (ProjectError, FormatError, ImageError, ValueError, OSError, sqlite3.Error) as exc:
        print(f"{prog}: error: {error_line(exc, getattr(args, 'project', None))}",
              file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def end_worker(code: int) -> NoReturn:
    """End a process that torchrun started, now: its output flushed, without the
    interpreter's and the C++ runtime's teardown. By then the run is over, its
    results are committed by rank 0 and the process group is destroyed; but gloo's
    transport thread may still be closing the connections, and the C++ runtime's
    exit-time destructors then met it running and aborted the process ("terminate
    called without an active exception", SIGABRT: 6 of 105 two-process runs on the
    busy 2-core test machine, none of 110 since), so torchrun reported a finished
    run as failed."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def error_line(exc: BaseException, project: object = None) -> str:
    """The one line that reports ``exc``: a full disk as ``disk full: PATH`` (the file
    being written, or the project for SQLite), anything else as its message with control
    characters escaped."""
    if disk_full(exc) or (isinstance(exc, sqlite3.OperationalError)
                          and "disk is full" in str(exc)):
        strerror = getattr(exc, "strerror", None)
        if isinstance(strerror, str) and strerror.startswith("disk full: "):
            return one_line(strerror)  # already names the file
        where = getattr(exc, "filename", None) or project
        return f"disk full: {shown(where)}" if where else "disk full"
    return one_line(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
