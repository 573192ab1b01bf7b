from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.noise import NoiseError, apply_noise, contaminate, parse_spec
from core.project import Label, LabelSchema, NewSample, Project
from core.schemas import IBUG68

AGE = LabelSchema(task="age", name="age")


def landmark_labels(n: int, k: int = 68, seed: int = 0, missing: int = 0
                    ) -> tuple[dict[int, Label], dict[int, tuple[int, int, None]]]:
    rng = np.random.default_rng(seed)
    labels, geo = {}, {}
    for sid in range(1, n + 1):
        pts = rng.uniform(20, 180, (k, 2))
        vis = np.full(k, 2, np.int8)
        if missing:
            gone = rng.choice(k, missing, replace=False)
            pts[gone] = np.nan
            vis[gone] = 0
        labels[sid] = Label(sid, sid, pts, vis, None, "import", "", "", "")
        geo[sid] = (200, 160, None)
    return labels, geo


def changed_units(before: dict[int, Label], after: dict[int, Label]) -> dict[int, list[int]]:
    out = {}
    for sid, lab in after.items():
        diff = ~np.isclose(before[sid].points, lab.points, equal_nan=True).all(axis=1)
        out[sid] = [int(i) for i in np.flatnonzero(diff)]
    return out


# ----------------------------------------------------------------------------- spec


def test_parse_spec() -> None:
    s = parse_spec("g-ugo:0.05, L-UGO:0.15")
    assert s.terms == (("g-ugo", 0.05), ("l-ugo", 0.15))
    assert str(s) == "g-ugo:0.05,l-ugo:0.15"
    assert parse_spec(str(s)) == s
    for bad, msg in [("l-ugo", "needs a share"), ("l-ugo:x", "needs a share"),
                     ("l-ugo:1.5", "between 0 and 1"), ("blur:0.1", "unknown kind 'blur'"),
                     ("", "unknown kind ''"), ("ngo:0.1,ngo:0.2", "given twice"),
                     ("ngo:nan", "between 0 and 1")]:
        with pytest.raises(NoiseError, match=msg):
            parse_spec(bad)


def test_wrong_task_is_refused() -> None:
    labels, geo = landmark_labels(3)
    with pytest.raises(NoiseError, match="age-u needs age labels"):
        contaminate(labels, geo, "age-u:0.1", 0, IBUG68)


# ----------------------------------------------------------------------------- kinds


def test_l_ugo_exact_share_seeded_and_truth_matches_changes() -> None:
    labels, geo = landmark_labels(50, missing=4)
    new, truth = contaminate(labels, geo, "l-ugo:0.3", 7, IBUG68)
    eligible = 50 * 64
    assert sum(len(t[1]) for t in truth.values()) == round(0.3 * eligible)
    assert changed_units(labels, new) == {sid: t[1] for sid, t in truth.items()}
    assert not any(t[0] for t in truth.values())
    for sid, lab in new.items():
        assert lab.origin == "noise"
        np.testing.assert_array_equal(np.isnan(lab.points), np.isnan(labels[sid].points))
        np.testing.assert_array_equal(lab.visibility, labels[sid].visibility)
        moved = lab.points[truth[sid][1]]
        assert (moved >= 0).all() and (moved[:, 0] < 200).all() and (moved[:, 1] < 160).all()
    again, truth2 = contaminate(labels, geo, "l-ugo:0.3", 7, IBUG68)
    assert truth2 == truth
    assert all(np.array_equal(again[s].points, new[s].points, equal_nan=True) for s in new)
    assert contaminate(labels, geo, "l-ugo:0.3", 8, IBUG68)[1] != truth


def test_zero_share_changes_nothing() -> None:
    labels, geo = landmark_labels(10)
    assert contaminate(labels, geo, "l-ugo:0,g-ugo:0,ngo:0,swap:0", 0, IBUG68) == ({}, {})


