"""``gumshoe bench``, ``train`` and ``rank`` end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.bench import detection
from core.bench_report import pool_reliability, summary
from core.cli.main import main
from core.project import Project, ScoreRow
from tests.core.synth import make_dots_project, write_dots_csv

FIELDS = {"method", "noise", "seed", "auroc", "auprc", "precision", "recall", "ece",
          "flagged_share", "issue_accuracy", "reliability", "test_nme", "failure_rate",
          "test_mae", "skill", "seconds", "train_images_per_s", "estep_share", "eval_share",
          "data_wait_share", "gpu_util", "gpu_memory_mb",
          "epochs",  # the run's own number (--epochs auto: fixed per run)
          # a per-landmark protocol reports per image too
          "image_auroc", "image_precision", "image_recall"}


def test_bench_on_a_csv_source(tmp_path: Path) -> None:
    source = write_dots_csv(tmp_path / "data", n=120)
    out = tmp_path / "bench.json"
    rc = main(["bench", str(source), "--format", "csv", "--noise", "l-ugo:0.2",
               "--methods", "deepgum,l2", "--seeds", "1", "--epochs", "2",
               "--image-size", "32", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [r["method"] for r in rows] == ["deepgum", "l2"]
    for r in rows:
        assert set(r) == FIELDS
        assert r["noise"] == "l-ugo:0.2" and r["seed"] == 0 and r["test_mae"] is None
        assert r["epochs"] == 2
        assert 0 <= r["auroc"] <= 1 and 0 < r["test_nme"] < 1 and r["train_images_per_s"] > 0
        assert 0 <= r["estep_share"] < 1 and 0 < r["eval_share"] < 1  # shares, not timings
        assert 0 <= r["data_wait_share"] < 1 and r["gpu_util"] is None  # no GPU here
        assert 0 <= r["ece"] <= 1 and 0 <= r["flagged_share"] <= 1
        assert 0 <= r["image_auroc"] <= 1 and 0 <= r["image_recall"] <= 1
        assert sum(b["count"] for b in r["reliability"]) == 120 * 7 // 10 * 4  # train landmarks
    assert {s["method"] for s in data["summary"]} == {"deepgum", "l2"}
    assert data["settings"]["train"]["epochs"] == 2
    png = out.with_suffix(".reliability.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reliability_diagrams_pool_over_seeds() -> None:
    a = [{"low": 0.0, "high": 0.1, "count": 3, "mean_prob": 0.05, "wrong_share": 0.0}]
    b = [{"low": 0.0, "high": 0.1, "count": 1, "mean_prob": 0.09, "wrong_share": 1.0},
         {"low": 0.9, "high": 1.0, "count": 2, "mean_prob": 0.95, "wrong_share": 1.0}]
    pooled = pool_reliability([a, b])
    assert [p["count"] for p in pooled] == [4, 2]
    assert pooled[0]["mean_prob"] == pytest.approx(0.06) and pooled[0]["wrong_share"] == 0.25


def test_bench_refuses_unknown_methods(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", str(tmp_path), "--noise", "l-ugo:0.2", "--methods", "deepgum,svm",
               "--json", str(tmp_path / "x.json")])
    assert rc == 1 and "unknown methods svm" in capsys.readouterr().err


def test_summary_takes_medians_and_ranges() -> None:
    rows = [{"method": "l2", "noise": "g-ugo:0.3", "seed": s, "auroc": a, "auprc": None,
             "precision": None, "recall": None, "test_nme": 0.1, "failure_rate": None,
             "test_mae": None, "seconds": 1.0, "train_images_per_s": 100.0,
             "estep_share": 0.01, "eval_share": 0.2}
            for s, a in enumerate([0.9, 0.7, 0.8])]
    (entry,) = summary(rows)
    assert entry["auroc"] == 0.8 and entry["auroc_range"] == [0.7, 0.9] and entry["seeds"] == 3
    assert entry["auprc"] is None


def test_train_then_rank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_dots_csv(tmp_path / "data", n=60)
    project = tmp_path / "p.gumshoe"
    assert main(["rank", str(project)]) == 1  # no such project yet
    assert main(["import", str(project), str(source), "--format", "csv"]) == 0
    assert main(["rank", str(project)]) == 1
    assert "no run has written scores" in capsys.readouterr().err
    assert main(["train", str(project), "--epochs", "2", "--image-size", "32", "--seed", "3"]) == 0
    assert "epoch   2/2" in capsys.readouterr().out
    assert main(["rank", str(project), "--top", "5", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    scores = [s["score"] for s in ranked["samples"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert ranked["method"] == "deepgum" and len(ranked["samples"][0]["worst_landmarks"]) == 3
    assert main(["rank", str(project), "--top", "3"]) == 0
    assert "highest outlier score first" in capsys.readouterr().out


def test_bench_on_fgnet(dataset, tmp_path: Path) -> None:
    out = tmp_path / "fgnet.json"
    rc = main(["bench", str(dataset("fgnet")), "--format", "fgnet", "--noise", "g-ugo:0.3",
               "--methods", "deepgum", "--seeds", "1", "--epochs", "1", "--image-size", "32",
               "--json", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["auroc"] is not None and row["test_nme"] is not None


def test_issue_accuracy_counts_the_flagged_contaminated_samples_named_right(
        tmp_path: Path) -> None:
    """Of the contaminated training samples the run flags, the share whose named issue
    fits the kind of contamination: unflagged and clean ones do not count."""
    path = make_dots_project(tmp_path, n=20, side=32, val_share=0.0)
    with Project.open(path) as p:
        ids = [s.id for s in p.samples()]
        p.record_contamination([(i, "swap:0.3", 0, True, []) for i in ids[:6]])
        run = p.create_run("deepgum")
        issues = ["swap", "swap", "swap", "points", None, "swap"]
        scores = [4.0, 3.0, 2.0, 5.0, -3.0, -1.0]  # the last two not flagged
        p.write_scores(run, [ScoreRow(i, score=s, outlier_prob=1 / (1 + 2.718 ** -s), issue=k)
                             for i, s, k in zip(ids, scores, issues, strict=False)]
                       + [ScoreRow(i, score=-4.0, outlier_prob=0.02) for i in ids[6:]])
        det = detection(p, run, per_image=True, kind="swap")
        assert det["issue_accuracy"] == 3 / 4
        assert detection(p, run, per_image=True, kind="ngo")["issue_accuracy"] == 1 / 4
        assert detection(p, run, per_image=True)["issue_accuracy"] is None
