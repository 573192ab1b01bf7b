"""How often a finished two-process run ends with a failed rank: ``--runs`` short
``torchrun --nproc-per-node 2 -m core train`` runs (gloo on CPU, 2 epochs on a
small project of drawn dots the script builds), each counted by torchrun's exit
code and whether a rank aborted ("terminate called without an active
exception", the crash of a gloo thread met by the C++ runtime's exit-time
teardown).

``--checkout PATH`` runs the code of another checkout (e.g. a ``git worktree``
of an older commit) with this machine's environment, for a before/after.
The crash depends on timing: on an idle machine it is rarer, so run it as the
other tests run, or beside a training job.

Usage:
  python benchmarks/torchrun_exits.py --runs 40 --json benchmarks/results/NAME.json
  git worktree add /tmp/old COMMIT
  python benchmarks/torchrun_exits.py --runs 40 --checkout /tmp/old --json ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ABORT = "terminate called without an active exception"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_project(checkout: Path, folder: Path) -> Path:
    """The small contaminated project the distributed tests use."""
    code = ("import sys; from pathlib import Path; "
            "from tests.core.synth import make_dots_project; "
            "from core.project import Project; from core.noise import apply_noise; "
            "p = make_dots_project(Path(sys.argv[1]), n=160); "
            "pr = Project.open(p); apply_noise(pr, 'l-ugo:0.2', seed=1); pr.close(); print(p)")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=checkout, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(checkout)})
    return Path(out.stdout.strip().splitlines()[-1])


def one_run(checkout: Path, template: Path, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True)
    path = folder / template.name
    shutil.copy2(template, path)
    cache = template.with_name(template.name + "-cache")
    if cache.exists():
        shutil.copytree(cache, path.with_name(path.name + "-cache"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
           "-m", "core", "train", str(path), "--epochs", "2", "--image-size", "32",
           "--batch-size", "16", "--seed", "3", "--quiet"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": str(checkout)})
    return {"returncode": done.returncode, "aborted": ABORT in done.stderr,
            "seconds": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--checkout", default=str(ROOT), help="the code to run (default: this one)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    checkout = Path(args.checkout).resolve()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True,
                            text=True).stdout.strip()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gumshoe-exits-") as tmp:
        template = build_project(checkout, Path(tmp) / "template")
        for i in range(args.runs):
            runs.append(one_run(checkout, template, Path(tmp) / f"run-{i}"))
            r = runs[-1]
            print(f"run {i}: exit {r['returncode']}{' (a rank aborted)' if r['aborted'] else ''}"
                  f", {r['seconds']} s", flush=True)
            shutil.rmtree(Path(tmp) / f"run-{i}", ignore_errors=True)
    failed = sum(r["returncode"] != 0 for r in runs)
    aborted = sum(r["aborted"] for r in runs)
    result = {"commit": commit, "runs": len(runs), "failed": failed, "aborted": aborted,
              "per_run": runs, "machine": {"platform": platform.platform(),
                                           "cpus": os.cpu_count()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"{failed} of {len(runs)} runs failed ({aborted} with a rank aborted); "
          f"code of {commit[:7]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