def test_g_ugo_corrupts_whole_images() -> None:
    labels, geo = landmark_labels(40, missing=3)
    new, truth = contaminate(labels, geo, "g-ugo:0.25", 1, IBUG68)
    assert len(truth) == 10
    for sid, (img, lms) in truth.items():
        assert img and len(lms) == 65
        assert changed_units(labels, new)[sid] == lms


def test_ngo_scales_with_image_or_box() -> None:
    labels, _ = landmark_labels(200, k=68)
    big = {sid: (1000, 500, None) for sid in labels}
    boxed = {sid: (1000, 500, (0, 0, 100, 50)) for sid in labels}
    d_big = [np.nanmax(np.abs(lab.points - labels[s].points))
             for s, lab in contaminate(labels, big, "ngo:0.5", 3, IBUG68)[0].items()]
    new_box, truth = contaminate(labels, boxed, "ngo:0.5", 3, IBUG68)
    disp = np.concatenate([(lab.points - labels[s].points)[truth[s][1]] for s, lab in new_box.items()])
    assert sum(len(t[1]) for t in truth.values()) == round(0.5 * 200 * 68)
    assert disp.std() == pytest.approx(0.1 * 100, rel=0.05)  # sigma = 10% of the box's size
    assert max(d_big) > 10 * 100 * 0.1


def test_swap_uses_flip_pairs_and_skips_half_missing_pairs() -> None:
    labels, geo = landmark_labels(20)
    pts = labels[1].points
    pts[36] = np.nan  # right eye outer corner missing: its pair with 45 cannot swap
    labels[1] = Label(1, 1, pts, np.where(np.isfinite(pts[:, 0]), 2, 0).astype(np.int8),
                      None, "import", "", "", "")
    new, truth = contaminate(labels, geo, "swap:1", 0, IBUG68)
    assert len(truth) == 20 and all(t[0] for t in truth.values())
    perm = IBUG68.flip_permutation()
    for sid, lab in new.items():
        old = labels[sid].points
        lms = truth[sid][1]
        np.testing.assert_array_equal(lab.points[lms], old[perm[lms]])
        untouched = np.setdiff1d(np.arange(68), lms)
        np.testing.assert_array_equal(lab.points[untouched], old[untouched])
    assert 36 not in truth[1][1] and 45 not in truth[1][1] and 0 in truth[1][1]
    assert np.isnan(new[1].points[36]).all() and np.isfinite(new[1].points[45]).all()
    assert len(truth[2][1]) == 2 * len(IBUG68.flip_pairs)


def test_combined_terms_do_not_overlap() -> None:
    labels, geo = landmark_labels(100)
    _, truth = contaminate(labels, geo, "g-ugo:0.1,l-ugo:0.2", 5, IBUG68)
    assert sum(t[0] for t in truth.values()) == 10
    assert sum(len(t[1]) for t in truth.values()) == 10 * 68 + round(0.2 * 100 * 68)


def test_already_contaminated_units_are_left_alone() -> None:
    labels, geo = landmark_labels(30)
    _, first = contaminate(labels, geo, "l-ugo:0.2", 1, IBUG68)
    new, truth = contaminate(labels, geo, "l-ugo:0.2", 1, IBUG68, already=first)
    assert new == {} and truth == {}
    _, other = contaminate(labels, geo, "l-ugo:0.2", 2, IBUG68, already=first)
    for sid, (_, lms) in other.items():
        assert not set(lms) & set(first.get(sid, (False, []))[1])


def test_age_u() -> None:
    rng = np.random.default_rng(0)
    labels = {sid: Label(sid, sid, None, None, float(rng.integers(0, 70)), "import", "", "", "")
              for sid in range(1, 101)}
    labels[100] = Label(100, 100, None, None, None, "import", "", "", "")  # no age: not eligible
    new, truth = contaminate(labels, {}, "age-u:0.2", 4, AGE)
    assert len(new) == round(0.2 * 99) and set(new) == set(truth)
    ages = [lab.age for lab in labels.values() if lab.age is not None]
    for sid, lab in new.items():
        assert lab.age != labels[sid].age and lab.age == round(lab.age)
        assert min(ages) <= lab.age <= max(ages)
        assert truth[sid] == (True, [])
    assert 100 not in new


