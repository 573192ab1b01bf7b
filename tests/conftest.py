"""Shared fixtures. Real datasets live in ../shared/datasets beside the checkout
(or $GUMSHOE_DATASETS); tests that need them skip with a clear reason otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    env = os.environ.get("GUMSHOE_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set GUMSHOE_DATASETS)")
    return root


@pytest.fixture
def dataset(datasets: Path):
    """dataset('fgnet') -> Path, skipping if that folder is absent."""

    def get(name: str) -> Path:
        p = datasets / name
        if not p.exists():
            pytest.skip(f"dataset {name!r} not found at {p}")
        return p

    return get
