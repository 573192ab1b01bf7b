"""The benchmark's summaries: medians over seeds, pooled reliability diagrams (and
their picture), and paired tests between methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.metrics import paired_wilcoxon, summarise

FIELDS = ("auroc", "auprc", "precision", "recall", "ece", "flagged_share", "issue_accuracy",
          "image_auroc", "image_precision", "image_recall",
          "test_nme", "failure_rate", "test_mae", "skill", "seconds", "train_images_per_s",
          "estep_share",
          "eval_share", "data_wait_share", "gpu_util", "gpu_memory_mb")
DEVICE_FIELDS = ("gpu_util", "gpu_memory_mb")  # printed only where measured (CUDA)


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def line(row: dict[str, Any]) -> str:
    return (f"{row['method']:9s} {row['noise']:>10s} seed {row['seed']}: "
            + " ".join(f"{k} {fmt(row.get(k))}" for k in FIELDS
                       if k not in DEVICE_FIELDS or row.get(k) is not None))


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, noise): the median over seeds and the range, for every field."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["method"], r["noise"]), []).append(r)
    out = []
    for (method, noise), rows in groups.items():
        entry: dict[str, Any] = {"method": method, "noise": noise, "seeds": len(rows)}
        for k in FIELDS:
            s = summarise([r.get(k) for r in rows])
            entry[k] = s["median"]
            entry[f"{k}_range"] = [s["low"], s["high"]]
        entry["reliability"] = pool_reliability([r.get("reliability") or [] for r in rows])
        out.append(entry)
    return out


def pool_reliability(diagrams: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Several reliability diagrams with the same bins (one per seed) as one."""
    bins: dict[tuple[float, float], list[float]] = {}
    for diagram in diagrams:
        for b in diagram:
            acc = bins.setdefault((b["low"], b["high"]), [0.0, 0.0, 0.0])
            acc[0] += b["count"]
            acc[1] += b["count"] * b["mean_prob"]
            acc[2] += b["count"] * b["wrong_share"]
    return [{"low": lo, "high": hi, "count": int(n), "mean_prob": sp / n, "wrong_share": sw / n}
            for (lo, hi), (n, sp, sw) in sorted(bins.items()) if n > 0]


def reliability_png(entries: list[dict[str, Any]], path: Path) -> Path:
    """One reliability diagram per noise protocol (a panel each, a line per method,
    the share of units each bin holds as a bar underneath), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = list(dict.fromkeys(e["noise"] for e in entries))
    fig, axes = plt.subplots(2, len(noises), figsize=(4.2 * len(noises), 5.6),
                             gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for col, noise in enumerate(noises):
        ax, hist = axes[0][col], axes[1][col]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for e in (e for e in entries if e["noise"] == noise and e.get("reliability")):
            rel = e["reliability"]
            x = [b["mean_prob"] for b in rel]
            y = [b["wrong_share"] for b in rel]
            ece = e.get("ece")
            label = e["method"] + ("" if ece is None else f" (ECE {ece:.3f})")
            ax.plot(x, y, marker="o", ms=3, lw=1.2, label=label)
            total = sum(b["count"] for b in rel)
            hist.plot([(b["low"] + b["high"]) / 2 for b in rel],
                      [b["count"] / total for b in rel], marker=".", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=noise, xlabel="P(wrong) given",
               ylabel="share truly wrong" if col == 0 else None)
        ax.legend(fontsize=7, loc="upper left")
        hist.set(xlim=(0, 1), yscale="log", xlabel="P(wrong) given",
                 ylabel="share of units" if col == 0 else None)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparisons(errors: dict[tuple[str, str, int], dict[int, float]]) -> list[dict[str, Any]]:
    """DeepGUM against each other method: Wilcoxon signed-rank on paired per-sample
    test errors, pooled over seeds (pairs are the same test sample in the same seed)."""
    out = []
    noises = sorted({n for _, n, _ in errors})
    methods = sorted({m for m, _, _ in errors} - {"deepgum"})
    for noise in noises:
        for other in methods:
            a, b = [], []
            for (m, n, seed), errs in errors.items():
                if m != "deepgum" or n != noise or (other, noise, seed) not in errors:
                    continue
                theirs = errors[(other, noise, seed)]
                for sid, e in errs.items():
                    if sid in theirs:
                        a.append(e)
                        b.append(theirs[sid])
            test = paired_wilcoxon(np.array(a), np.array(b))
            if test is not None:
                out.append({"a": "deepgum", "b": other, "noise": noise, **test})
    return out