# ----------------------------------------------------------------------------- project


def make_project(tmp_path: Path, n: int = 40) -> Project:
    proj = Project.create(tmp_path / "p.gumshoe", IBUG68)
    src = proj.add_source(tmp_path, "test", "landmarks")
    labels, _ = landmark_labels(n, missing=2)
    proj.add_samples(src, [NewSample(key=f"k{sid}", path=f"k{sid}.png", width=200, height=160,
                                     content_hash=str(sid), points=lab.points,
                                     visibility=lab.visibility,
                                     split="val" if sid % 10 == 0 else "train")
                           for sid, lab in labels.items()])
    return proj


def test_apply_noise_stores_labels_and_truth(tmp_path: Path) -> None:
    with make_project(tmp_path) as proj:
        before = proj.current_labels()
        truth = apply_noise(proj, "g-ugo:0.1,l-ugo:0.1", seed=3)
        stored = proj.contamination()
        assert stored == {sid: (img, lms) for sid, (img, lms) in truth.items()}
        train = {s.id for s in proj.samples(split="train")}
        assert set(stored) <= train  # val stays clean
        after = proj.current_labels()
        assert changed_units(before, {s: after[s] for s in truth}) == {
            s: t[1] for s, t in truth.items()}
        assert all(after[s].origin == "noise" and after[s].author == "noise" for s in truth)
        assert all(after[s].origin == "import" for s in after if s not in truth)
        n_labels = proj.info()["labels"]
        assert apply_noise(proj, "g-ugo:0.1,l-ugo:0.1", seed=3) == {}  # idempotent
        assert proj.info()["labels"] == n_labels and proj.contamination() == stored
        # a different seed adds, merging the truth of samples hit twice
        more = apply_noise(proj, "l-ugo:0.1", seed=4)
        merged = proj.contamination()
        for sid, (_, lms) in more.items():
            assert set(lms) <= set(merged[sid][1])
            assert set(stored.get(sid, (False, []))[1]) <= set(merged[sid][1])
        spec = proj.conn.execute("SELECT spec FROM contamination WHERE sample_id = ?",
                                 (next(s for s in more if s in stored),)).fetchone()[0]
        assert spec == "g-ugo:0.1,l-ugo:0.1;l-ugo:0.1"


def test_apply_noise_is_one_transaction(tmp_path: Path) -> None:
    with make_project(tmp_path) as proj:
        n_labels = proj.info()["labels"]
        proj.conn.execute("DROP TABLE contamination")  # make the truth write fail
        with pytest.raises(Exception, match="contamination"):
            apply_noise(proj, "l-ugo:0.2", seed=0)
        assert proj.info()["labels"] == n_labels  # the corrupted labels were rolled back


def test_apply_noise_subset(tmp_path: Path) -> None:
    with make_project(tmp_path) as proj:
        truth = apply_noise(proj, "g-ugo:0.5", seed=0, sample_ids=[1, 2, 3, 4, 10])
        assert len(truth) == 2 and set(truth) <= {1, 2, 3, 4}  # 10 is in val


def test_apply_noise_on_ages(tmp_path: Path) -> None:
    with Project.create(tmp_path / "a.gumshoe", AGE) as proj:
        src = proj.add_source(tmp_path, "test", "age")
        proj.add_samples(src, [NewSample(key=f"k{i}", path=f"k{i}.jpg", width=10, height=10,
                                         content_hash=str(i), age=float(i)) for i in range(50)])
        truth = apply_noise(proj, "age-u:0.1", seed=2)
        assert len(truth) == 5 and proj.contamination() == truth
        labels = proj.current_labels()
        for sid in truth:
            assert labels[sid].origin == "noise"
            assert labels[sid].age != proj.original_label(sid).age
        with pytest.raises(NoiseError, match="l-ugo needs landmarks labels"):
            apply_noise(proj, "l-ugo:0.1", seed=2)
