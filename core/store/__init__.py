"""The project store: one SQLite file per project (see :mod:`core.store.project`).

Modules: ``records`` (typed rows, errors), ``codec`` (stored formats), ``schema``
(tables per version, structure check), ``migrations`` (one step per version),
``files`` (connections, locking, backups), ``samples`` (samples, labels, review),
``scores`` (runs, epochs, score sets), ``queue`` (the review queue's data),
``lease`` (one trainer at a time), ``merge`` (offline copies), ``project`` (the
:class:`Project` that joins them).
"""

from __future__ import annotations

from core.store.lease import Lease
from core.store.merge import MergeResult, merge
from core.store.project import Project
from core.store.queue import SORTS, QueueQuery
from core.store.records import (
    LABEL_ORIGINS,
    LEASE_OWNERS,
    REVIEW_STATUSES,
    RUN_STATUSES,
    SPLITS,
    SUFFIX,
    Conflict,
    Epoch,
    FutureProjectError,
    ImportSkip,
    Label,
    LabelConflictError,
    LabelSchema,
    LeaseHeldError,
    LeaseInfo,
    LeaseLostError,
    NewSample,
    ProjectError,
    QueueRow,
    ReadOnlyProjectError,
    ReviewEvent,
    Run,
    Sample,
    ScoreRow,
    Source,
    now_iso,
)
from core.store.schema import APP_ID, SCHEMA_VERSION
from core.store.scores import ScoreColumns

__all__ = [
    "APP_ID", "LABEL_ORIGINS", "LEASE_OWNERS", "REVIEW_STATUSES", "RUN_STATUSES",
    "SCHEMA_VERSION", "SORTS", "SPLITS", "SUFFIX", "Conflict", "Epoch", "FutureProjectError",
    "ImportSkip", "Label", "LabelConflictError", "LabelSchema", "Lease", "LeaseHeldError",
    "LeaseInfo", "LeaseLostError", "MergeResult", "NewSample", "Project", "ProjectError",
    "QueueQuery", "QueueRow", "ReadOnlyProjectError", "ReviewEvent", "Run", "Sample",
    "ScoreColumns", "ScoreRow", "Source", "merge", "now_iso",
]
