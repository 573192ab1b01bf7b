"""The project file. The store lives in the :mod:`core.store` package; this module
keeps the import path every caller uses (``from core.project import Project``)."""

from __future__ import annotations

from core.store import (
    APP_ID,
    LABEL_ORIGINS,
    LEASE_OWNERS,
    REVIEW_STATUSES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    SORTS,
    SPLITS,
    SUFFIX,
    Conflict,
    Epoch,
    FutureProjectError,
    ImportSkip,
    Label,
    LabelConflictError,
    LabelSchema,
    Lease,
    LeaseHeldError,
    LeaseInfo,
    LeaseLostError,
    MergeResult,
    NewSample,
    Project,
    ProjectError,
    QueueQuery,
    QueueRow,
    ReadOnlyProjectError,
    ReviewEvent,
    Run,
    Sample,
    ScoreColumns,
    ScoreRow,
    Source,
    merge,
    now_iso,
)

__all__ = [
    "APP_ID", "LABEL_ORIGINS", "LEASE_OWNERS", "REVIEW_STATUSES", "RUN_STATUSES",
    "SCHEMA_VERSION", "SORTS", "SPLITS", "SUFFIX", "Conflict", "Epoch", "FutureProjectError",
    "ImportSkip", "Label", "LabelConflictError", "LabelSchema", "Lease", "LeaseHeldError",
    "LeaseInfo", "LeaseLostError", "MergeResult", "NewSample", "Project", "ProjectError",
    "QueueQuery", "QueueRow", "ReadOnlyProjectError", "ReviewEvent", "Run", "Sample",
    "ScoreColumns", "ScoreRow", "Source", "merge", "now_iso",
]
