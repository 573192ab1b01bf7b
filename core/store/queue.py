"""The review queue's data: samples ranked by a run's scores (or sorted by a
column), filtered, a page at a time in at most three SQL statements.

Ranked by score (the default) a page walks the run's ``score_ranks`` rows in key
order and stops after the page: the first page of a million samples costs as much
as that of a thousand. Samples the run did not score come after the scored ones, by
id. A status filter that keeps the unreviewed samples excludes the (few) reviewed
ones through the status index; one that keeps only reviewed statuses starts from
those samples instead. Other sorts walk an index of ``samples``.

``queue_ids`` gives a whole ordering at once (the queue model cuts its later pages
from it with ``queue_rows``, so a deep page costs no ``OFFSET`` walk).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.store.base import StoreBase, chunks, marks
from core.store.records import REVIEW_STATUSES, QueueRow

SORTS = ("score", "prob", "path", "status", "split", "worst_landmark", "reviewed_at", "id")
_SAMPLE_SORT = {"path": "s.path", "status": "s.review_status", "split": "s.split",
                "reviewed_at": "s.reviewed_at", "id": "s.id", "worst_landmark": "sc.worst_landmark"}


Select = Callable[[str | None], str]  # score table alias (None: unscored) -> SELECT list


def _one(_x: str | None) -> str:
    return "1"


def _sid(x: str | None) -> str:
    return "r.sample_id" if x == "r" else "s.id"


def _logit_bound(p: float, lower: bool) -> float:
    """A score bound no tighter than ``outlier_prob >= p`` (``lower``) or ``<= p``
    where probabilities are sigmoid(score): a little looser, for rounding; none near
    0 and 1, where the logit is not to be trusted."""
    if not 1e-12 < p < 1 - 1e-12:
        return -1e308 if lower else 1e308
    v = math.log(p / (1 - p))
    slack = 1e-6 * max(1.0, abs(v))
    return v - slack if lower else v + slack


@dataclass(frozen=True)
class QueueQuery:
    """The filters of :meth:`QueueMixin.queue` (see there), checked."""

    run_id: int | None = None
    statuses: tuple[str, ...] = ()
    min_prob: float | None = None
    max_prob: float | None = None
    min_score: float | None = None
    max_score: float | None = None
    split: str | None = None
    search: str | None = None
    landmark: int | None = None
    issue: str | None = None
    conflicts: bool = False
    sort: str = "score"
    descending: bool = True

    def __post_init__(self) -> None:
        bad = set(self.statuses) - set(REVIEW_STATUSES)
        if bad:
            raise ValueError(f"unknown review status {sorted(bad)[0]!r}")
        if self.sort not in SORTS:
            raise ValueError(f"unknown sort column {self.sort!r} (expected one of {', '.join(SORTS)})")

    @property
    def score_filtered(self) -> bool:
        """Filters only scored samples can pass."""
        return any(v is not None for v in (self.min_prob, self.max_prob, self.min_score,
                                           self.max_score, self.landmark, self.issue))

    @property
    def all_statuses(self) -> bool:
        return not self.statuses or set(self.statuses) >= set(REVIEW_STATUSES)


def _query(run_id: int | None, statuses: Sequence[str] | None, **kw: Any) -> QueueQuery:
    return QueueQuery(run_id=run_id, statuses=tuple(statuses or ()), **kw)


class QueueMixin(StoreBase):

    # ----------------------------------------------------------- SQL pieces

    def _set_sql(self, q: QueueQuery) -> tuple[str, list[Any]]:
        """The run's published score set as a constant subquery (no extra statement)."""
        if q.run_id is None:
            return ("(SELECT score_set FROM runs WHERE score_set IS NOT NULL "
                    "ORDER BY id DESC LIMIT 1)", [])
        return "(SELECT score_set FROM runs WHERE id = ?)", [int(q.run_id)]

    def _is_age(self) -> bool:
        return self.schema is not None and self.schema.task == "age"

    def _row_cols(self, x: str | None) -> str:
        """The QueueRow columns; ``x`` is the alias of the table holding the scores
        (None: an unscored sample)."""
        if x is None:
            scores, pred = "NULL, NULL, NULL, NULL", "NULL"
        else:
            scores = f"{x}.score, {x}.outlier_prob, {x}.worst_landmark, {x}.issue"
            pred = "CASE WHEN length(sc.prediction) = 2 THEN sc.prediction_lo END"
        age = f"l.age, {pred}" if self._is_age() else "NULL, NULL"
        return (f"s.id, s.key, s.path, s.split, s.review_status, {scores}, s.reviewed_by, "
                "s.reviewed_at, EXISTS (SELECT 1 FROM conflicts c WHERE c.sample_id = s.id AND "
                f"c.resolved_at IS NULL), {age}")

    def _age_joins(self, x: str) -> str:
        if not self._is_age():
            return ""
        joins = " LEFT JOIN labels l ON l.id = s.label_id"
        if x == "r":
            joins += " LEFT JOIN scores sc ON sc.set_id = r.set_id AND sc.sample_id = r.sample_id"
        return joins

    def _filters(self, q: QueueQuery, x: str | None, status_by_subquery: bool
                 ) -> tuple[list[str], list[Any]]:
        """WHERE terms on samples ``s`` and scores ``x`` (None: unscored samples)."""
        where: list[str] = []
        args: list[Any] = []
        sid = "r.sample_id" if x == "r" else "s.id"
        if not q.all_statuses:
            if status_by_subquery:
                # the reviewed samples are few: exclude them through the status index
                other = [st for st in REVIEW_STATUSES if st not in q.statuses]
                where.append(f"{sid} NOT IN (SELECT id FROM samples WHERE review_status IN "
                             f"({marks(len(other))}))")
                args += other
            else:
                where.append(f"s.review_status IN ({marks(len(q.statuses))})")
                args += list(q.statuses)
        if x is not None:
            for value, term in ((q.min_prob, f"{x}.outlier_prob >= ?"),
                                (q.max_prob, f"{x}.outlier_prob <= ?"),
                                (q.min_score, f"{x}.score >= ?"), (q.max_score, f"{x}.score <= ?"),
                                (q.landmark, f"{x}.worst_landmark = ?"), (q.issue, f"{x}.issue = ?")):
                if value is not None:
                    where.append(term)
                    args.append(value)
            # where the set's probabilities are sigmoid(score) (every method's, since
            # calibration), a probability range is also a score range: an index seek
            set_sql, set_args = self._set_sql(q)
            for value, op, lower in ((q.min_prob, ">=", True), (q.max_prob, "<=", False)):
                if value is not None:
                    where.append(f"{x}.score {op} (CASE WHEN (SELECT prob_from_score FROM "
                                 f"score_sets WHERE id = {set_sql}) THEN ? ELSE ? END)")
                    args += [*set_args, _logit_bound(float(value), lower),
                             -1e308 if lower else 1e308]
        if q.split:
            where.append("s.split = ?")
            args.append(q.split)
        if q.search:
            esc = q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("s.path LIKE ? ESCAPE '\\'")
            args.append(f"%{esc}%")
        if q.conflicts:
            where.append("EXISTS (SELECT 1 FROM conflicts c WHERE c.sample_id = s.id AND "
                         "c.resolved_at IS NULL)")
        return where, args

    def _rank_walk(self, q: QueueQuery) -> bool:
        """Walk the ranking in order (True) or start from the few samples whose status
        the filter keeps (False: a status filter without 'unreviewed')."""
        return q.all_statuses or "unreviewed" in q.statuses

    def _scored_sql(self, q: QueueQuery, select: Select) -> tuple[str, list[Any]]:
        """Scored samples in score order: ``SELECT {select} ... ORDER BY``."""
        set_sql, set_args = self._set_sql(q)
        desc = "DESC" if q.descending else "ASC"
        tie = "ASC" if q.descending else "DESC"  # walks the (set, score DESC, sample) key
        if self._rank_walk(q):
            where, args = self._filters(q, "r", status_by_subquery=True)
            # ids or a count only, and no filter on the samples' columns: no join
            bare = select in (_sid, _one) and not (q.split or q.search or q.conflicts)
            join = "" if bare else \
                f" JOIN samples s ON s.id = r.sample_id{self._age_joins('r')}"
            sql = (f"SELECT {select('r')} FROM score_ranks r{join} "
                   f"WHERE r.set_id = {set_sql}" + "".join(f" AND {w}" for w in where)
                   + f" ORDER BY r.score {desc}, r.sample_id {tie}")
        else:
            where, args = self._filters(q, "sc", status_by_subquery=False)
            sql = (f"SELECT {select('sc')} FROM samples s CROSS JOIN scores sc "
                   f"ON sc.set_id = {set_sql} AND sc.sample_id = s.id{self._age_joins('sc')}"
                   + (" WHERE " + " AND ".join(where) if where else "")
                   + f" ORDER BY sc.score {desc}, s.id {tie}")
        return sql, [*set_args, *args]

    def _unscored_sql(self, q: QueueQuery, select: Select) -> tuple[str, list[Any]]:
        """Samples the run did not score, by id (none when every sample is scored)."""
        set_sql, set_args = self._set_sql(q)
        where, args = self._filters(q, None, status_by_subquery=False)
        age = " LEFT JOIN labels l ON l.id = s.label_id" if self._is_age() else ""
        sql = (f"SELECT {select(None)} FROM samples s{age} "
               f"WHERE coalesce((SELECT rows FROM score_sets WHERE id = {set_sql}), 0) < "
               "(SELECT count(*) FROM samples) "
               f"AND NOT EXISTS (SELECT 1 FROM scores x WHERE x.set_id = {set_sql} "
               "AND x.sample_id = s.id)" + "".join(f" AND {w}" for w in where) + " ORDER BY s.id")
        return sql, [*set_args, *set_args, *args]

    def _sample_sorted_sql(self, q: QueueQuery, select: Select) -> tuple[str, list[Any]]:
        set_sql, set_args = self._set_sql(q)
        where, args = self._filters(q, "sc", status_by_subquery=False)
        desc = "DESC" if q.descending else "ASC"
        age = " LEFT JOIN labels l ON l.id = s.label_id" if self._is_age() else ""
        sql = (f"SELECT {select('sc')} FROM samples s LEFT JOIN scores sc "
               f"ON sc.set_id = {set_sql} AND sc.sample_id = s.id{age}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {_SAMPLE_SORT[q.sort]} {desc}, s.id {desc}")
        return sql, [*set_args, *args]

    @staticmethod
    def _queue_row(r: Sequence[Any]) -> QueueRow:
        return QueueRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                        None if r[5] is None else float(r[5]), None if r[6] is None else float(r[6]),
                        None if r[7] is None else int(r[7]), r[8], r[9], r[10], bool(r[11]),
                        None if r[12] is None else float(r[12]),
                        None if r[13] is None else float(r[13]))

    # ----------------------------------------------------------- API

    def queue(self, *, run_id: int | None = None, statuses: Sequence[str] | None = None,
              min_prob: float | None = None, max_prob: float | None = None,
              min_score: float | None = None, max_score: float | None = None,
              split: str | None = None, search: str | None = None, landmark: int | None = None,
              issue: str | None = None, conflicts: bool = False, sort: str = "score",
              descending: bool = True, limit: int | None = None,
              offset: int = 0) -> list[QueueRow]:
        """Samples ranked by the run's score (the latest scored run by default; highest
        first; unscored samples last, by id) or sorted by ``sort`` (``prob`` ranks as
        ``score``: the score is the logit of the probability). Filters: review
        ``statuses``, outlier probability and score ranges, ``split``, ``search`` (a
        substring of the path), ``landmark`` (the worst landmark's index), ``issue``,
        ``conflicts`` (only samples a merge found changed twice). At most 3 statements."""
        q = _query(run_id, statuses, min_prob=min_prob, max_prob=max_prob, min_score=min_score,
                   max_score=max_score, split=split, search=search, landmark=landmark,
                   issue=issue, conflicts=conflicts, sort=sort, descending=descending)
        select = self._row_cols
        page = "" if limit is None else " LIMIT ? OFFSET ?"
        paging = [] if limit is None else [int(limit), int(offset)]
        if q.sort not in ("score", "prob"):
            sql, args = self._sample_sorted_sql(q, select)
            return [self._queue_row(r) for r in self.conn.execute(sql + page, args + paging)]
        sql, args = self._scored_sql(q, select)
        rows = [self._queue_row(r) for r in self.conn.execute(sql + page, args + paging)]
        if q.score_filtered or (limit is not None and len(rows) >= limit):
            return rows
        if limit is None:
            n_scored = len(rows) + offset  # offset without limit: the rest
        elif rows:
            n_scored = offset + len(rows)
        else:
            csql, cargs = self._scored_sql(q, _one)
            n_scored = int(self.conn.execute(f"SELECT count(*) FROM ({csql})", cargs).fetchone()[0])
        usql, uargs = self._unscored_sql(q, select)
        if limit is None:
            usql += " LIMIT -1 OFFSET ?"
            uargs = [*uargs, max(0, offset - n_scored)]
        else:
            usql += page
            uargs = [*uargs, limit - len(rows), max(0, offset - n_scored)]
        return rows + [self._queue_row(r) for r in self.conn.execute(usql, uargs)]

    def queue_count(self, *, run_id: int | None = None, statuses: Sequence[str] | None = None,
                    **filters: Any) -> int:
        """How many rows :meth:`queue` has with these filters (one statement)."""
        filters.pop("sort", None)
        filters.pop("descending", None)
        q = _query(run_id, statuses, **filters)
        if q.sort not in ("score", "prob"):
            q = QueueQuery(**{**q.__dict__, "sort": "score"})
        ssql, sargs = self._scored_sql(q, _one)
        if q.score_filtered:
            return int(self.conn.execute(f"SELECT count(*) FROM ({ssql})", sargs).fetchone()[0])
        usql, uargs = self._unscored_sql(q, _one)
        return int(self.conn.execute(f"SELECT (SELECT count(*) FROM ({ssql})) + "
                                     f"(SELECT count(*) FROM ({usql}))",
                                     [*sargs, *uargs]).fetchone()[0])

    def queue_ids(self, *, run_id: int | None = None, statuses: Sequence[str] | None = None,
                  cancel: Callable[[], bool] | None = None, **filters: Any) -> np.ndarray | None:
        """The whole ordering of :meth:`queue` as sample ids (int64), for cutting pages
        (one or two statements, read 64 k rows at a time; None if ``cancel()`` turned
        true meanwhile)."""
        q = _query(run_id, statuses, **filters)
        if q.sort not in ("score", "prob"):
            sql, args = self._sample_sorted_sql(q, _sid)
            return _ids(self.conn.execute(sql, args), cancel)
        sql, args = self._scored_sql(q, _sid)
        scored = _ids(self.conn.execute(sql, args), cancel)
        if q.score_filtered or scored is None:
            return scored
        usql, uargs = self._unscored_sql(q, _sid)
        rest = _ids(self.conn.execute(usql, uargs), cancel)
        return None if rest is None else np.concatenate([scored, rest])

    def queue_rows(self, sample_ids: Iterable[int], run_id: int | None = None) -> list[QueueRow]:
        """Queue rows of the given samples, in the given order (one statement per 500)."""
        ids = [int(i) for i in sample_ids]
        q = QueueQuery(run_id=run_id)
        set_sql, set_args = self._set_sql(q)
        age = " LEFT JOIN labels l ON l.id = s.label_id" if self._is_age() else ""
        out: dict[int, QueueRow] = {}
        for part in chunks(ids):
            sql = (f"SELECT {self._row_cols('sc')} FROM samples s LEFT JOIN scores sc "
                   f"ON sc.set_id = {set_sql} AND sc.sample_id = s.id{age} "
                   f"WHERE s.id IN ({marks(len(part))})")
            for r in self.conn.execute(sql, [*set_args, *part]):
                out[int(r[0])] = self._queue_row(r)
        return [out[i] for i in ids if i in out]


def _ids(cursor: Any, cancel: Callable[[], bool] | None = None) -> np.ndarray | None:
    out: list[np.ndarray] = []
    while True:
        if cancel is not None and cancel():
            cursor.close()
            return None
        rows = cursor.fetchmany(65536)
        if not rows:
            break
        out.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    return np.concatenate(out) if out else np.zeros(0, np.int64)
