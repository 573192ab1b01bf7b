"""Leeds Sports Pose (extended): ``joints.mat`` holds ``joints``, 14 x 3 x N
(x, y, flag) in the LSP14 order, for ``images/im00001.jpg`` onwards.

In the published file the flag is 1 for a visible joint and 0 for one that is
not annotated, whose coordinates are meaningless (such as ``(0, -26)``): those
joints are stored as missing (NaN, visibility 0). Visible joints just outside
the frame (a head top at y = -1) are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import rel_key
from core.project import LabelSchema
from core.schemas import LSP14

MAT = "joints.mat"


class LspReader:
    name = "lsp"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        source = Path(source)
        return source.parent if source.suffix.lower() == ".mat" else source

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        return source.name == MAT if source.is_file() else (source / MAT).is_file()

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: LSP has body joints (landmarks), not {task!r}")
        return LSP14

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        self.schema(source, task)
        root = self.root(source)
        joints = load_joints(root / MAT)
        for i, j in enumerate(joints):
            image = root / "images" / f"im{i + 1:05d}.jpg"
            key = rel_key(image, root)
            visible = (j[:, 2] == 1) & np.isfinite(j[:, :2]).all(axis=1)
            if not image.is_file():
                yield Skip(key, "image missing")
            elif not visible.any():
                yield Skip(key, "no visible joint")
            else:
                points = np.where(visible[:, None], j[:, :2], np.nan)
                yield RawItem(key, image, points, np.where(visible, 2, 0).astype(np.int8))


def load_joints(path: Path) -> np.ndarray:
    """(N, 14, 3) float64: x, y, flag."""
    try:
        mat = loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as exc:
        raise FormatError(f"{path}: cannot read as a MATLAB file ({exc})") from None
    joints = mat.get("joints")
    if joints is None:
        raise FormatError(f"{path}: no 'joints' array")
    if joints.ndim != 3 or joints.shape[:2] != (14, 3):
        raise FormatError(f"{path}: 'joints' is {' x '.join(map(str, joints.shape))}, "
                          "expected 14 x 3 x N")
    return np.asarray(joints, dtype=np.float64).transpose(2, 0, 1)
