"""The project store at 100 000 and 1 000 000 samples (68 landmarks, one run of
scores): what an annotator waits for, what a trainer's write costs, what the file
and the GUI take. Every timing is the median of 5 (all 5 are kept in the JSON).

    flock /tmp/gumshoe-heavy.lock python benchmarks/bench_store.py \\
        --sizes 100000,1000000 --json benchmarks/results/store.json

Measured per size:

* ``open_first_page_ms``: ``Project.open`` + the queue's first page of 200 rows
  (what the GUI's queue worker runs on open: ``scored_run``, ``queue``); also with
  the run's method and the review counts the queue panel shows;
* ``later_page_ms``: a page cut from the snapshot of the ranking
  (``queue_rows``, what scrolling costs), and the same page by ``OFFSET``;
* ``filter_change_ms``: the first page after a filter or sort change (statuses,
  probability, split, worst landmark, issue, path substring, sort by path);
  ``snapshot_ms``: the whole ordering as ids, which the queue reads next in the
  background (the row count comes with it);
* ``rank_top1000_s``: ``python -m core rank PROJECT --top 1000`` as a process;
* ``export_csv_s``: ``python -m core export PROJECT OUT.csv --format csv`` (all
  current labels and the change report);
* ``write_scores_s``: ``Project.write_scores`` of one run's scores (columnar, as
  a new score set replacing the previous one), and once more with another process
  committing label edits meanwhile: ``edit_wait_ms`` (median, max);
* ``bytes_per_sample``: the checkpointed file (labels + one run) / samples;
* ``gui``: ``python -m app.perf queue PROJECT`` (a real offscreen main window:
  opens the project, shows the queue and a sample, reads the whole ordering, jumps
  the table to 20 random places), with its peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.project import LabelSchema, NewSample, Project, ScoreColumns  # noqa: E402
from core.schemas import IBUG68  # noqa: E402

K = 68
REPEATS = 5


def median_ms(fn: Callable[[], Any], repeats: int = REPEATS) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median": round(statistics.median(times), 2), "all": [round(t, 2) for t in times]}


def scores_for(n: int, seed: int) -> ScoreColumns:
    rng = np.random.default_rng(seed)
    ls = rng.normal(-4, 2, (n, K)).astype(np.float32)
    score = ls.max(axis=1).astype(np.float64)
    pred = rng.uniform(0, 640, (n, 2 * K)).astype(np.float32)
    std = rng.uniform(0.5, 8, (n, 2 * K)).astype(np.float32)
    issue = np.array([None, "swap", "shifted", "points"], dtype=object)[rng.integers(0, 4, n)]
    return ScoreColumns(np.arange(1, n + 1), score, 1 / (1 + np.exp(-score)), ls, None, pred, std,
                        list(issue))


def build(path: Path, n: int, schema: LabelSchema) -> dict[str, float]:
    """n samples from 1 000-frame videos, 68 landmarks, 1 % fixed by an annotator and
    1 % confirmed, one run of scores."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    with Project.create(path, schema) as p:
        src = p.add_source(path.parent, "csv", "landmarks")
        for start in range(0, n, 20_000):
            pts = rng.uniform(0, 640, (min(20_000, n - start), K, 2))
            p.add_samples(src, [NewSample(
                f"video_{i // 1000:04d}/frame_{i % 1000:06d}.jpg",
                f"video_{i // 1000:04d}/frame_{i % 1000:06d}.jpg", 640, 480, f"{i:040x}",
                points=pts[i - start], split=("train", "train", "train", "val", "test")[i % 5])
                for i in range(start, start + len(pts))])
        t_samples = time.perf_counter() - t0
        for sid in rng.choice(np.arange(1, n + 1), n // 100, replace=False).tolist():
            cur = p.current_label(sid)
            p.add_label(sid, points=cur.points + 1.5, author="ann", replaces=cur.id,
                        note="moved a point")
        for sid in rng.choice(np.arange(1, n + 1), n // 100, replace=False).tolist():
            p.set_review(sid, "confirmed", "bob")
        run = p.create_run("deepgum", {"config": {"epochs": 30}})
        t1 = time.perf_counter()
        p.write_scores(run, scores_for(n, 1))
        t_scores = time.perf_counter() - t1
        p.update_run(run, status="finished")
    return {"build_s": round(time.perf_counter() - t0, 1), "samples_s": round(t_samples, 1),
            "first_scores_write_s": round(t_scores, 1)}


def gumshoe(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def queue_figures(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def open_first() -> None:
        with Project.open(path) as p:
            assert len(p.queue(run_id=p.scored_run(), limit=200)) == 200

    def open_first_full() -> None:
        with Project.open(path) as p:
            run = p.scored_run()
            rows = p.queue(run_id=run, limit=200)
            p.run(run)
            p.review_counts()
            assert len(rows) == 200

    out["open_first_page_ms"] = median_ms(open_first)
    out["open_first_page_with_counts_ms"] = median_ms(open_first_full)
    with Project.open(path) as p:
        run = p.scored_run()
        n = p.count_samples()
        t0 = time.perf_counter()
        ids = p.queue_ids(run_id=run)
        out["snapshot_ms"] = {"unfiltered": round((time.perf_counter() - t0) * 1000, 1)}
        pages = np.random.default_rng(5).integers(1, len(ids) // 200, REPEATS)
        it = iter(pages.tolist())
        out["later_page_ms"] = {
            "from_snapshot": median_ms(lambda: p.queue_rows(ids[(k := next(it)) * 200:
                                                               k * 200 + 200].tolist(), run))}
        it = iter(pages.tolist())
        out["later_page_ms"]["by_offset"] = median_ms(
            lambda: p.queue(run_id=run, limit=200, offset=next(it) * 200))
        filters = {"to review": {"statuses": ["unreviewed"]},
                   "confirmed": {"statuses": ["confirmed"]},
                   "p > 0.8": {"min_prob": 0.8}, "p < 0.05": {"max_prob": 0.05},
                   "split val": {"split": "val"}, "worst point 36": {"landmark": 36},
                   "issue swap": {"issue": "swap"}, "path video_0042/": {"search": "video_0042/"},
                   "sort path": {"sort": "path"}, "sort status": {"sort": "status"},
                   "ascending score": {"descending": False}}
        out["filter_change_ms"] = {name: median_ms(lambda kw=kw: p.queue(run_id=run, limit=200,
                                                                          **kw))
                                   for name, kw in filters.items()}
        for name in ("to review", "split val", "p > 0.8"):
            t0 = time.perf_counter()
            p.queue_ids(run_id=run, **filters[name])
            out["snapshot_ms"][name] = round((time.perf_counter() - t0) * 1000, 1)
        t0 = time.perf_counter()
        ten = p.current_labels(ids[:10].tolist())
        out["current_labels_10_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        assert len(ten) == 10 and n == len(ids)
    return out


def export_figures(path: Path, workdir: Path) -> dict[str, Any]:
    exports = []
    for i in range(REPEATS):
        out = workdir / f"export-{i}.csv"
        exports.append(gumshoe("export", str(path), str(out), "--format", "csv"))
        out.unlink()
        for extra in workdir.glob(f"export-{i}.changes.*"):
            extra.unlink()
    return {"median": round(statistics.median(exports), 2), "all": [round(t, 2) for t in exports]}


EDITOR = textwrap.dedent("""
    import sys, time, json
    sys.path.insert(0, sys.argv[2])
    from core.project import Project
    p = Project.open(sys.argv[1])
    waits, sid = [], 1
    print("ready", flush=True)
    while sys.stdin.readline().strip() == "go":
        cur = p.current_label(sid)
        t0 = time.perf_counter()
        p.add_label(sid, points=cur.points + 0.5, author="probe", replaces=cur.id)
        waits.append(time.perf_counter() - t0)
        sid += 1
        print(json.dumps(waits[-1]), flush=True)
""")


def write_figures(path: Path) -> dict[str, Any]:
    with Project.open(path) as p:
        n = p.count_samples()
        run = p.scored_run()
    cols = scores_for(n, 2)
    times = []
    for _ in range(REPEATS):
        with Project.open(path) as p:
            t0 = time.perf_counter()
            p.write_scores(run, cols)
            times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"write_scores_s": {"median": round(statistics.median(times), 2),
                                              "all": [round(t, 2) for t in times]}}
    # once more with an annotator committing edits (another process) all along
    editor = subprocess.Popen([sys.executable, "-c", EDITOR, str(path), str(ROOT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert editor.stdout.readline().strip() == "ready"
    import threading

    waits: list[float] = []
    done = threading.Event()

    def annotate() -> None:
        while not done.is_set():
            editor.stdin.write("go\n")
            editor.stdin.flush()
            waits.append(json.loads(editor.stdout.readline()))
            time.sleep(0.05)  # an annotator's edits are seconds apart; this is many more

    t = threading.Thread(target=annotate)
    t.start()
    with Project.open(path) as p:
        t0 = time.perf_counter()
        p.write_scores(run, cols)
        with_editor = time.perf_counter() - t0
    done.set()
    t.join()
    editor.stdin.close()
    editor.wait()
    w = np.array(waits) * 1000
    out["write_scores_with_edits_s"] = round(with_editor, 2)
    out["edit_wait_ms"] = {"edits": len(w), "median": round(float(np.median(w)), 2),
                           "p99": round(float(np.percentile(w, 99)), 2),
                           "max": round(float(w.max()), 2)}
    return out


def gui_rss(path: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "app.perf", "queue", str(path)], cwd=ROOT,
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench(n: int, workdir: Path, only: str | None = None) -> dict[str, Any]:
    path = workdir / f"store-{n}.gumshoe"
    path.unlink(missing_ok=True)
    row: dict[str, Any] = {"samples": n, "landmarks": K}
    row.update(build(path, n, IBUG68))
    if only:  # some phases again (after a change), on a freshly built project
        if "queue" in only:
            row.update(queue_figures(path))
            print(json.dumps({k: row[k] for k in ("open_first_page_ms", "filter_change_ms",
                                                  "snapshot_ms")}), flush=True)
        if "gui" in only:
            row["gui"] = gui_rss(path)
            print(json.dumps(row["gui"]), flush=True)
        if "export" in only:
            row["export_csv_s"] = export_figures(path, workdir)
            print(json.dumps(row["export_csv_s"]), flush=True)
        if "writes" in only:
            row.update(write_figures(path))
            print(json.dumps({k: row[k] for k in ("write_scores_s", "edit_wait_ms")}), flush=True)
        path.unlink()
        return row
    with Project.open(path) as p:
        p.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    row["bytes_per_sample"] = round(path.stat().st_size / n)
    with Project.open(path) as p:
        row["score_bytes_per_sample"] = round(p.conn.execute(
            "SELECT (SELECT sum(pgsize) FROM dbstat WHERE name IN ('scores', 'score_ranks', "
            "'sqlite_autoindex_scores_1'))").fetchone()[0] / n)
        row["path_index_bytes_per_sample"] = round(p.conn.execute(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'sample_paths%'"
        ).fetchone()[0] / n)
        row["label_bytes_per_sample"] = round(p.conn.execute(
            "SELECT (SELECT sum(pgsize) FROM dbstat WHERE name IN ('labels', 'labels_sample'))"
        ).fetchone()[0] / n)
    print(json.dumps(row), flush=True)
    row.update(queue_figures(path))
    print(json.dumps({k: row[k] for k in ("open_first_page_ms", "later_page_ms")}), flush=True)
    row["rank_top1000_s"] = {"median": round(statistics.median(
        gumshoe("rank", str(path), "--top", "1000") for _ in range(REPEATS)), 3)}
    row["export_csv_s"] = export_figures(path, workdir)
    print(json.dumps({"rank": row["rank_top1000_s"], "export": row["export_csv_s"]}), flush=True)
    row.update(write_figures(path))
    print(json.dumps({k: row[k] for k in ("write_scores_s", "edit_wait_ms")}), flush=True)
    row["gui"] = gui_rss(path)
    print(json.dumps(row["gui"]), flush=True)
    path.unlink()
    return row


TARGETS = (  # (figure, target, where in a size's results)
    ("open + first queue page (ms)", "< 300", ("open_first_page_ms", "median")),
    ("a later page, from the snapshot (ms)", "< 50", ("later_page_ms", "from_snapshot", "median")),
    ("filter or sort change, first page, worst of all (ms)", "< 50", ("filter_change_ms",)),
    ("path substring search, first page (ms)", "< 50",
     ("filter_change_ms", "path video_0042/", "median")),
    ("gumshoe rank --top 1000, a process (s)", "< 1", ("rank_top1000_s", "median")),
    ("gumshoe export --format csv, all current labels (s)", "< 30 at 1M",
     ("export_csv_s", "median")),
    ("write one run's scores (s)", "< 60 at 1M", ("write_scores_s", "median")),
    ("an edit's wait while scores are written, max (ms)", "< 100", ("edit_wait_ms", "max")),
    ("file bytes per sample (labels + one run)", "< 2048", ("bytes_per_sample",)),
    ("score bytes per sample per run (tables + keys)", "<= 1024", ("score_bytes_per_sample",)),
    ("GUI peak RSS with the queue open (MB)", "< 1024", ("gui", "peak_rss_mb")),
)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's figures, per size, from the results."""
    out = []
    for figure, target, where in TARGETS:
        entry: dict[str, Any] = {"figure": figure, "target": target}
        for row in rows:
            value: Any = row
            for key in where:
                value = value.get(key) if isinstance(value, dict) else None
            if where == ("filter_change_ms",) and isinstance(value, dict):
                value = max(v["median"] for v in value.values())
            entry[str(row["samples"])] = value
        out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--workdir", type=Path, help="where the projects are built (default: a "
                    "temporary folder; 1 000 000 samples need about 4 GB)")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--only", help="build, then measure only these phases (queue,gui,export,writes)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gumshoe-store-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [bench(int(n), workdir, args.only) for n in args.sizes.split(",")]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()}-core VM, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}",
        "command": "flock /tmp/gumshoe-heavy.lock python benchmarks/bench_store.py --sizes "
                   f"{args.sizes}{' --only ' + args.only if args.only else ''} --json {args.json}",
        "date": time.strftime("%Y-%m-%d"),
        "targets": targets(rows),
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
