from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.demo import draw_face, landmarks, make_demo, random_face
from core.formats.pts import read_pts
from core.images import ImageCache, load_image
from core.noise import parse_spec
from core.project import Project, ProjectError
from core.schemas import IBUG68


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done: list[int] = []
    path = make_demo(tmp_path_factory.mktemp("demo") / "demo.gumshoe", n=40, seed=1,
                     noise="g-ugo:0.1,l-ugo:0.1", progress=done.append)
    assert done == list(range(1, 41))
    return path


def test_demo_project(demo: Path) -> None:
    with Project.open(demo) as proj:
        assert proj.schema == IBUG68
        samples = proj.samples()
        assert len(samples) == 40
        assert 0 < sum(s.split == "val" for s in samples) < 12
        labels = proj.current_labels()
        for s in samples:
            assert s.image_path.exists() and (s.width, s.height) == (256, 256)
            assert labels[s.id].points.shape == (68, 2)
            original = proj.original_label(s.id).points
            assert np.isfinite(original).all()
            # the clean landmarks are also written beside the image
            np.testing.assert_allclose(read_pts(s.image_path.with_suffix(".pts")), original,
                                       atol=1e-3)
        truth = proj.contamination()
        train = [s for s in samples if s.split == "train"]
        assert sum(img for img, _ in truth.values()) == round(0.1 * len(train))
        n_lm = sum(len(lms) for img, lms in truth.values() if not img)
        assert n_lm == round(0.1 * 68 * len(train))
        for s in samples:
            moved = ~np.isclose(labels[s.id].points, proj.original_label(s.id).points).all(axis=1)
            assert sorted(np.flatnonzero(moved)) == truth.get(s.id, (False, []))[1]
        row = proj.conn.execute("SELECT spec, seed FROM contamination LIMIT 1").fetchone()
        assert parse_spec(row[0]) == parse_spec("g-ugo:0.1,l-ugo:0.1") and row[1] == 1
        # the image cache was filled at import: nothing left to decode, pixels match the files
        cache = ImageCache(proj.cache_dir, 64)
        assert cache.ensure(samples) == {}
        s = samples[5]
        expect = cv2.resize(load_image(s.image_path)[0], (64, 64), interpolation=cv2.INTER_AREA)
        assert np.abs(cache.batch([s.id])[0].astype(int) - expect).mean() < 2


def test_demo_refuses_existing_project(demo: Path) -> None:
    with pytest.raises(ProjectError, match="already exists"):
        make_demo(demo, n=2)


def test_demo_is_seeded(tmp_path: Path) -> None:
    a = make_demo(tmp_path / "a.gumshoe", n=3, seed=5, noise="")
    b = make_demo(tmp_path / "b.gumshoe", n=3, seed=5, noise="")
    pa, pb = Project.open(a), Project.open(b)
    assert [s.content_hash for s in pa.samples()] == [s.content_hash for s in pb.samples()]
    assert pa.contamination() == {}
    pa.close()
    pb.close()


def grad_at(grey: np.ndarray, pts: np.ndarray, r: int = 2) -> np.ndarray:
    g = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    out = []
    for x, y in np.round(pts).astype(int):
        out.append(g[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].max())
    return np.array(out)


def test_landmarks_sit_on_the_drawn_features() -> None:
    rng = np.random.default_rng(3)
    on, inside, dark_eye, cheek = [], [], [], []
    for _ in range(30):
        face = random_face(rng)
        img = draw_face(face, rng)
        grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (3, 3), 0)
        p = landmarks(face)
        centre = p[27:36].mean(axis=0)
        jaw = p[2:15]
        on.append(np.median(grad_at(grey, jaw)))  # the head's outline
        inside.append(np.median(grad_at(grey, jaw + 0.25 * (centre - jaw))))  # smooth cheek
        for eye in (p[36:42], p[42:48]):  # the pupil is inside the lids
            c = np.round(eye.mean(axis=0)).astype(int)
            dark_eye.append(grey[c[1] - 2 : c[1] + 3, c[0] - 2 : c[0] + 3].min())
        m = np.round((p[3] + p[31]) / 2).astype(int)
        cheek += [np.median(grey[m[1] - 2 : m[1] + 3, m[0] - 2 : m[0] + 3])] * 2

    assert np.mean(np.array(on) > 2 * np.array(inside)) > 0.9
    assert np.mean(np.array(dark_eye) < 0.7 * np.array(cheek)) > 0.9
