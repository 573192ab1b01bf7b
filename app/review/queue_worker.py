"""The review queue's worker side: the filter, and the loop that answers the
model's requests on the worker's own project connection (see
:mod:`app.review.queue_model` for the protocol: a reset answers with the first
page, the counts and then the whole ordering as a snapshot of sample ids; later
pages are cut from the snapshot). It touches no widget: it runs in the worker
thread and answers with plain values."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.review.rows import field
from app.review.scores import score_for_level
from app.workers import WorkerContext
from core import flags as flag_rule
from core.image_problems import image_problems
from core.project import QueueRow

PAGE = 200
MAX_PENDING = 8


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows, in ``Project.queue``'s terms (see there)."""

    statuses: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    min_prob: float | None = None  # P(wrong), the unit the GUI shows
    max_prob: float | None = None
    split: str | None = None
    search: str = ""
    # the search box's terms (app.review.search), on top of the widgets' choices
    q_statuses: tuple[str, ...] = ()
    q_min_prob: float | None = None
    q_max_prob: float | None = None
    q_split: str | None = None
    landmark: int | None = None  # samples whose worst landmark is this one
    issue: str | None = None  # the run's named likely error
    conflicts: bool = False  # only samples a merge found changed in two copies
    sort: str = "score"  # score, prob, path, status, split, worst_landmark, reviewed_at, id
    descending: bool = True

    def kwargs(self, log_odds: bool = True) -> dict[str, Any]:
        """``Project.queue``'s keywords. A probability bound is turned into a bound on the
        run's score (``log_odds``: every run since all methods give probabilities; else an
        old baseline run's residual ratio, on the colour scale)."""
        lo = [v for v in (self.min_score, score_for_level(self.min_prob, log_odds),
                          score_for_level(self.q_min_prob, log_odds)) if v is not None]
        hi = [v for v in (self.max_score, score_for_level(self.max_prob, log_odds),
                          score_for_level(self.q_max_prob, log_odds)) if v is not None]
        statuses = list(self.statuses or self.q_statuses)
        if self.statuses and self.q_statuses:  # both: the statuses both allow
            statuses = [st for st in self.statuses if st in self.q_statuses]
        return {"statuses": statuses or None,
                "min_score": max(lo) if lo else None, "max_score": min(hi) if hi else None,
                "split": self.split or self.q_split or None, **self._rest()}

    @property
    def matches_nothing(self) -> bool:
        """The widgets and the search box ask for statuses or splits no sample can have
        at once (``status:fixed`` while the status box shows 'to review')."""
        if self.statuses and self.q_statuses and not set(self.statuses) & set(self.q_statuses):
            return True
        return bool(self.split and self.q_split and self.split != self.q_split)

    def _rest(self) -> dict[str, Any]:
        return {"search": self.search or None, "landmark": self.landmark,
                "issue": self.issue or None, "conflicts": self.conflicts, "sort": self.sort,
                "descending": self.descending}


def _fetch_rows(project: Any, flt: QueueFilter, run_id: int | None, page: int,
                snapshot: np.ndarray | None = None, log_odds: bool = True) -> list[QueueRow]:
    """One page of rows: cut from ``snapshot`` (the whole ordering as sample ids) when
    there is one (one statement), else by ``Project.queue`` (at most three)."""
    if snapshot is not None:
        return project.queue_rows(snapshot[page * PAGE:(page + 1) * PAGE].tolist(), run_id)
    if flt.matches_nothing:
        return []
    return project.queue(run_id=run_id, limit=PAGE, offset=page * PAGE,
                         **flt.kwargs(log_odds))


def _log_odds(project: Any, run_id: int | None, method: str | None) -> bool:
    """Whether the run's scores are log-odds (see :func:`core.flags.is_log_odds`)."""
    if run_id is None or method == "deepgum":
        return True
    top = project.queue(run_id=run_id, limit=1)
    return bool(top) and top[0].outlier_prob is not None


def _counts(project: Any, run_id: int | None, log_odds: bool) -> dict[str, int]:
    """Samples per review status, plus ``flagged`` (the samples the run calls wrong, by
    the one flag rule) and ``flagged_left`` (those not reviewed yet): two counts."""
    counts = dict(project.review_counts())
    if run_id is not None:
        t = flag_rule.sample_threshold(log_odds)
        counts["flagged"] = project.queue_count(run_id=run_id, min_score=t + 1e-12)
        counts["flagged_left"] = project.queue_count(run_id=run_id, min_score=t + 1e-12,
                                                     statuses=["unreviewed"])
    return counts


def serve(ctx: WorkerContext, requests: queue.Queue) -> None:
    """Worker loop: newest request first; stale generations dropped. See the module
    docstring; the snapshot is read 64 k ids at a time and abandoned when a newer
    reset arrives meanwhile."""
    project = ctx.project()
    resets: list[tuple] = []
    pages: list[tuple] = []
    snapshot: np.ndarray | None = None
    snap_gen = kw_gen = -1
    kw_log_odds = True  # the last reset's run: are its scores log-odds

    def drain(block: bool) -> None:
        try:
            while True:
                req = requests.get(timeout=0.05 if block else 0.0)
                (resets if req[0] in ("reset", "counts") else pages).append(req)
                block = False
        except queue.Empty:
            pass

    while not ctx.should_stop():
        drain(block=not (resets or pages))
        if resets:
            req = resets.pop()
            if req[0] == "counts":
                run_id = project.scored_run()
                method = None if run_id is None else field(project.run(run_id), "method")
                ctx.emit(("counts", _counts(project, run_id, _log_odds(project, run_id, method))),
                         force=True)
                continue
            _, gen, flt = req
            resets.clear()
            pages = [p for p in pages if p[1] > gen]
            run_id = project.scored_run()
            method = None if run_id is None else project.run(run_id).method
            log_odds = _log_odds(project, run_id, method)
            kw_gen, kw_log_odds = gen, log_odds
            rows = _fetch_rows(project, flt, run_id, 0, log_odds=log_odds)
            complete = len(rows) < PAGE
            problems = {sid: p.kind for sid, p in image_problems(project.cache_dir).items()}
            ctx.emit(("reset", gen, run_id, method, len(rows), rows,
                      _counts(project, run_id, log_odds), complete, problems), force=True)
            snapshot = None
            if not complete:
                def newer(gen: int = gen) -> bool:
                    drain(block=False)
                    return ctx.should_stop() or any(r[0] == "reset" and r[1] > gen
                                                    for r in resets)
                ids = project.queue_ids(run_id=run_id, cancel=newer, **flt.kwargs(log_odds))
                if ids is not None:
                    snapshot, snap_gen = ids, gen
                    ctx.emit(("count", gen, len(ids)), force=True)
            continue
        if pages:
            while len(pages) > MAX_PENDING:  # forget the oldest requests
                _, gen, _f, _r, page = pages.pop(0)
                ctx.emit(("dropped", gen, page), force=True)
            _, gen, flt, run_id, page = pages.pop()
            snap = snapshot if gen == snap_gen else None
            if snap is None and gen != kw_gen:  # an older reset's page (rare)
                kw_gen, kw_log_odds = gen, _log_odds(project, run_id, None)
            ctx.emit(("page", gen, page, _fetch_rows(project, flt, run_id, page, snap,
                                                     kw_log_odds)), force=True)
