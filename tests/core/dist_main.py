"""The ``gumshoe`` command line as a torchrun script, for tests of distributed
runs: each process notes its rank and pid (``$GUMSHOE_TEST_DIR/rank-N.json``)
and then runs ``core.cli.main.main`` with the given arguments. With
``GUMSHOE_TEST_STOP_RANK=R`` rank R alone sends itself SIGTERM (a scheduler's
stop) once the run's first checkpoint exists, so the other ranks must learn of
the stop from it. Each rank also registers an exit handler that notes
``teardown-N`` in that folder: a torchrun worker must end without the
interpreter's teardown (see ``core.cli.main.end_worker``), so none appears."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from core.cli.main import main


def _stop_when(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    rank = int(os.environ["RANK"])
    folder = Path(os.environ["GUMSHOE_TEST_DIR"])
    (folder / f"rank-{rank}.json").write_text(json.dumps({"rank": rank, "pid": os.getpid()}))
    atexit.register(lambda: (folder / f"teardown-{rank}").touch())
    if os.environ.get("GUMSHOE_TEST_STOP_RANK") == str(rank):
        checkpoint = Path(os.environ["GUMSHOE_TEST_STOP_AFTER"])
        threading.Thread(target=_stop_when, args=(checkpoint,), daemon=True).start()
    sys.exit(main(sys.argv[1:]))
