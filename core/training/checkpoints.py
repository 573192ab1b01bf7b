"""Checkpoints: one file per run in the project's cache folder, written atomically
(a temporary file renamed over the old one) at the end of every epoch, loaded with
``weights_only=True`` and checked like any other input before use.

Version 2 holds the method's ``state_dict`` (``method_state``); version 1 (before
methods were plug-ins) held DeepGUM's mixture as ``criterion`` and its residuals
as ``train_res`` and is converted on load.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import torch

from core.paths import disk_full, write_atomic
from core.project import Project

CHECKPOINT_FORMAT = "gumshoe-checkpoint"
CHECKPOINT_VERSION = 2
REQUIRED = ("model", "optimizer", "method_state", "generator", "torch_rng", "train_ids", "epoch")
V1_METHODS = {"deepgum": "deepgum-global"}  # a v1 "deepgum" is today's deepgum-global


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this run (one-line message)."""


def checkpoint_path(project: Project, run_id: int) -> Path:
    return project.cache_dir / "checkpoints" / f"run-{run_id}.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically; on failure nothing is left behind
    and a full disk is one line naming the file.

    The checkpoint is serialised in memory first and written with plain file writes:
    torch's own file writer reports a full disk as assorted RuntimeErrors ("enforce
    fail at inline_container.cc", "basic_ios::clear") and its traceback kept the
    unlinked temporary file open, so the space stayed used and the next write (the
    run's 'failed' status) found the disk still full."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()  # bytes: a view of the buffer, held by a traceback, would pin it
    buf.close()
    try:
        write_atomic(path, data)
    except OSError as exc:
        if disk_full(exc):
            raise OSError(errno.ENOSPC, f"disk full: {path}") from None
        raise


def load_checkpoint(path: Path, run_id: int, method: str, epochs: int) -> dict[str, Any]:
    """The checkpoint's contents (converted to the current version), refused with a
    one-line :class:`CheckpointError` when it is unreadable, not Gumshoe's, another
    run's, or holds values out of range (an epoch past the run's end, missing keys)."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable Gumshoe checkpoint ({reason})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a Gumshoe checkpoint")
    version = ck.get("version")
    if version == 1:
        ck = _from_v1(ck)
    elif version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version!r} is not supported "
                              f"(this Gumshoe reads versions 1 to {CHECKPOINT_VERSION})")
    if ck.get("run_id") != run_id or ck.get("method") != method:
        raise CheckpointError(f"{path}: checkpoint of run {ck.get('run_id')} ({ck.get('method')}), "
                              f"not of run {run_id} ({method})")
    missing = [k for k in REQUIRED if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    epoch = ck["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= epochs:
        raise CheckpointError(f"{path}: epoch {epoch!r} is not between 0 and the run's {epochs}")
    if not isinstance(ck["train_ids"], torch.Tensor) or ck["train_ids"].ndim != 1:
        raise CheckpointError(f"{path}: its list of training samples is malformed")
    for key in ("model", "optimizer", "method_state"):
        if not isinstance(ck[key], dict):
            raise CheckpointError(f"{path}: its {key} state is malformed")
    return ck


def check_states(path: Path, ck: dict[str, Any], model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer) -> None:
    """Refuse, before they are loaded, saved states that do not fit ``model`` and
    ``optimizer`` or hold non-finite numbers: every weight and every optimizer moment
    the shape of its parameter (a wrong one only failed at the first step, as a raw
    RuntimeError), every floating-point value finite (NaN weights trained and scored
    silently)."""
    own = model.state_dict()
    for key, value in ck["model"].items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: model entry {key!r} is not a tensor")
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(f"{path}: model entry {key!r} has shape {tuple(value.shape)}, "
                                  f"the model's is {tuple(own[key].shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: model entry {key!r} holds NaN or infinite values")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = ck["optimizer"].get("state", {})
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: its optimizer state is malformed")
    for index, entry in state.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(entry, dict):
            raise CheckpointError(f"{path}: its optimizer state does not fit this model")
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                continue
            if value.ndim and tuple(value.shape) != tuple(params[index].shape):
                raise CheckpointError(f"{path}: optimizer {name!r} of parameter {index} has shape "
                                      f"{tuple(value.shape)}, the parameter's is "
                                      f"{tuple(params[index].shape)}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{path}: optimizer {name!r} of parameter {index} holds "
                                      "NaN or infinite values")
    for key, value in _tensors(ck["method_state"]):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: method state {key!r} holds NaN or infinite values")


def _tensors(d: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts and lists, with its dotted path."""
    if isinstance(d, torch.Tensor):
        return [(prefix, d)]
    if isinstance(d, dict):
        return [t for k, v in d.items() for t in _tensors(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(d, list | tuple):
        return [t for i, v in enumerate(d) for t in _tensors(v, f"{prefix}[{i}]")]
    return []


def _from_v1(ck: dict[str, Any]) -> dict[str, Any]:
    out = dict(ck)
    out["version"] = CHECKPOINT_VERSION
    out["method"] = V1_METHODS.get(ck.get("method"), ck.get("method"))
    crit = ck.get("criterion", {})
    if out["method"] == "deepgum-global":
        extra: dict[str, Any] = {"mixture": crit}
        if "train_res" in ck:
            extra["train_res"] = ck["train_res"]
        out["method_state"] = {"_extra_state": extra}
    else:
        out["method_state"] = crit if isinstance(crit, dict) else {}
    return out
