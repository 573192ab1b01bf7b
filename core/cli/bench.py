"""``gumshoe bench SOURCE --format F --noise SPEC --json OUT``: known contamination,
every method, several seeds (see core.bench)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType

from core.bench import BenchSettings, run_bench
from core.bench_report import reliability_png
from core.cli.arguments import EPOCHS_HELP, epochs, image_size
from core.cli.train import add_estep_arguments
from core.models import HEADS
from core.robust import METHODS
from core.training import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = sub.add_parser("bench", help="benchmark outlier detection under known contamination")
    p.add_argument("source", type=Path, help="dataset folder or label file")
    p.add_argument("--format", default="auto", help="dataset format (default: detect)")
    p.add_argument("--task", choices=["landmarks", "age"])
    p.add_argument("--noise", action="append", required=True,
                   help="contamination spec, e.g. l-ugo:0.3 (repeat for several)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="default: %(default)s")
    p.add_argument("--first-seed", type=int, default=0,
                   help="run seeds first-seed .. first-seed + seeds - 1 (default: %(default)s)")
    p.add_argument("--epochs", type=epochs, default=d.epochs, help=EPOCHS_HELP)
    p.add_argument("--image-size", type=image_size, default=d.image_size, help="default: %(default)s")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=d.device)
    add_estep_arguments(p)
    p.add_argument("--backbone", default=d.backbone, help="default: %(default)s")
    p.add_argument("--weights", help="local ImageNet weights file for a backbone other than cnn")
    p.add_argument("--head", choices=("auto", *HEADS), default=d.head, help="default: %(default)s")
    p.add_argument("--folds", type=int, default=d.folds,
                   help="cross-fitting folds (default: %(default)s = in-sample scores)")
    p.add_argument("--workdir", type=Path, help="keep the projects here (default: a temporary folder)")
    p.add_argument("--json", type=Path, required=True, metavar="OUT", help="results file")
    return p


def run(args: argparse.Namespace) -> int:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {', '.join(unknown)} (expected {', '.join(METHODS)})")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    settings = BenchSettings(methods=methods, seeds=args.seeds, first_seed=args.first_seed,
                             train=replace(TrainConfig(), epochs=args.epochs,
                                           image_size=args.image_size, device=args.device,
                                           backbone=args.backbone, weights=args.weights,
                                           head=args.head, folds=args.folds,
                                           estep_residuals=args.estep_residuals,
                                           refresh_epochs=args.refresh_epochs, score_every=0))
    stop = {"now": False}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        out = run_bench(args.source, args.format, args.task, args.noise, settings,
                        log=lambda line: print(line, file=sys.stderr),
                        should_stop=lambda: stop["now"], workdir=args.workdir)
    except KeyboardInterrupt:
        print("gumshoe: bench interrupted; no results written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    if any(s.get("reliability") for s in out["summary"]):
        png = reliability_png(out["summary"], args.json.with_suffix(".reliability.png"))
        print(f"reliability diagrams in {png}")
    for s in out["summary"]:
        auroc = "-" if s["auroc"] is None else f"{s['auroc']:.4f}"
        err = s["test_nme"] if s["test_nme"] is not None else s["test_mae"]
        err_s = "-" if err is None else f"{err:.4f}"
        speed = "" if s.get("train_images_per_s") is None else \
            f"  {s['train_images_per_s']:.0f} img/s"
        if s.get("data_wait_share") is not None:
            speed += f" (data wait {100 * s['data_wait_share']:.0f}%)"
        if s.get("gpu_util") is not None:
            speed += f"  GPU {100 * s['gpu_util']:.0f}%"
        print(f"{s['method']:9s} {s['noise']:>12s}  AUROC {auroc}  test error {err_s}{speed}  "
              f"(median of {s['seeds']} seeds)")
    print(f"results in {args.json}")
    return 0
