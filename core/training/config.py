"""The settings of one training run (stored with the run, so a resume trains as
the run began)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.models import HEADS
from core.robust import REGISTRY
from core.robust.mixture import UNITS

DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_IMAGE_SIZE = 1024

# Automatic epochs (``epochs=0``). A landmark model trained from scratch needs a
# number of optimiser steps more than a number of passes: on FG-NET's 700 training
# faces (21 batches an epoch) 30 epochs left the network placing points loosely
# enough that ngo:0.3 AUROC was 0.979 and a correct face scored over 0.99; 100
# epochs (2,100 steps) reached 0.986 and no correct face over 0.99, with the test
# error down from 1.8-1.9 % to 1.6-1.8 % (benchmarks/results/2026-12-03-engine).
# So a landmark run takes enough epochs for AUTO_STEPS steps, 30 to 100 of them.
# The ceiling is there for tiny sets: on a DeepLabCut project's 81 training frames
# (2 batches an epoch) 1,000 epochs placed points closer than 100 (test error 1.0-3.6 %
# against 4.1-4.9 %) but flagged 14-44 % of the clean frames against 5-14 %: the
# network learns its few training labels too closely to judge them
# (benchmarks/results/2026-12-03-inlier-floor; before the mixture's inlier-share floor
# it did not learn at 100 and flagged every clean frame at 1,000).
# Ages keep 30: on UTKFace 100 epochs began to learn the wrong ages.
AUTO_STEPS = 2100
AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX = 30, 100


# Automatic weight decay (``weight_decay=None``), AdamW's decoupled decay. Ages take
# 0.05: the age model from scratch overfits its 4,100 UTKFace training faces (4.7 years
# off on the clean ones against 6.8 on the test faces) and its prediction for a face
# given a wrong age moves 12 % of the way towards it (age-u:0.3, seed 0); with
# 0.05 age-u:0.3 AUROC rose in each of 3 seeds (0.914 / 0.910 / 0.900 against 0.908 /
# 0.905 / 0.897) with the test error no worse (6.72 years in each against 6.58-6.99);
# 0.2 was worse (0.907, 6.89 years) (benchmarks/results/2026-12-03-ages). Landmarks
# keep 1e-4, on which every FG-NET figure was measured (0.05 changed ngo:0.1 there by
# under 0.002 in one seed).
AUTO_WEIGHT_DECAY = {"age": 0.05, "landmarks": 1e-4}


def auto_weight_decay(task: str) -> float:
    """The weight decay of a run whose config leaves it automatic (None)."""
    return AUTO_WEIGHT_DECAY.get(task, AUTO_WEIGHT_DECAY["landmarks"])


AUTO_EPOCHS_TEXT = (f"enough epochs for about {AUTO_STEPS:,} optimiser steps on landmarks "
                    f"({AUTO_EPOCHS_MIN} to {AUTO_EPOCHS_MAX}), {AUTO_EPOCHS_MIN} on ages")


def auto_epochs(task: str, n_train: int, batch_size: int) -> int:
    """The epochs of a run whose config asks for ``epochs=0`` (automatic), from its
    task and its number of training samples."""
    if task != "landmarks":
        return AUTO_EPOCHS_MIN
    steps_per_epoch = max(1, n_train // max(1, min(batch_size, n_train)))
    return min(AUTO_EPOCHS_MAX, max(AUTO_EPOCHS_MIN, -(-AUTO_STEPS // steps_per_epoch)))


@dataclass(frozen=True)
class TrainConfig:
    method: str = "deepgum"  # a name of core.robust.REGISTRY
    epochs: int = 0  # 0 = automatic: auto_epochs(), fixed when the run is created
    image_size: int = 64
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float | None = None  # None = automatic: auto_weight_decay(), fixed at creation
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    backbone: str = "cnn"  # cnn | resnet18 | resnet34 | resnet50 | timm:NAME
    weights: str | None = None  # local ImageNet weights file for a backbone other than cnn
    # auto: heatmap (integral regression) for landmarks, fc for ages. At 30 epochs the
    # heatmap head placed FG-NET's points closer (test error 1.72 % vs 1.87-1.99 %) but
    # flagged 2.3 % of FG-NET's own faces where fc flagged 0.3-1.0 %; with the automatic
    # epochs (100 there), medians of 3 seeds: test error 1.43 % vs 1.64 % (ngo:0.1),
    # ngo:0.1 recall 0.901 vs 0.860, ngo:0.0016 image AUROC 0.979 vs 0.966, and still
    # quiet on clean faces (0.14-0.28 % flagged vs 0-0.14 %)
    # (benchmarks/results/2026-12-03-defaults). Config version 2 read auto as heatmap too,
    # version 3 as fc: each stored run keeps the head its checkpoint holds
    head: str = "auto"  # auto | fc | heatmap
    unit: str = "auto"  # DeepGUM mixture unit: auto (landmark, or sample for age) | landmark | sample | dimension
    variance: str = "diagonal"  # diagonal | isotropic
    warmup_epochs: int = 0  # plain least-squares epochs before the first EM round
    em_iterations: int = 1  # EM iterations per round (one round per epoch)
    # where DeepGUM's E-step residuals come from: "evaluation" = eval mode, no
    # augmentation, each training sample re-evaluated every ``refresh_epochs`` epochs (a
    # rotating 1/refresh_epochs share per epoch; 1 = all of them every epoch);
    # "training" = the training pass itself (each sample's augmented residual mapped
    # back to its label frame: free); "auto" = training for ages, whose labels the
    # augmentation does not move, evaluation for landmarks
    estep_residuals: str = "auto"
    refresh_epochs: int = 4
    flip: bool = True
    scale_jitter: float = 0.05  # +- share of the size
    rotate_jitter: float = 10.0  # +- degrees
    shift_jitter: float = 0.05  # +- share of the size
    tta: bool = True  # flip test-time augmentation when scoring
    # cross-fitting: K > 1 trains K models on all but one fold each (a training label is
    # judged by the model that did not learn it) and a final one (core.training.folds)
    folds: int = 1
    score_every: int = 5  # epochs between score writes (and always at the end)
    amp: bool = True  # bfloat16 autocast on CUDA
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    # how the run executes, not what it learns (a resume may change them):
    workers: int = -1  # data-loader processes; -1 = auto (0 on a CPU, see core.training.loader)
    compile: bool = False  # torch.compile the training step (worth it on a GPU, long runs)
    # 1: written before methods were plug-ins (its "deepgum" had no scale head);
    # 2: head auto meant heatmap for landmarks; 3: fc (and epochs had no auto);
    # 4: heatmap again, epochs 0 = automatic
    config_version: int = 4

    def __post_init__(self) -> None:
        if self.method not in REGISTRY:
            raise ValueError(f"unknown method {self.method!r} (expected one of {', '.join(REGISTRY)})")
        if self.unit != "auto" and self.unit not in UNITS:
            raise ValueError(f"unknown mixture unit {self.unit!r} (expected auto or one of {', '.join(UNITS)})")
        if self.estep_residuals not in ("auto", "training", "evaluation"):
            raise ValueError(f"unknown E-step residual source {self.estep_residuals!r} "
                             "(expected auto, training or evaluation)")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r} (expected auto, cpu, cuda or mps)")
        if not 1 <= self.folds <= 10:
            raise ValueError("folds must be from 1 (no cross-fitting) to 10")
        if self.workers < -1:
            raise ValueError("workers must be -1 (auto), 0 (read in the training thread) or more")
        if self.refresh_epochs < 1:
            raise ValueError("refresh_epochs must be >= 1")
        if self.epochs < 0 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 (or 0: automatic) and batch size >= 2")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError("weight decay must be >= 0 (or None: automatic)")
        if self.head != "auto" and self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r} (expected one of {', '.join(HEADS)})")
        if not (32 <= self.image_size <= MAX_IMAGE_SIZE) or self.image_size % 32:
            raise ValueError(f"image size {self.image_size} must be a multiple of 32 from 32 "
                             f"to {MAX_IMAGE_SIZE}")

    def with_epochs_for(self, task: str, n_train: int) -> TrainConfig:
        """This config with automatic epochs (0) made a number for ``task`` and
        ``n_train`` training samples; itself where they are fixed already."""
        if self.epochs:
            return self
        return dataclasses.replace(self, epochs=auto_epochs(task, n_train, self.batch_size))

    def for_task(self, task: str, n_train: int) -> TrainConfig:
        """This config with every automatic setting (epochs, weight decay) made a
        number for ``task`` and ``n_train`` training samples: what a run stores."""
        cfg = self.with_epochs_for(task, n_train)
        return dataclasses.replace(cfg, weight_decay=cfg.weight_decay_for(task))

    def weight_decay_for(self, task: str) -> float:
        """The weight decay this run trains with for ``task``."""
        return auto_weight_decay(task) if self.weight_decay is None else self.weight_decay

    def head_for(self, task: str) -> str:
        """The head this run builds for ``task``."""
        if self.head != "auto":
            return self.head
        heatmap_era = self.config_version == 2 or self.config_version >= 4
        return "heatmap" if task == "landmarks" and heatmap_era else "fc"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings {', '.join(unknown)}")
        if "estep_residuals" not in d:  # a run saved before the setting: it refreshed all
            d = {**d, "estep_residuals": "evaluation", "refresh_epochs": 1}
        if "config_version" not in d:  # its DeepGUM is today's deepgum-global
            d = {**d, "config_version": 1, "head": "fc"}
            if d.get("method") == "deepgum":
                d["method"] = "deepgum-global"
        return cls(**d)
