"""The model on a batch of cached images: device choice, input conversion and the
evaluation pass (optionally with flip test-time augmentation)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.models import Model
from core.robust.base import Output, split_output
from core.training.augmentation import flip_outputs
from core.training.data import StopFn, TrainData, TrainingStopped
from core.training.loader import Item, batch_items

EVAL_BATCH = 64  # on a CPU, 4x larger batches ran at half the speed (cache misses)
# on a GPU: batches of this many pixels (2048 images at 64 px, 512 at 128, 128 at 256)
EVAL_PIXELS_GPU = 512 * 128 * 128

# reads the batches of a pass: items (rows, keys) -> (uint8 images, keys), in order
BatchSource = Callable[[Sequence[Item]], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def eval_batch(device: torch.device, image_size: int) -> int:
    """Images per evaluation batch: small on a CPU, large on a GPU (no gradients)."""
    if device.type == "cpu":
        return EVAL_BATCH
    return max(EVAL_BATCH, EVAL_PIXELS_GPU // (image_size * image_size))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None
                              and torch.backends.mps.is_available()):
        raise ValueError("device mps asked for, but it is not available")
    return torch.device(name)


def to_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [-0.5, 0.5], channels-last (the
    permuted view of the rows already is: one conversion pass, no reordering copy).
    The copy to the device does not wait for it (pinned rows on CUDA)."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
    return x.contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def forward(model: Model, x: torch.Tensor, n_dims: int, device: torch.device,
            amp: bool) -> Output:
    with autocast(device, amp):
        raw = model(x)
    return split_output(raw.float(), n_dims)


@dataclass(frozen=True)
class Predictions:
    """An evaluation pass over some samples: means (n, D), log scales (n, K) where
    the method predicts them, and with flip test-time augmentation half the
    difference between the image's and its mirror's means (n, D)."""

    mean: np.ndarray
    log_scale: np.ndarray | None = None
    spread: np.ndarray | None = None


def _read(data: TrainData) -> BatchSource:
    """Batches read in this thread, straight from the cache (no loader)."""
    def source(items: Sequence[Item]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows, keys in items:
            yield torch.from_numpy(data.images[rows]), torch.from_numpy(keys)
    return source


def _host(parts: list[torch.Tensor]) -> np.ndarray | None:
    """Device results of a pass, brought to the host in one copy (float64)."""
    if not parts:
        return None
    return torch.cat(parts).cpu().numpy().astype(np.float64)


@torch.inference_mode()
def predict(model: Model, data: TrainData, index: np.ndarray, device: torch.device,
            tta: bool, should_stop: StopFn | None, amp: bool,
            batch: int = EVAL_BATCH, source: BatchSource | None = None,
            steps: int | None = None) -> Predictions:
    """Normalised predictions of the samples ``index`` in eval mode (float64); with
    ``tta`` the mean over the image and its mirror (log scales averaged too).
    ``source`` reads the batches (a trainer's loader; default: read here);
    ``steps``: take at least this many steps, the last ones empty, so that every
    rank of a distributed pass checks ``should_stop`` as often. Results stay on
    the device until the pass ends (no host synchronisation per batch)."""
    model.eval()
    means, scales, spreads = [], [], []
    can_flip = tta and (data.task != "landmarks" or data.flip_perm is not None)
    n_dims = data.n_dims
    perm = None
    if can_flip and data.task == "landmarks" and data.flip_perm is not None:
        perm = torch.as_tensor(data.flip_perm).to(device)
    read = source if source is not None else _read(data)
    for images, _ in read(batch_items(np.asarray(index), batch, steps)):
        if should_stop is not None and should_stop():
            raise TrainingStopped
        if len(images) == 0:
            continue
        x = to_input(images, device)
        out = forward(model, x, n_dims, device, amp)
        p, ls = out.mean, out.log_scale
        if can_flip:
            mirror = forward(model, torch.flip(x, dims=[3]), n_dims, device, amp)
            q = flip_outputs(mirror.mean, data.flip_perm, data.task, perm)
            spreads.append((p - q).abs() / 2)
            p = (p + q) / 2
            if ls is not None and mirror.log_scale is not None:
                ml = mirror.log_scale
                if perm is not None:
                    ml = ml[:, perm]
                ls = (ls + ml) / 2
        means.append(p)
        if ls is not None:
            scales.append(ls)
    mean = _host(means)
    return Predictions(np.zeros((0, n_dims)) if mean is None else mean, _host(scales),
                       _host(spreads))
