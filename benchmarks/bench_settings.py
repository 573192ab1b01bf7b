"""``gumshoe bench`` with training settings the command line does not offer: each
``--set NAME=VALUE`` replaces one field of :class:`core.training.TrainConfig`
(``weight_decay=0.05``, ``rotate_jitter=15``, ``epochs=60``...). For trying a
setting before it becomes a default or an option; the results file is the
bench's, with the settings given under ``settings.overrides``.

Usage:
  python benchmarks/bench_settings.py ../shared/datasets/utkface-part1 --format utkface \\
      --task age --noise age-u:0.3 --seeds 3 --set weight_decay=0.05 --json OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.bench import BenchSettings, run_bench  # noqa: E402
from core.training import TrainConfig  # noqa: E402


def overrides(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as TrainConfig fields of the field's type."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        if name not in fields:
            raise SystemExit(f"bench_settings: no training setting {name!r}")
        default = getattr(TrainConfig(), name)
        if isinstance(default, bool):
            out[name] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            out[name] = int(text)
        elif isinstance(default, float) or "float" in str(fields[name].type):
            out[name] = float(text)
        else:
            out[name] = text
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--format", default="auto", help="dataset format (default: detect)")
    ap.add_argument("--task", choices=("landmarks", "age"))
    ap.add_argument("--noise", action="append", required=True)
    ap.add_argument("--methods", default="deepgum")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    over = overrides(args.set)
    settings = BenchSettings(methods=tuple(args.methods.split(",")), seeds=args.seeds,
                             first_seed=args.first_seed,
                             train=dataclasses.replace(TrainConfig(), score_every=0, **over))
    out = run_bench(args.source, args.format, args.task, args.noise, settings,
                    log=lambda line: print(line, file=sys.stderr))
    out["settings"]["overrides"] = over
    out["command"] = "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
