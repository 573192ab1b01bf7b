"""Attack Gumshoe the way issue 10 did, many times, and count what survives.

- kills: ``kill -9`` of ``gumshoe import``, ``gumshoe train`` (with an annotator
  process committing edits at the same time, also killed) and ``gumshoe export``
  at random moments; after each kill the project must open, pass
  ``PRAGMA integrity_check``, hold only whole samples, keep every edit the annotator
  process saw committed, and have a cache whose rows carry their samples; then the
  same command is tried again and must complete (train: ``--resume``).
- concurrent: two ``gumshoe import`` processes into one project (and an import
  beside a trainer's cache fill); every sample's cached row must be its own image
  and no index entry may be lost.
- disk-full: imports onto a small tmpfs in a private mount namespace (needs root or
  user namespaces): one ``disk full: PATH`` line, never a SIGBUS, no temporary file
  left, a project that opens; copied to a disk with room, the import run again and
  the cache filled (as the trainer does) complete it.
- fuzz: mutated ``joints.mat`` files and random boxes through the importer's crop
  step: every case must end in a result or the one clean error type.

Usage (heavy: run it under the shared lock)::

    flock /tmp/gumshoe-heavy.lock .venv/bin/python benchmarks/bench_hostile.py \\
        --kills 20 --concurrent 20 --disk-full 10 --fuzz 20000 \\
        --json benchmarks/results/DATE-hostile.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.image_cache import ImageCache  # noqa: E402
from core.images import letterbox, load_image  # noqa: E402
from core.project import Project  # noqa: E402
from tests.core import hostile  # noqa: E402
from tests.core.synth import write_dots_csv  # noqa: E402

PY = sys.executable


def gumshoe_popen(*args: object, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PY, "-m", "core", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=hostile.limited(), **kw)


def gumshoe(*args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return hostile.gumshoe(*args, timeout=timeout, memory=8 << 30)


def timed(*args: object) -> float:
    t = time.monotonic()
    proc = gumshoe(*args)
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - t


# ----------------------------------------------------------------------------- checks


def project_state(path: Path, size: int = 64, full_check: int = 40) -> dict[str, Any]:
    """Does the project open, pass integrity_check, hold only whole samples; do its
    cached rows carry their samples (all checked by trailer, ``full_check`` of them
    pixel by pixel against a fresh decode)?"""
    out: dict[str, Any] = {"opens": False}
    try:
        with Project.open(path) as p:
            out["opens"] = True
            out["integrity"] = p.conn.execute("PRAGMA integrity_check").fetchone()[0]
            out["orphans"] = p.conn.execute(
                "SELECT count(*) FROM samples s WHERE NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.sample_id = s.id)").fetchone()[0]
            samples = p.samples()
            out["samples"] = len(samples)
    except Exception as exc:  # noqa: BLE001 - recorded
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    cache_dir = path.with_name(path.name + "-cache")
    if (cache_dir / f"images-{size}.json").exists():
        cache = ImageCache(cache_dir, size)
        cached = [s for s in samples if s.id in cache]
        out["cached"] = len(cached)
        try:
            cache.reader([s.id for s in cached])  # every row's trailer checked
            out["rows_carry_their_sample"] = True
        except KeyError as exc:
            out["rows_carry_their_sample"] = False
            out["row_error"] = str(exc)
        wrong = 0
        for s in random.Random(0).sample(cached, min(full_check, len(cached))):
            expect = letterbox(load_image(s.image_path)[0], cache.transform(s))
            wrong += not np.array_equal(cache.batch([s.id])[0], expect)
        out["wrong_images_of_checked"] = [wrong, min(full_check, len(cached))]
    return out


def healthy(state: dict[str, Any]) -> bool:
    return (state.get("opens") and state.get("integrity") == "ok" and state.get("orphans") == 0
            and state.get("rows_carry_their_sample", True)
            and state.get("wrong_images_of_checked", [0])[0] == 0)


# ----------------------------------------------------------------------------- kills


def kill_imports(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    src = write_dots_csv(work / "src-import", n=800, side=96, seed=1)
    full = timed("import", work / "probe.gumshoe", src, "--format", "csv")
    trials = []
    for i in range(n):
        project = work / f"import-{i}.gumshoe"
        proc = gumshoe_popen("import", project, src, "--format", "csv")
        delay = rng.uniform(0.05, full)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        after_kill = project_state(project) if project.exists() else {"opens": None}
        again = gumshoe("import", project, src, "--format", "csv")
        final = project_state(project)
        trials.append({"kill_after_s": round(delay, 3), "rc": rc, "after_kill": after_kill,
                       "retry_rc": again.returncode, "final": final,
                       "survived": after_kill.get("opens") is None or healthy(after_kill),
                       "completed": again.returncode == 0 and healthy(final)
                       and final.get("samples") == 800 and final.get("cached") == 800})
    return summarise(trials, full)


EDITOR = """
import sys, time, numpy as np
from core.project import Project
path, acked = sys.argv[1], open(sys.argv[2], "a")
rng = np.random.default_rng(int(sys.argv[3]))
with Project.open(path) as p:
    ids = [s.id for s in p.samples()]
    while True:
        sid = int(rng.choice(ids))
        pts = p.current_label(sid).points + rng.normal(0, 0.5, (4, 2))
        label = p.add_label(sid, points=pts, author="bench", note="edit")
        acked.write(f"{label}\\n"); acked.flush()
        time.sleep(0.005)
