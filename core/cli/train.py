"""``gumshoe train PROJECT``: train a robust regressor, write runs, epochs and scores."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from core.cli.arguments import EPOCHS_HELP, epochs, image_size
from core.cli.progress import bar
from core.models import HEADS
from core.pack import find_project_file
from core.project import Project
from core.robust import METHODS
from core.robust.mixture import UNITS
from core.skill import NOT_LEARNT
from core.training import (
    BatchProgress,
    Callbacks,
    EpochEvent,
    PeerError,
    ScoresEvent,
    StatusEvent,
    TrainConfig,
    train,
)
from core.training.distributed import launched_rank


def add_estep_arguments(p: argparse.ArgumentParser) -> None:
    """The DeepGUM E-step options shared by ``train`` and ``bench``."""
    d = TrainConfig()
    p.add_argument("--estep-residuals", choices=["auto", "training", "evaluation"],
                   default=d.estep_residuals,
                   help="DeepGUM E-step residuals: from an eval-mode pass (landmarks, by default) "
                        "or from the training pass (ages, by default)")
    p.add_argument("--refresh-epochs", type=int, default=d.refresh_epochs,
                   help="with evaluation residuals: epochs between two re-evaluations of a "
                        "training sample (default: %(default)s; 1 = every epoch)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = sub.add_parser("train", help="train on the project's labels and score every sample")
    p.add_argument("project", type=Path, help="a project file, or a pack folder (gumshoe pack)")
    p.add_argument("--method", choices=METHODS, default=d.method, help="default: %(default)s")
    p.add_argument("--epochs", type=epochs, default=d.epochs, help=EPOCHS_HELP)
    p.add_argument("--image-size", type=image_size, default=d.image_size,
                   help="input side in pixels, a multiple of 32 (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help="default: %(default)s")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=d.device)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--unit", choices=["auto", *UNITS], default=d.unit,
                   help="DeepGUM mixture unit (default: landmark, or sample for ages)")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                   help="plain least-squares epochs before the first EM round")
    add_estep_arguments(p)
    p.add_argument("--backbone", default=d.backbone,
                   help="cnn (default), resnet18/resnet34/resnet50 (torchvision) or timm:NAME")
    p.add_argument("--weights", help="local ImageNet weights file for a backbone other than cnn")
    p.add_argument("--head", choices=("auto", *HEADS), default=d.head,
                   help="auto (default: heatmap for landmarks, fc for ages), fc or heatmap")
    p.add_argument("--folds", type=int, default=d.folds,
                   help="cross-fitting: judge each training label with one of K models that "
                        "did not train on it (K + 1 trainings; default: %(default)s = off)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="data-loader processes reading the image cache ahead of the model "
                        "(default: auto = 0 on a CPU, a few per GPU)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (a GPU and a long run repay the "
                        "compilation time)")
    p.add_argument("--resume", type=int, metavar="RUN", help="continue a paused run")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return p


def throughput(event: EpochEvent) -> str:
    """images/s, the data-wait share and the GPU's figures of an epoch, for a line."""
    parts = [f"{event.images_per_s:.0f} img/s"]
    if event.processes > 1:
        parts[0] += f" ({event.processes} processes)"
    if event.data_wait_share is not None:
        parts.append(f"data wait {100 * event.data_wait_share:.0f}%")
    if event.gpu_util is not None:
        parts.append(f"GPU {100 * event.gpu_util:.0f}%")
    if event.gpu_memory_mb is not None:
        parts.append(f"{event.gpu_memory_mb / 1024:.1f} GB")
    return "  ".join(parts)


class _Printer(Callbacks):
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.pbar = bar("epoch", unit="batch")
        self.status: str | None = None

    def on_status(self, event: StatusEvent) -> None:
        self.status = event.status
        if event.message.startswith("left out ") or (
                event.status == "finished" and event.message.startswith(NOT_LEARNT)):
            # images changed, missing or unreadable; a model that learnt nothing
            self.pbar.write(f"warning: {event.message}", file=sys.stderr)
            return
        self.pbar.set_description_str(event.message[:40] if event.status == "preparing" else "train")

    def on_batch(self, event: BatchProgress) -> None:
        if self.pbar.total != event.batches:
            self.pbar.reset(total=event.batches)
        self.pbar.set_description_str(f"epoch {event.epoch + 1}/{event.epochs}")
        self.pbar.set_postfix_str(f"loss {event.loss:.4f} {event.images_per_s:.0f} img/s")
        self.pbar.update(event.batch - self.pbar.n)

    def on_epoch_end(self, event: EpochEvent) -> None:
        if self.quiet:
            return
        val = "-" if event.val_error is None else f"{event.val_error:.4f}"
        inl = "-" if event.inlier_fraction is None else f"{event.inlier_fraction:.3f}"
        self.pbar.write(f"epoch {event.epoch + 1:3d}/{event.epochs}  loss {event.train_loss:.4f}  "
                        f"val {val}  inliers {inl}  {throughput(event)}  "
                        f"{event.seconds:.1f} s")

    def on_scores(self, event: ScoresEvent) -> None:
        if not self.quiet:
            self.pbar.write(f"scores written for {event.n_samples} samples"
                            f" ({event.n_flagged} flagged)")


def run(args: argparse.Namespace) -> int:
    args.project = find_project_file(args.project)
    config = None
    if args.resume is None:
        config = TrainConfig(method=args.method, epochs=args.epochs, image_size=args.image_size,
                             batch_size=args.batch_size, lr=args.lr, device=args.device,
                             seed=args.seed, unit=args.unit, warmup_epochs=args.warmup_epochs,
                             backbone=args.backbone, weights=args.weights, head=args.head,
                             folds=args.folds,
                             estep_residuals=args.estep_residuals,
                             refresh_epochs=args.refresh_epochs,
                             workers=args.workers, compile=args.compile)
    stop = {"now": False}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # a first Ctrl-C (or a scheduler's SIGTERM) pauses at the next batch; the run
        # stays resumable
        stop["now"] = True

    rank = launched_rank()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    printer = _Printer(args.quiet or rank > 0)
    if rank > 0:
        printer.pbar.disable = True
    try:
        run_id = train(args.project, config, printer, lambda: stop["now"], resume=args.resume,
                       owner="cli")
    except PeerError:
        return 1  # rank 0 failed and says why; this rank just ends
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        printer.pbar.close()
    if rank > 0:  # rank 0 reports the run's end and sets torchrun's exit code
        return 0
    with Project.open(args.project) as project:
        info = project.run(run_id)
    if info.status == "paused":
        print(f"run {run_id} paused: resume with `gumshoe train {args.project} --resume {run_id}`",
              file=sys.stderr)
        return 130
    print(f"run {run_id} {info.status}: scores in {args.project} "
          f"(`gumshoe rank {args.project}`)")
    return 0
