"""Checkpoints: one file per run in the project's cache folder, written atomically
(a temporary file renamed over the old one) at the end of every epoch, loaded with
``weights_only=True`` and checked like any other input before use.

Version 2 holds the method's ``state_dict`` (``method_state``); version 1 (before
methods were plug-ins) held DeepGUM's mixture as ``criterion`` and its residuals
as ``train_res`` and is converted on load.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import torch

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
    and a full disk is one line naming the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _disk_full(exc):
            raise OSError(errno.ENOSPC, f"disk full: {path}") from None
        raise


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a failed write as a RuntimeError ("enforce fail ...")
    return isinstance(exc, RuntimeError) and ("file write failed" in str(exc)
                                              or "No space left" in str(exc))


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