"""


def kill_training(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    src = write_dots_csv(work / "src-train", n=300, side=48, seed=2)
    base = work / "train-base.gumshoe"
    assert gumshoe("import", base, src, "--format", "csv").returncode == 0
    full = timed("train", base, "--epochs", "4", "--quiet")
    trials = []
    for i in range(n):
        project = work / f"train-{i}.gumshoe"
        shutil.copy(base, project)
        acked = work / f"acked-{i}.txt"
        acked.write_text("")
        editor = subprocess.Popen([PY, "-c", EDITOR, str(project), str(acked), str(i)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        trainer = gumshoe_popen("train", project, "--epochs", "4", "--quiet")
        delay = rng.uniform(0.3, full)
        time.sleep(delay)
        trainer.send_signal(signal.SIGKILL)
        editor.send_signal(signal.SIGKILL)
        rc = trainer.wait()
        editor.wait()
        state = project_state(project)
        ids = [int(x) for x in acked.read_text().split()]
        with Project.open(project) as p:
            have = {r[0] for r in p.conn.execute("SELECT id FROM labels WHERE author='bench'")}
            runs = p.runs()
        lost = sorted(set(ids) - have)
        run = runs[-1] if len(runs) > 1 else None
        resumed = None
        if run is not None and run.status != "finished":
            again = gumshoe("train", project, "--resume", run.id, "--quiet")
            with Project.open(project) as p:
                resumed = {"rc": again.returncode, "status": p.run(run.id).status,
                           "stderr": again.stderr[-300:]}
        trials.append({"kill_after_s": round(delay, 3), "rc": rc, "state": state,
                       "edits_acked": len(ids), "edits_lost": len(lost),
                       "run_status_after_kill": None if run is None else run.status,
                       "resume": resumed, "survived": healthy(state) and not lost,
                       "completed": resumed is None or (resumed["rc"] == 0
                                                        and resumed["status"] == "finished")})
    return summarise(trials, full)


def kill_exports(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    from tests.core.test_hostile_export import check_export, make_project

    out: dict[str, Any] = {}
    for fmt, size in (("csv", 40_000), ("pts", 600)):
        folder = work / f"export-{fmt}"
        project = make_project(folder, size, images=fmt == "pts")
        target = folder / ("clean.csv" if fmt == "csv" else "clean")
        full = timed("export", project, target, "--format", fmt)
        trials = []
        for i in range(n):
            fresh = i % 2 == 0
            if fresh:
                for p in folder.iterdir():
                    if p.name.startswith("clean"):
                        p.unlink() if p.is_file() else shutil.rmtree(p)
            proc = gumshoe_popen("export", project, target, "--format", fmt,
                                 *(() if fresh else ("--overwrite",)))
            delay = rng.uniform(0.2, full)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            try:
                present = check_export(target, fmt, size)
                partial = None
            except AssertionError as exc:
                present, partial = True, str(exc)
            interrupted = any(p.name.startswith(".clean") for p in folder.iterdir())
            again = gumshoe("export", project, target, "--format", fmt, "--overwrite")
            try:
                ok = again.returncode == 0 and check_export(target, fmt, size)
            except AssertionError:
                ok = False
            left = [p.name for p in folder.iterdir() if p.name.startswith(".clean")]
            trials.append({"fresh": fresh, "kill_after_s": round(delay, 3), "rc": rc,
                           "export_present_after_kill": present, "partial": partial,
                           "interrupted_mid_write": interrupted, "temporaries_left": left,
                           "survived": partial is None, "completed": ok and not left})
        out[fmt] = summarise(trials, full)
    return out


def summarise(trials: list[dict[str, Any]], full_s: float) -> dict[str, Any]:
    return {"tries": len(trials), "survived": sum(t["survived"] for t in trials),
            "tried_again_ok": sum(t["completed"] for t in trials),
            "uninterrupted_seconds": round(full_s, 2), "trials": trials}


# ----------------------------------------------------------------------------- concurrency


def concurrent_imports(work: Path, n: int) -> dict[str, Any]:
    sources = [write_dots_csv(work / f"src-c{i}", n=150, side=40, seed=10 + i) for i in range(2)]
    runs = []
    for r in range(n):
        project = work / f"conc-{r}.gumshoe"
        Project.create(project).close()
        procs = [gumshoe_popen("import", project, s, "--format", "csv") for s in sources]
        rcs = [p.wait() for p in procs]
        state = project_state(project, full_check=300)
        runs.append({"rcs": rcs, "samples": state.get("samples"), "cached": state.get("cached"),
                     "wrong_images": state.get("wrong_images_of_checked", [None])[0],
                     "rows_carry_their_sample": state.get("rows_carry_their_sample")})
    fill = []
    for r in range(max(1, n // 2)):
        project = work / f"fill-{r}.gumshoe"
        assert gumshoe("import", project, sources[0], "--format", "csv").returncode == 0
        filler = subprocess.Popen([PY, "-c", (
            "import sys\nfrom core.project import Project\nfrom core.image_cache import ImageCache\n"
            "for _ in range(6):\n"
            "    with Project.open(sys.argv[1]) as p:\n"
            "        s = p.samples(); ImageCache(p.cache_dir, 64).ensure(s)\n"), str(project)],
            cwd=ROOT, stderr=subprocess.PIPE)
        imp = gumshoe_popen("import", project, sources[1], "--format", "csv")
        rcs = [imp.wait(), filler.wait()]
        state = project_state(project, full_check=300)
        fill.append({"rcs": rcs, "samples": state.get("samples"), "cached": state.get("cached"),
                     "wrong_images": state.get("wrong_images_of_checked", [None])[0]})
    return {
        "two_imports": {"runs": n, "runs_ok": sum(r["rcs"] == [0, 0] and r["cached"] == 300
                                                  and r["wrong_images"] == 0 for r in runs),
                        "wrong_images": sum(r["wrong_images"] or 0 for r in runs),
                        "lost_entries": sum(300 - (r["cached"] or 0) for r in runs),
                        "sigbus": sum(rc == -7 for r in runs for rc in r["rcs"]), "detail": runs},
        "import_and_cache_fill": {"runs": len(fill),
                                  "runs_ok": sum(r["rcs"] == [0, 0] and r["cached"] == 300
                                                 and r["wrong_images"] == 0 for r in fill),
                                  "detail": fill},
    }


# ----------------------------------------------------------------------------- disk full


def disk_full(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    from tests.core.test_hostile_cache import _can_mount_tmpfs

    mode = _can_mount_tmpfs()
    if mode not in (None, "user"):
        return {"skipped": mode}
    src = write_dots_csv(work / "src-full", n=200, side=64, seed=3)
    runs = []
    for r in range(n):
        kb = rng.choice([150, 300, 500, 800, 1200, 1800, 2400])
        disk = work / f"disk-{r}"
        disk.mkdir()
        ns = (["unshare", "--mount", "--propagation", "private"] if mode is None else
              ["unshare", "--user", "--map-root-user", "--mount"])
        after = work / f"disk-{r}.after"
        after.mkdir()
        script = (f'mount -t tmpfs -o size={kb}k tmpfs "{disk}" && "$@"; rc=$?; '
                  f'cp -a "{disk}"/. "{after}"/ 2>/dev/null; exit $rc')
        proc = subprocess.run([*ns, "sh", "-c", script, "sh", PY, "-m", "core", "import",
                               str(disk / "p.gumshoe"), str(src), "--format", "csv"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        left = [p.name for p in after.rglob("*") if p.name.endswith(".tmp")
                or ".gumshoe-tmp" in p.name]
        state = project_state(after / "p.gumshoe") if (after / "p.gumshoe").exists() else {}
        again = gumshoe("import", after / "p.gumshoe", src, "--format", "csv")
        with Project.open(after / "p.gumshoe") as p:  # what a trainer does first
            fill_errors = ImageCache(p.cache_dir, 64).ensure(p.samples())
        final = project_state(after / "p.gumshoe")
        runs.append({"tmpfs_kb": kb, "rc": proc.returncode, "sigbus": proc.returncode == -7,
                     "stderr_lines": len(lines), "message": lines[-1] if lines else "",
                     "one_disk_full_line": len(lines) == 1 and lines[0].startswith(
                         "gumshoe: error: disk full: "),
                     "temporaries_left": left, "after": state,
                     "retry_with_room_rc": again.returncode,
                     "retry_complete": healthy(final) and final.get("samples") == 200
                     and final.get("cached") == 200 and not fill_errors})
    full_runs = [r for r in runs if r["rc"] != 0]
    return {"runs": n, "disk_filled": len(full_runs),
            "sigbus": sum(r["sigbus"] for r in runs),
            "one_line_disk_full": sum(r["one_disk_full_line"] for r in full_runs),
            "temporaries_left": sum(bool(r["temporaries_left"]) for r in runs),
            "project_opens_after": sum(r["after"].get("opens", True) is not False
                                       for r in runs),
            "completed_with_room": sum(r["retry_complete"] for r in runs),
            "mount": "root, private mount namespace" if mode is None else "user namespace",
            "detail": runs}


# ----------------------------------------------------------------------------- fuzz


def fuzz(n: int, rng: random.Random, work: Path) -> dict[str, Any]:
    from core.formats.base import FormatError
    from core.formats.lsp import load_joints
    from core.images import ImageError, crop_for

    seeds = [hostile.joints_mat(k, c) for k in (1, 4) for c in (True, False)]
    counts = {"ok": 0, "format_error": 0, "unclean": 0}
    unclean: list[str] = []
    slowest = 0.0
    path = work / "joints.mat"
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data)) if data else 0
            op = rng.choice(["flip", "cut", "insert", "set32", "zero"])
            if op == "flip" and data:
                data[i] ^= 1 << rng.randrange(8)
            elif op == "cut":
                del data[i:]
            elif op == "insert":
                data[i:i] = rng.randbytes(rng.randint(1, 8))
            elif op == "set32":
                data[i:i + 4] = rng.getrandbits(32).to_bytes(4, "little")
            else:
                data[i:i + 8] = bytes(8)
        path.write_bytes(bytes(data))
        t = time.monotonic()
        try:
            load_joints(path)
            counts["ok"] += 1
        except FormatError:
            counts["format_error"] += 1
        except BaseException as exc:  # noqa: BLE001 - counted
            counts["unclean"] += 1
            unclean.append(f"{type(exc).__name__}: {exc}"[:200])
        slowest = max(slowest, time.monotonic() - t)
    extremes = [0.0, 1e-300, -1e-300, 5e-324, 1e308, -1e308, float("inf"), float("nan"), 1e15]
    crop = {"crop": 0, "image_error": 0, "unclean": 0}
    image = np.full((64, 64, 3), 128, np.uint8)
    for _ in range(n):
        w, h = rng.randint(1, 5000), rng.randint(1, 5000)
        box = None if rng.random() < 0.1 else tuple(
            rng.choice(extremes) if rng.random() < 0.3 else rng.uniform(-2 * w, 2 * w)
            for _ in range(4))
        try:
            c, lb = crop_for(image, w, h, box, rng.choice([32, 64, 128]), "x.png")
            assert c.shape[0] == c.shape[1] and np.isfinite([lb.scale, lb.dx, lb.dy]).all()
            crop["crop"] += 1
        except ImageError:
            crop["image_error"] += 1
        except BaseException as exc:  # noqa: BLE001 - counted
            crop["unclean"] += 1
            unclean.append(f"crop {w}x{h} {box}: {type(exc).__name__}: {exc}"[:200])
    return {"joints_mat": {"cases": n, **counts, "slowest_s": round(slowest, 3)},
            "crop_step": {"cases": n, **crop}, "unclean_examples": unclean[:20]}


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10, help="kills per command (import, train, "
                   "export csv, export pts)")
    p.add_argument("--concurrent", type=int, default=20, help="runs of two concurrent imports")
    p.add_argument("--disk-full", type=int, default=10)
    p.add_argument("--fuzz", type=int, default=5000, help="cases per fuzz target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", help="comma-separated: kills,concurrent,disk-full,fuzz")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else {"kills", "concurrent", "disk-full", "fuzz"}
    rng = random.Random(args.seed)
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gumshoe-hostile-") as tmp:
        work = Path(tmp)
        if "kills" in only:
            results["kills"] = {"import": kill_imports(work, args.kills, rng),
                                "train": kill_training(work, args.kills, rng),
                                "export": kill_exports(work, args.kills, rng)}
        if "concurrent" in only:
            results["concurrent"] = concurrent_imports(work, args.concurrent)
        if "disk-full" in only:
            results["disk_full"] = disk_full(work, args.disk_full, rng)
        if "fuzz" in only:
            results["fuzz"] = fuzz(args.fuzz, rng, work)
    doc = {"machine": f"{platform.machine()} {os.cpu_count()}-core {platform.system()}, "
                      f"Python {platform.python_version()}",
           "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "seconds": round(time.monotonic() - t0, 1), "results": results,
           "summary": _summary(results)}
    text = json.dumps(doc, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps(doc["summary"], indent=1))


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    if "kills" in r:
        k = r["kills"]
        s["kills"] = {name: f"{v['survived']}/{v['tries']} survived, "
                            f"{v['tried_again_ok']}/{v['tries']} tried again ok"
                      for name, v in [("import", k["import"]), ("train", k["train"]),
                                      ("export csv", k["export"]["csv"]),
                                      ("export pts", k["export"]["pts"])]}
        s["edits_lost_during_training_kills"] = sum(t["edits_lost"]
                                                    for t in k["train"]["trials"])
        s["edits_acked_during_training_kills"] = sum(t["edits_acked"]
                                                     for t in k["train"]["trials"])
    if "concurrent" in r:
        c = r["concurrent"]["two_imports"]
        s["concurrent_imports"] = (f"{c['runs_ok']}/{c['runs']} runs clean, "
                                   f"{c['wrong_images']} wrong images, {c['lost_entries']} lost "
                                   f"entries, {c['sigbus']} SIGBUS")
        f = r["concurrent"]["import_and_cache_fill"]
        s["import_beside_cache_fill"] = f"{f['runs_ok']}/{f['runs']} runs clean"
    if "disk_full" in r:
        d = r["disk_full"]
        s["disk_full"] = d if "skipped" in d else (
            f"{d['runs']} runs, {d['disk_filled']} filled the disk: {d['one_line_disk_full']} "
            f"one 'disk full' line, {d['sigbus']} SIGBUS, {d['temporaries_left']} left "
            f"temporaries, {d['project_opens_after']} projects open after, "
            f"{d['completed_with_room']} completed with room")
    if "fuzz" in r:
        f = r["fuzz"]
        s["fuzz"] = (f"joints.mat {f['joints_mat']['cases']} cases "
                     f"({f['joints_mat']['unclean']} unclean, slowest "
                     f"{f['joints_mat']['slowest_s']} s); crop step "
                     f"{f['crop_step']['cases']} cases ({f['crop_step']['unclean']} unclean)")
    return s


if __name__ == "__main__":
    main()
