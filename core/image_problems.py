"""The record of image problems: the samples whose image was missing, unreadable
or changed since import (content hash differs) when the cache last checked them,
kept in ``image-problems.json`` in the cache folder (under the cache's lock) for
``gumshoe info``, the training run's warning and the review queue."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.cache_files import cache_lock, write_json
from core.project import Project

PROBLEMS_NAME = "image-problems.json"


@dataclass(frozen=True)
class ImageProblem:
    """Why a sample's image cannot be used: ``kind`` is ``missing``, ``changed`` or
    ``unreadable``; ``message`` one line naming the file."""

    kind: str
    message: str
    checked_at: str


def record_problems(cache_dir: str | os.PathLike[str], checked: Iterable[int],
                    problems: dict[int, ImageProblem]) -> None:
    """Update the record of image problems: each sample in ``checked`` now has the
    problem in ``problems``, or none."""
    checked = set(checked)
    if not checked and not problems:
        return
    folder = Path(cache_dir)
    with cache_lock(folder):
        current = image_problems(folder)
        for sid in checked:
            current.pop(sid, None)
        current.update(problems)
        if not current and not (folder / PROBLEMS_NAME).exists():
            return
        write_json(folder / PROBLEMS_NAME, {
            "format": 1,
            "problems": {str(k): [p.kind, p.message, p.checked_at]
                         for k, p in sorted(current.items())}})


def image_problems(cache_dir: str | os.PathLike[str]) -> dict[int, ImageProblem]:
    """{sample id: problem} for the samples whose image was missing, unreadable or
    changed since import when the cache last checked it (at import, training or an
    explicit check); empty when none, or when nothing was checked yet."""
    try:
        d = json.loads((Path(cache_dir) / PROBLEMS_NAME).read_bytes())
        return {int(k): ImageProblem(str(v[0]), str(v[1]), str(v[2]))
                for k, v in d["problems"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return {}


def problem_rows(project: Project) -> list[dict[str, object]]:
    """The recorded image problems of ``project`` as plain rows (sample_id, key, path,
    kind, message, checked_at), in sample order; for ``gumshoe info`` and the queue."""
    problems = image_problems(project.cache_dir)
    if not problems:
        return []
    samples = {s.id: s for s in project.samples()}
    return [{"sample_id": sid, "key": samples[sid].key, "path": samples[sid].path,
             "kind": p.kind, "message": p.message, "checked_at": p.checked_at}
            for sid, p in sorted(problems.items()) if sid in samples]
