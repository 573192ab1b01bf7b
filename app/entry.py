"""The ``gumshoe`` console command. Qt is imported only when the GUI starts,
so headless commands (train, bench, import) run without a display; before it
is, the system libraries of Qt's window platform are checked
(:mod:`app.syslibs`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _gui(project: str | None) -> int:
    from app.syslibs import platform_problem

    problem = platform_problem()  # before Qt loads: Qt would abort with a wrong hint
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from app.startup import run_gui

    return run_gui(project)


def main(argv: Sequence[str] | None = None) -> int:
    from core.cli.main import main as cli_main

    return cli_main(argv, gui=_gui)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
