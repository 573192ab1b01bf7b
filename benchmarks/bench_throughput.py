"""Is the trainer's data path the bottleneck? The trainer's training pass against
the pure compute rate of the same model on the same device.

For each image size: the real training pass (``Trainer.train_epoch``: batches
from the memory-mapped cache through the loader, the upload, the jitter on the
device, the method's targets and weights, the step, progress) timed from the
outside, against the same number of steps of the same ``TrainStep`` module
(model + the method's loss), optimiser and batch size on random tensors already
on the device (forward, backward, step: nothing else). The two alternate
(``--repeats`` times, after a warm-up of each), so a load that comes and goes
on a shared machine hits both. The ratio reported is that of the best passes
(``ratio``: the fastest trainer pass against the fastest pure one, the usual
estimate of a timing under load that only ever adds time), with the ratio of
the medians beside it (``ratio_median``), the median of the per-pair ratios
(``ratio_paired``: each trainer pass against the pure pass timed right after
it, so a slow spell of the machine hits both sides of a pair), the trainer's
data-wait share and, on CUDA, GPU utilisation (with pynvml) and peak memory.
From inside the trainer's passes (the phase clock): ``phase_shares`` (the median
share of each phase), ``step_share`` (the model's forward, backward and step as
a share of the pass: measured within one pass, so the machine's noise moves
both sides alike) and ``step_vs_pure`` (that step's seconds against the pure
pass timed right after it: about 1 when it is the same work).
The pure steps leave the model and optimiser as they found them (they would
otherwise train it on noise).

Usage (CPU figures on a shared machine: run it under the lock):
  flock /tmp/gumshoe-heavy.lock python benchmarks/bench_throughput.py \\
      --source ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --sizes 64,128,256 --workers 0,1 --json benchmarks/results/NAME.json
Without ``--source`` the images are drawn (``--synthetic N`` ellipse images).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pure_steps(trainer: Any, steps: int) -> float:
    """Seconds for ``steps`` forward/backward/optimiser steps of the trainer's own
    step module on random tensors already on the device."""
    import torch

    cfg, dev = trainer.cfg, trainer.device
    b, s, d = cfg.batch_size, cfg.image_size, trainer.data.n_dims
    x = (torch.rand(b, 3, s, s, device=dev) - 0.5).contiguous(memory_format=torch.channels_last)
    y = torch.randn(b, d, device=dev) * 0.1
    w = torch.ones(b, d, device=dev)
    trainer.net.train()
    saved = (copy.deepcopy(trainer.net.state_dict()),
             copy.deepcopy(trainer.optimizer.state_dict()))
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _, _ = trainer.net(x, y, w)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
    _sync(dev)
    seconds = time.perf_counter() - t0
    trainer.net.load_state_dict(saved[0])
    trainer.optimizer.load_state_dict(saved[1])
    return seconds


def measure(project: Path, size: int, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from core.project import Project
    from core.training import Recorder, TrainConfig, load_data
    from core.training.events import Callbacks
    from core.training.loop import Trainer

    with Project.open(project) as p:
        data = load_data(p, size)
    cfg = TrainConfig(method=args.method, image_size=size, batch_size=args.batch_size,
                      device=args.device, backbone=args.backbone, workers=workers,
                      epochs=args.repeats + 1, compile=args.compile, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(0, cfg, data, Callbacks(), lambda: False, Recorder(), Path(tmp) / "ck.pt",
                    writer=False)
        try:
            t.method.start(t.fit_context(0))  # the method's weights, as before epoch 1
            steps = len(data.train) // min(cfg.batch_size, len(data.train))
            images = steps * cfg.batch_size
            t.train_epoch()  # warm-up: workers start, allocator and kernels settle
            pure_steps(t, steps)
            trainer_s, pure_s, wait, device, phases, step_seconds = [], [], [], [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                stats = t.train_epoch()
                _sync(t.device)
                trainer_s.append(time.perf_counter() - t0)
                wait.append(stats.data_wait_share)
                phases.append(stats.phases)
                step_seconds.append(stats.phase_seconds)
                device.append(stats.device)
                pure_s.append(pure_steps(t, steps))
        finally:
            t.close()
    trainer_rate = images / min(trainer_s)
    pure_rate = images / min(pure_s)
    row: dict[str, Any] = {
        "image_size": size, "workers": t.batches.workers, "batch_size": cfg.batch_size,
        "steps_per_pass": steps, "repeats": args.repeats,
        "trainer_images_per_s": trainer_rate, "pure_images_per_s": pure_rate,
        "ratio": trainer_rate / pure_rate,
        "ratio_median": statistics.median(pure_s) / statistics.median(trainer_s),
        # each trainer pass against the pure pass timed right after it (the same load)
        "ratio_paired": statistics.median(
            [p / t for p, t in zip(pure_s, trainer_s, strict=True)]),
        "trainer_seconds": trainer_s, "pure_seconds": pure_s,
        "data_wait_share": float(np.median(wait)),
        # inside the trainer's own passes: the share of each phase (the same pass,
        # so a slow spell of the machine moves both sides alike), and the model's
        # step in the pass against the pure step timed right after (about 1 when
        # the step is the same work on real and on random tensors)
        "phase_shares": {k: float(np.median([ph[k] for ph in phases])) for k in phases[0]},
        "step_share": float(np.median([ph["step"] for ph in phases])),
        "step_vs_pure": float(np.median(
            [s["step"] / p for s, p in zip(step_seconds, pure_s, strict=True)])),
        "device": str(t.device), "torch_threads": torch.get_num_threads()}
    for key in ("gpu_util", "gpu_memory_mb", "gpu_memory_reserved_mb"):
        vals = [d[key] for d in device if key in d]
        if vals:
            row[key] = float(np.median(vals)) if key == "gpu_util" else float(max(vals))
    return row


def build_project(folder: Path, args: argparse.Namespace) -> tuple[Path, str]:
    from core.importer import import_source
    from core.project import Project

    path = folder / "throughput.gumshoe"
    if args.source:
        with Project.create(path) as project:
            import_source(project, args.source, args.format, args.task)
        return path, str(args.source)
    from tests.core.synth import make_dots_project

    path = make_dots_project(folder, n=args.synthetic, side=max(args.sizes) + 32)
    return path, f"synthetic ellipses x{args.synthetic}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, help="a dataset (default: drawn ellipses)")
    p.add_argument("--format", default="auto")
    p.add_argument("--task")
    p.add_argument("--synthetic", type=int, default=1024, help="drawn images without --source")
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--workers", default="-1",
                   help="comma-separated loader worker counts to compare (-1 = auto)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed passes of each (medians)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", default="cnn")
    p.add_argument("--method", default="deepgum")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    import torch

    out: dict[str, Any] = {
        "benchmark": "throughput: trainer's training pass vs pure compute, same model and batch",
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "settings": {"batch_size": args.batch_size, "repeats": args.repeats,
                     "backbone": args.backbone, "method": args.method, "compile": args.compile},
        "results": []}
    with tempfile.TemporaryDirectory(prefix="gumshoe-throughput-") as tmp:
        project, source = build_project(Path(tmp), args)
        out["source"] = source
        for size in args.sizes:
            for workers in (int(w) for w in args.workers.split(",")):
                row = measure(project, size, workers, args)
                out["results"].append(row)
                print(f"{size:4d} px  workers {row['workers']}  trainer "
                      f"{row['trainer_images_per_s']:7.1f} img/s  pure "
                      f"{row['pure_images_per_s']:7.1f} img/s  ratio {row['ratio']:.3f} "
                      f"(medians {row['ratio_median']:.3f}, pairs {row['ratio_paired']:.3f})  "
                      f"data wait {100 * row['data_wait_share']:.1f}%  step share {row['step_share']:.3f} "
                      f"(in-pass step / pure {row['step_vs_pure']:.3f})", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
