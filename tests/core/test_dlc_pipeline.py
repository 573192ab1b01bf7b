"""The issue's end-to-end check on a real DeepLabCut project: ``gumshoe import`` (frames
corrupted with known truth), ``train`` and ``rank`` on ``dlc-openfield``, and the review
queue shows the flagged frames first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.metrics import auroc
from core.project import Project
from core.scoring import sample_flagged


def test_train_and_rank_on_the_openfield_project_flag_the_corrupted_frames(
        dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "mice.gumshoe"
    assert main(["import", str(project), str(dataset("dlc-openfield")),
                 "--noise", "g-ugo:0.1", "--seed", "0"]) == 0
    # 30 epochs at 64 px (auto would take 100 on these 102 frames): about 90 s on two cores
    assert main(["train", str(project), "--epochs", "30", "--seed", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["rank", str(project), "--json", "--top", "0"]) == 0
    ranked = json.loads(capsys.readouterr().out)["samples"]
    assert len(ranked) == 116
    with Project.open(project) as p:
        truth = p.contamination()
        corrupted = {sid for sid, (whole, _) in truth.items() if whole}
        assert len(corrupted) == 10  # 10 % of the 102 training frames
        flagged = sum(sample_flagged(r.score) for r in p.queue())  # the one flag rule
        # every moved frame, and not most clean ones (a clean run flags 18 of 116:
        # benchmarks/results/2026-12-02-formats.json)
        assert 10 <= flagged <= 35
        assert p.queue_count(min_score=0.0) == flagged
        queue = p.queue(limit=flagged)
        train = {s.id for s in p.samples(split="train")}
    assert [r.sample_id for r in queue] == [r["sample_id"] for r in ranked[:flagged]]
    assert all(r.score > 0 and r.outlier_prob > 0.5 for r in queue)
    scores = [r["score"] for r in ranked if r["sample_id"] in train]
    wrong = [r["sample_id"] in corrupted for r in ranked if r["sample_id"] in train]
    assert auroc(scores, wrong) > 0.95
    top = [r["sample_id"] for r in ranked[:flagged]]
    assert corrupted <= set(top)  # every corrupted frame is among the flagged ones
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
