"""The CSV writer formats whole chunks with numpy (core.formats.table_text): its output
must stay byte for byte what formatting one cell at a time with ``fmt`` and
``csv.writer`` wrote (kept below as the reference), on every kind of value."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.export import _cell, _json, _label_value
from core.formats import csv_format, table_text
from core.formats.common import csv_safe, fmt, rel_key
from core.project import Label, LabelSchema, NewSample, Project, Sample
from core.schemas import AGE, landmarks_schema
from core.store.label_table import label_tables


def reference_write(out: Path, schema: LabelSchema, records: list[tuple[Sample, Label]]) -> None:
    """The writer as it was before chunks: one Python call per cell."""
    has_box = any(s.box is not None for s, _ in records)
    if schema.task == "age":
        cols = ["age"]
    else:
        k = schema.n_keypoints
        cols = [c for i in range(k) for c in (f"x{i}", f"y{i}")]
        if any(lb.visibility is not None and (np.asarray(lb.visibility) == 1).any()
               for _, lb in records):
            cols += [f"v{i}" for i in range(k)]
    header = ["image", *(csv_format.BOX if has_box else ()), *cols]
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for sample, label in records:
            row = [csv_safe(rel_key(sample.image_path, out.parent))]
            if has_box:
                row += [fmt(v) for v in sample.box] if sample.box is not None else [""] * 4
            if schema.task == "age":
                row.append(fmt(label.age) if label.age is not None else "")
            else:
                pts = np.asarray(label.points, dtype=np.float64).reshape(-1, 2)
                cells = [fmt(v) if math.isfinite(x) and math.isfinite(y) else ""
                         for x, y in pts for v in (x, y)]
                if len(header) - len(row) > len(cells):
                    present = np.isfinite(pts).all(axis=1)
                    vis = label.visibility if label.visibility is not None else present * 2
                    cells += [str(int(v)) if p else "0" for v, p in zip(vis, present, strict=True)]
                row += cells
            w.writerow(row)


NAMES = ["a.jpg", "sub/b c.png", "=cmd.jpg", "+1.jpg", "-x.jpg", "@sum.jpg", "'quoted.jpg",
         "comma,name.jpg", 'quote"name.jpg', "line\nbreak.jpg", "été/ñ.jpg", "../outside.jpg",
         "./dot/./x.jpg", "-3.5", "tab\tname.jpg", "deep/er/path.jpg"]


def _records(rng: np.random.Generator, root: Path, n: int, k: int, *, boxes_from: int | None,
             occluded_from: int | None) -> list[tuple[Sample, Label]]:
    out = []
    for i in range(n):
        kind = i % 7
        if kind == 0:  # on the 1/10000 grid, as the project stores them
            pts = np.round(rng.uniform(-50, 700, (k, 2)), 4)
        elif kind == 1:  # off the grid
            pts = rng.uniform(0, 1, (k, 2)) / 3
        elif kind == 2:  # whole numbers, zeros, negative zero, the edges of the grid
            pts = rng.integers(-3, 3, (k, 2)).astype(float)
            pts[0] = (-0.0, 214748.3647)
            pts[1 % k] = (-214748.3647, 0.0001)
        elif kind == 3:  # huge and tiny values (exponents in repr)
            pts = np.round(rng.uniform(0, 100, (k, 2)), 2)
            pts[0] = (1e-7, 3e20)
        else:
            pts = np.round(rng.uniform(0, 640, (k, 2)), rng.integers(0, 5))
        if kind in (4, 5):  # missing points: both cells empty, even where one is a number
            pts[rng.integers(0, k)] = (np.nan, np.nan)
            pts[rng.integers(0, k), 1] = np.nan
        vis = None
        if kind == 5:
            vis = np.where(np.isfinite(pts).all(axis=1), 2, 0).astype(np.int8)
            vis[0] = 0  # present but marked not visible
        if occluded_from is not None and i >= occluded_from and kind == 6:
            vis = np.where(np.isfinite(pts).all(axis=1), 2, 0).astype(np.int8)
            vis[-1] = 1
        box = None
        if boxes_from is not None and i >= boxes_from and i % 3 == 0:
            box = (float(rng.integers(0, 50)), 1.5, 1 / 3, 200.25)
        name = NAMES[i % len(NAMES)]
        s = Sample(i + 1, 1, f"k{i}", f"{name}" if i % 5 else f"v{i}/{name}", 640, 480, box,
                   "train", "", "unreviewed", str(root))
        out.append((s, Label(i + 1, i + 1, pts, vis, None, "import", "", "", "")))
    return out


@pytest.mark.parametrize("boxes_from, occluded_from", [(None, None), (0, 0), (23, 31)])
def test_landmark_rows_are_byte_identical(tmp_path, boxes_from, occluded_from):
    rng = np.random.default_rng(7)
    schema = landmarks_schema(5)
    root = tmp_path / "data"
    records = _records(rng, root, 120, 5, boxes_from=boxes_from, occluded_from=occluded_from)
    for folder in (tmp_path / "export", root, root / "v5"):  # beside, at, inside the source root
        folder.mkdir(parents=True, exist_ok=True)
        reference_write(folder / "ref.csv", schema, records)
        expected = (folder / "ref.csv").read_bytes()
        assert csv_format.write(folder / "new.csv", schema, records) == 120
        assert (folder / "new.csv").read_bytes() == expected
        # chunk edges anywhere: box and occlusion columns first seen in a later chunk
        n = csv_format.write_tables(folder / "tables.csv", schema,
                                    label_tables(schema, records, chunk=7))
        assert n == 120 and (folder / "tables.csv").read_bytes() == expected
    assert b"v4" in expected.splitlines()[0] or occluded_from is None
    assert not list((tmp_path / "export").glob(".gumshoe-csv-*"))  # no scratch file left


def test_a_label_of_another_landmark_count_is_written_as_it_was(tmp_path):
    schema = landmarks_schema(3)
    rng = np.random.default_rng(1)
    records = _records(rng, tmp_path, 10, 3, boxes_from=None, occluded_from=None)
    s, lb = records[4]
    records[4] = (s, Label(lb.id, lb.sample_id, np.ones((5, 2)), None, None, "import", "", "", ""))
    reference_write(tmp_path / "ref.csv", schema, records)
    csv_format.write(tmp_path / "new.csv", schema, records)
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_ages_are_byte_identical(tmp_path):
    rng = np.random.default_rng(3)
    records = []
    for i in range(50):
        age = [None, 3.0, 1 / 3, 71.25, 0.0, 1e-9][i % 6]
        box = (1.0, 2.0, 30.5, 40.0) if i == 40 else None
        s = Sample(i + 1, 1, f"k{i}", NAMES[i % len(NAMES)], 1, 1, box, "train", "", "unreviewed",
                   str(tmp_path))
        records.append((s, Label(i + 1, i + 1, None, None, age, "import", "", "", "")))
    rng.shuffle(records)
    reference_write(tmp_path / "ref.csv", AGE, records)
    csv_format.write(tmp_path / "new.csv", AGE, records)
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_a_stored_project_exports_as_the_reference_writes_it(tmp_path):
    """Through the store's column reader (iter_label_tables): stored visibility, missing
    points, a label of another landmark count, samples without a label left out."""
    rng = np.random.default_rng(5)
    schema = landmarks_schema(4)
    with Project.create(tmp_path / "p.gumshoe", schema) as p:
        src = p.add_source(tmp_path, "csv", "landmarks")
        new = []
        for i in range(30):
            pts = np.round(rng.uniform(0, 640, (4, 2)), 4)
            vis = None
            if i % 4 == 1:
                pts[2] = np.nan
            if i % 6 == 2:
                vis = np.array([2, 1, 0, 2])
            new.append(NewSample(f"s{i}", f"img/{i:03d},x.jpg" if i == 7 else f"img/{i:03d}.jpg",
                                 640, 480, "", pts, vis, box=(1.0, 2.0, 3.5, 4.0) if i == 9 else None))
        p.add_samples(src, new)
        p.add_label(3, points=np.full((4, 2), 10.25), author="ann")
        records = [(s, lb) for s, lb in p.iter_samples_with_labels() if lb is not None]
        reference_write(tmp_path / "ref.csv", schema, records)
        n = csv_format.write_tables(tmp_path / "new.csv", schema,
                                    p.iter_label_tables(chunk=8))
        assert n == 30
        assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
        tables = list(p.iter_label_tables(current=False, chunk=8))
        assert [t.ids.tolist() for t in tables][0] == list(range(1, 9))
        first = tables[0].point_array()
        assert first is not None and np.isfinite(first[2]).all()
        np.testing.assert_array_equal(first[1], p.label_history(2)[0].points)


def test_report_json_is_what_json_dumps_writes():
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 500, (6, 2))
    pts[2, 1] = np.nan
    label = _label_value(Label(1, 1, pts, None, None, "import", "", "", ""))
    assert label[2] is None and label[3] == [float(pts[3, 0]), float(pts[3, 1])]
    value = {"export": "out/é.csv", "filters": {"max_score": None, "reviewed_only": False},
             "dropped": {}, "written": 3, "changes": [
                 {"key": "a\"b", "old_label": label, "new_label": [], "changed_landmarks": [0, 5],
                  "score": 1.5, "age": 3.0, "exported": True, "nested": [[1, 2], [3.0, None]]},
                 {"old_label": 31.0, "new_label": type(label)(label[:1]), "empty": type(label)(), "none": None}]}
    assert _json(value) == json.dumps(value, indent=1)
    assert json.loads(_json(value)) == value
    assert _cell(label) == json.dumps(label) and _cell(type(label)()) == "[]"


def test_lookup_tables_hold_every_whole_part_and_every_four_decimals():
    wholes, decimals = table_text._tables()
    n = table_text.INT_LIMIT
    text = wholes.view(np.uint8).reshape(-1, 8).tobytes()
    cells = [text[i * 8:i * 8 + 8].rstrip(b"\0").decode() for i in range(len(wholes))]
    assert cells == [f",{i}" for i in range(n)] + [f",-{i}" for i in range(n)] + [","]
    text = decimals.view(np.uint8).reshape(-1, 8).tobytes()
    for f in range(table_text.SCALE):  # fmt() of 7.ffff, after the whole part
        assert "7" + text[f * 8:f * 8 + 8].rstrip(b"\0").decode() == fmt((70000 + f) / 10000), f


def test_image_cells_of_a_chunk_are_those_of_each_sample(tmp_path):
    cells = csv_format._ImageCells(tmp_path / "out")
    for paths in (["v/a.jpg", "v/b.jpg"], ["a/./b"], ["../x"], ["a//b"], ["a/"], [""], ["."],
                  ["=x"], ["a,b"], ["x:y"], ["a\\b"], ["ok", "-1"], ["q\"q"], ["'a"]):
        roots = [str(tmp_path)] * len(paths)
        assert cells.many(roots, paths) == [cells(r, p) for r, p in zip(roots, paths, strict=True)]
    inside = csv_format._ImageCells(tmp_path / "v")  # the export's folder inside the root
    assert inside.many([str(tmp_path)] * 2, ["v/a.jpg", "w/b.jpg"]) == [b"a.jpg", b"../w/b.jpg"]
