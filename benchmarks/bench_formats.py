"""Figures for the formats issue (DeepLabCut, SLEAP, CVAT, Label Studio, YOLO-pose, menpo),
measured on the two real DeepLabCut projects, every step through the ``gumshoe`` command
line in its own process (what a user runs):

* round trips: ``import`` the project, ``export`` it in every landmark format, ``import``
  the export again (``--format auto``), and compare each sample's points with the first
  import (same frames, same missing points, largest coordinate difference);
* the end-to-end run the issue asks for: ``import`` -> ``train`` -> ``rank`` on
  ``dlc-openfield``, and how many frames the review queue shows as flagged (score > 0,
  the one flag rule);
* detection on ``dlc-openfield``: ``gumshoe bench`` with known contamination (whole frames
  moved, single points moved, left/right ear swaps), to say what the flagged frames mean.

Usage: python benchmarks/bench_formats.py [--datasets ../shared/datasets]
       [--epochs 30] [--image-sizes 64,128] [--seeds 1] [--skip-detection] --json benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from core.formats import EXPORT_SUFFIX, WRITERS
from core.project import Project

DLC_SETS = ("dlc-openfield", "dlc-reaching")
NOISE = ("g-ugo:0.1", "l-ugo:0.1", "swap:0.2")


def gumshoe(*args: str | Path) -> tuple[float, str]:
    """Run ``python -m core ARGS`` in a new process; (seconds, stdout). Fails loudly."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"gumshoe {' '.join(map(str, args))} failed ({done.returncode}):\n"
                         f"{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def labels_by_frame(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The current points of every sample, keyed by the frame's file name."""
    with Project.open(path) as p:
        samples = p.samples()
        labels = p.current_labels()
        names = [Path(s.path).name for s in samples]
        return {Path(s.path).name: labels[s.id].points for s in samples}, names


def compare(first: dict[str, np.ndarray], back: dict[str, np.ndarray]) -> dict[str, object]:
    """Same frames, same missing points, largest difference of the points present."""
    same_frames = sorted(first) == sorted(back)
    if same_frames:
        pairs = [(first[k], back[k]) for k in sorted(first)]
    else:  # a writer that renames frames (pts): match by the points themselves
        def order(d: dict[str, np.ndarray]) -> list[np.ndarray]:
            return sorted(d.values(),
                          key=lambda a: tuple(np.nan_to_num(a, nan=-1e9).round(3).ravel()))
        pairs = list(zip(order(first), order(back), strict=False))
    missing_same = all(np.array_equal(np.isnan(a), np.isnan(b)) for a, b in pairs)
    diffs = [np.nanmax(np.abs(a - b)) for a, b in pairs if not np.isnan(a).all()]
    return {"frames": len(first), "frames_back": len(back), "same_frame_names": same_frames,
            "same_missing_points": missing_same,
            "missing_points": int(sum(np.isnan(a).any(axis=1).sum() for a in first.values())),
            "max_abs_diff_px": float(max(diffs)) if diffs else 0.0}


def bench_round_trips(datasets: Path, tmp: Path) -> list[dict[str, object]]:
    out = []
    for name in DLC_SETS:
        src = datasets / name
        if not src.exists():
            print(f"skip {name}: {src} not found")
            continue
        first_path = tmp / f"{name}.gumshoe"
        gumshoe("import", first_path, src, "--format", "dlc", "--strict")
        first, _ = labels_by_frame(first_path)
        for fmt in WRITERS:
            export = tmp / f"{name}-{fmt}{EXPORT_SUFFIX[fmt]}"
            t_export, _ = gumshoe("export", first_path, export, "--format", fmt, "--no-report")
            back_path = tmp / f"{name}-{fmt}.gumshoe"
            # csv and coco point at the images where they are, outside the export's own
            # folder: importing them back needs --allow-outside-root (folder exports copy
            # the images; slp frames are decoded into the project's cache)
            outside = ["--allow-outside-root"] if fmt in ("csv", "coco") else []
            t_import, said = gumshoe("import", back_path, export, "--strict", *outside)
            detected = said.split("(", 1)[1].split(",", 1)[0] if "(" in said else "?"
            back, _ = labels_by_frame(back_path)
            row = {"dataset": name, "format": fmt, "detected_as": detected,
                   "import_options": outside,
                   **compare(first, back), "export_s": round(t_export, 2),
                   "import_s": round(t_import, 2)}
            row["within_1e-4"] = bool(row["same_missing_points"] and row["frames"] == row["frames_back"]
                                      and row["max_abs_diff_px"] <= 1e-4)
            print(json.dumps(row))
            out.append(row)
    return out


def bench_pipeline(datasets: Path, tmp: Path, epochs: int, image_size: int) -> dict[str, object]:
    src = datasets / "dlc-openfield"
    path = tmp / f"openfield-{image_size}.gumshoe"
    t_import, _ = gumshoe("import", path, src)
    t_train, _ = gumshoe("train", path, "--epochs", epochs, "--image-size", image_size,
                         "--seed", 0, "--quiet")
    t_rank, ranked = gumshoe("rank", path, "--json", "--top", 10)
    top = json.loads(ranked)
    with Project.open(path) as p:
        total = p.queue_count()
        flagged = p.queue_count(min_score=0.0)
    row = {"dataset": "dlc-openfield", "epochs": epochs, "image_size": image_size,
           "import_s": round(t_import, 2), "train_s": round(t_train, 2), "rank_s": round(t_rank, 2),
           "queue_rows": total, "queue_flagged": flagged,
           "top10": [{"path": s["path"], "score": round(s["score"], 3),
                      "worst_landmarks": s["worst_landmarks"]} for s in top["samples"]]}
    print(json.dumps({k: v for k, v in row.items() if k != "top10"}))
    return row


def bench_detection(datasets: Path, tmp: Path, epochs: int, seeds: int,
                    image_size: int) -> dict[str, object]:
    out = tmp / f"detection-{image_size}.json"
    args: list[str | Path] = ["bench", datasets / "dlc-openfield", "--methods", "deepgum",
                              "--seeds", str(seeds), "--epochs", str(epochs),
                              "--image-size", str(image_size), "--json", out]
    for spec in NOISE:
        args += ["--noise", spec]
    seconds, said = gumshoe(*args)
    print(said)
    result = json.loads(out.read_text())
    keep = ("method", "noise", "seeds", "auroc", "auroc_range", "auprc", "precision", "recall",
            "flagged_share", "test_nme", "seconds")
    return {"image_size": image_size, "epochs": epochs, "seconds": round(seconds, 1),
            "summary": [{k: s.get(k) for k in keep} for s in result["summary"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--image-sizes", default="64,128",
                    help="input sizes of the pipeline and detection runs, comma-separated")
    ap.add_argument("--seeds", type=int, default=1, help="detection seeds per size and noise")
    ap.add_argument("--skip-detection", action="store_true")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    if not (args.datasets / "dlc-openfield").exists():
        raise SystemExit(f"{args.datasets / 'dlc-openfield'}: not found (pass --datasets)")
    results: dict[str, object] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results["round_trips"] = bench_round_trips(args.datasets, tmp)
        sizes = [int(size) for size in args.image_sizes.split(",")]
        results["pipeline"] = [bench_pipeline(args.datasets, tmp, args.epochs, size)
                               for size in sizes]
        if not args.skip_detection:
            results["detection"] = [bench_detection(args.datasets, tmp, args.epochs, args.seeds,
                                                    size) for size in sizes]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
