"""Runs, their epochs and their scores.

A run's scores are written as a new *score set* in short transactions (sample
rows, then the ranking), and published at the end by one tiny transaction that
points the run at it; the set it replaces is then deleted in chunks. Readers
never see half a run's scores. Each chunk is sized by a :class:`files.Pacer` to
hold the write lock about 20 ms, so an annotator's edit waits for one short
chunk at most, however cold the cache or slow the disk. Rows go in key order
(sample id; score for the ranking), so a million of them are appended, not
scattered through the b-trees.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.store import codec, files
from core.store.base import StoreBase
from core.store.records import (
    RUN_STATUSES,
    Epoch,
    ProjectError,
    Run,
    ScoreRow,
    host_name,
    now_iso,
)

# first chunk sizes (rows); a Pacer then steers each by the time it held the lock
SCORE_CHUNK = 1000
RANK_CHUNK = 5000
DELETE_CHUNK = 2000

RUN_COLS = ("id, method, params, status, device, host, pid, started_at, updated_at, finished_at,"
            " checkpoint, state, message, score_set")
EPOCH_COLS = ("run_id, epoch, train_loss, val_error, inlier_fraction, images_per_s, seconds,"
              " metrics, created_at")
SCORE_FIELDS = ("outlier_prob", "landmark_scores", "landmark_probs", "prediction",
                "prediction_std", "issue", "statistic", "worst_landmark")
_SQL_COLS = {"outlier_prob": "sc.outlier_prob", "landmark_scores": "sc.landmark_scores",
             "landmark_probs": "sc.landmark_probs", "prediction": "sc.prediction",
             "prediction_lo": "sc.prediction_lo", "prediction_step": "sc.prediction_step",
             "prediction_std": "sc.prediction_std", "issue": "sc.issue",
             "statistic": "sc.statistic", "worst_landmark": "sc.worst_landmark"}


@dataclass(frozen=True)
class ScoreColumns:
    """A run's scores as arrays (one row per sample): what a writer with a million
    samples passes instead of a million :class:`ScoreRow` objects."""

    sample_id: np.ndarray  # (N,) int
    score: np.ndarray  # (N,)
    outlier_prob: np.ndarray | None = None  # (N,), NaN where none
    landmark_scores: np.ndarray | None = None  # (N, K)
    landmark_probs: np.ndarray | None = None  # (N, K)
    prediction: np.ndarray | None = None  # (N, D)
    prediction_std: np.ndarray | None = None  # (N, D) or (N, K)
    issue: Sequence[str | None] | None = None
    statistic: np.ndarray | None = None


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _prob_from_score(score: np.ndarray, prob: np.ndarray) -> bool:
    """Whether every probability is sigmoid(score) (then a probability range is a
    score range for the queue)."""
    if len(score) == 0 or np.isnan(prob).any():
        return False
    with np.errstate(over="ignore"):
        return bool(np.allclose(prob, 1.0 / (1.0 + np.exp(-score)), rtol=1e-9, atol=1e-12))


def _run(r: Sequence[Any]) -> Run:
    return Run(int(r[0]), str(r[1]), codec.json_object(r[2], "run params"), str(r[3]), str(r[4]),
               str(r[5]), None if r[6] is None else int(r[6]), str(r[7]), str(r[8]), r[9], r[10],
               codec.json_object(r[11], "run state"), str(r[12]),
               None if r[13] is None else int(r[13]))


def _epoch(r: Sequence[Any]) -> Epoch:
    return Epoch(int(r[0]), int(r[1]), _num(r[2]), _num(r[3]), _num(r[4]), _num(r[5]), _num(r[6]),
                 codec.json_object(r[7], "epoch metrics"), str(r[8]))


class RunsMixin(StoreBase):

    # ----------------------------------------------------------- runs

    def create_run(self, method: str, params: dict[str, Any] | None = None,
                   device: str = "") -> int:
        t = now_iso()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs(method, params, device, host, pid, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (method, json.dumps(params or {}), device, host_name(), os.getpid(), t, t))
            return int(cur.lastrowid)

    _RUN_FIELDS = frozenset({"status", "device", "finished_at", "checkpoint", "state", "message",
                             "params", "pid", "host"})

    def update_run(self, run_id: int, **fields: Any) -> None:
        bad = set(fields) - self._RUN_FIELDS
        if bad:
            raise ValueError(f"unknown run fields {sorted(bad)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        for k in ("state", "params"):
            if k in fields and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        fields["updated_at"] = now_iso()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.conn.execute(f"UPDATE runs SET {cols} WHERE id = ?", [*fields.values(), run_id])

    def run(self, run_id: int) -> Run:
        row = self.conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no run {run_id}")
        return self._decode(f"run {run_id}", _run, row)

    def runs(self) -> list[Run]:
        return [self._decode(f"run {r[0]}", _run, r)
                for r in self.conn.execute(f"SELECT {RUN_COLS} FROM runs ORDER BY id")]

    def add_epoch(self, run_id: int, epoch: int, *, train_loss: float | None = None,
                  val_error: float | None = None, inlier_fraction: float | None = None,
                  images_per_s: float | None = None, seconds: float | None = None,
                  metrics: dict[str, Any] | None = None) -> None:
        text = json.dumps(metrics or {})
        with self.transaction():
            t = now_iso()
            self.conn.execute(
                "INSERT OR REPLACE INTO epochs(run_id, epoch, train_loss, val_error, inlier_fraction,"
                " images_per_s, seconds, metrics, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, epoch, train_loss, val_error, inlier_fraction, images_per_s, seconds,
                 text, t))
            self.conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (t, run_id))

    def epochs(self, run_id: int, after: int = -1) -> list[Epoch]:
        return [self._decode(f"epoch {r[1]} of run {run_id}", _epoch, r)
                for r in self.conn.execute(
                    f"SELECT {EPOCH_COLS} FROM epochs WHERE run_id = ? AND epoch > ? ORDER BY epoch",
                    (run_id, after))]

    # ----------------------------------------------------------- writing scores

    def write_scores(self, run_id: int, rows: Iterable[ScoreRow] | ScoreColumns,
                     epoch: int | None = None) -> int:
        """Write a run's scores as a new score set and publish it (replacing the run's
        previous scores at once); returns the set id. See the module docstring."""
        encoded, ranks = (self._encode_columns(rows) if isinstance(rows, ScoreColumns)
                          else self._encode_rows(rows))
        sig = _prob_from_score(np.array([r[0] for r in ranks], dtype=np.float64),
                               np.array([np.nan if r[2] is None else r[2] for r in ranks],
                                        dtype=np.float64))
        self._drop_sets(run_id, unpublished_only=True)  # left by a writer that died
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise ProjectError(f"{self.path}: no run {run_id}")
            set_id = int(self.conn.execute(
                "INSERT INTO score_sets(run_id, epoch, rows, prob_from_score, created_at)"
                " VALUES (?,?,?,?,?)", (run_id, epoch, len(encoded), int(sig), now_iso())).lastrowid)
        pace = files.Pacer(SCORE_CHUNK)
        for part in pace.parts(encoded):
            self._beat()
            with pace.chunk(self):
                self.conn.executemany(
                    "INSERT INTO scores(set_id, sample_id, score, outlier_prob, statistic, issue,"
                    " worst_landmark, landmark_scores, landmark_probs, prediction, prediction_lo,"
                    " prediction_step, prediction_std) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(set_id, *r) for r in part])
        pace_ranks = files.Pacer(RANK_CHUNK)
        for part in pace_ranks.parts(ranks):
            self._beat()
            with pace_ranks.chunk(self):
                self.conn.executemany(
                    "INSERT INTO score_ranks(set_id, score, sample_id, outlier_prob, worst_landmark,"
                    " issue) VALUES (?,?,?,?,?,?)", [(set_id, *r) for r in part])
        with self.transaction():  # publish: the one switch readers see
            t = now_iso()
            self.conn.execute("UPDATE score_sets SET status = 'retired' WHERE run_id = ? AND "
                              "status = 'published'", (run_id,))
            self.conn.execute("UPDATE score_sets SET status = 'published' WHERE id = ?", (set_id,))
            self.conn.execute("UPDATE runs SET score_set = ?, updated_at = ? WHERE id = ?",
                              (set_id, t, run_id))
        self._drop_sets(run_id, unpublished_only=False)
        return set_id

    def _beat(self) -> None:
        """Keep this process's training lease alive during a long write."""
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.heartbeat()

    def _drop_sets(self, run_id: int, unpublished_only: bool) -> None:
        """Delete a run's score sets other than the published one, in chunks."""
        cond = "status = 'writing'" if unpublished_only else "status != 'published'"
        sets = [int(r[0]) for r in self.conn.execute(
            f"SELECT id FROM score_sets WHERE run_id = ? AND {cond}", (run_id,))]
        pace = files.Pacer(DELETE_CHUNK)
        for sid in sets:
            if self.read_only:
                return
            while True:
                self._beat()
                with pace.chunk(self):
                    n = self.conn.execute(
                        "DELETE FROM scores WHERE set_id = ? AND sample_id IN (SELECT sample_id "
                        "FROM scores WHERE set_id = ? ORDER BY sample_id LIMIT ?)",
                        (sid, sid, pace.size)).rowcount
                    n += self.conn.execute(
                        "DELETE FROM score_ranks WHERE (set_id, score, sample_id) IN (SELECT "
                        "set_id, score, sample_id FROM score_ranks WHERE set_id = ? LIMIT ?)",
                        (sid, pace.size * 4)).rowcount
                    if n == 0:
                        self.conn.execute("DELETE FROM score_sets WHERE id = ?", (sid,))
                if n == 0:
                    break

    @staticmethod
    def _check_score(sid: int, score: float) -> float:
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"sample {sid}: score {s} is not a finite number")
        return s

    def _encode_rows(self, rows: Iterable[ScoreRow]) -> tuple[list[tuple], list[tuple]]:
        by_id = {int(r.sample_id): r for r in rows}  # a repeated sample: the last row wins
        encoded, ranks = [], []
        for sid in sorted(by_id):
            r = by_id[sid]
            score = self._check_score(sid, r.score)
            prob = None if r.outlier_prob is None or not math.isfinite(r.outlier_prob) \
                else float(r.outlier_prob)
            ls = r.landmark_scores
            worst = codec.worst_index(ls)
            pred, lo, step = codec.encode_q16(r.prediction)
            stat = None if r.statistic is None or not math.isfinite(r.statistic) \
                else float(r.statistic)
            encoded.append((sid, score, prob, stat, r.issue, worst, codec.encode_f32(ls),
                            codec.probs_to_store(ls, r.landmark_probs, prob is not None),
                            pred, lo, step, codec.encode_f16(r.prediction_std)))
            ranks.append((score, sid, prob, worst, r.issue))
        ranks.sort(key=lambda t: (-t[0], t[1]))
        return encoded, ranks

    def _encode_columns(self, c: ScoreColumns) -> tuple[list[tuple], list[tuple]]:
        ids = np.asarray(c.sample_id, dtype=np.int64)
        n = len(ids)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        score = np.asarray(c.score, dtype=np.float64)[order]
        if not np.isfinite(score).all():
            bad = int(ids[~np.isfinite(score)][0])
            raise ValueError(f"sample {bad}: score is not a finite number")
        if len(np.unique(ids)) != n:
            raise ValueError("a sample appears twice in the scores")

        def col(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[order]

        prob, stat = col(c.outlier_prob), col(c.statistic)
        ls, lp, pred, std = (col(c.landmark_scores), col(c.landmark_probs), col(c.prediction),
                             col(c.prediction_std))
        none = [None] * n
        prob_l = none if prob is None else [None if not math.isfinite(v) else v
                                            for v in prob.astype(float).tolist()]
        stat_l = none if stat is None else [None if not math.isfinite(v) else v
                                            for v in stat.astype(float).tolist()]
        issue = none if c.issue is None else [c.issue[i] for i in order.tolist()]
        if ls is not None:
            lsf = ls.astype(np.float64)
            ok = np.isfinite(lsf)
            worst = np.where(ok.any(axis=1), np.argmax(np.where(ok, lsf, -np.inf), axis=1), -1)
            worst_l = [None if w < 0 else w for w in worst.tolist()]
            ls_b = [r.tobytes() for r in lsf.astype("<f4")]
        else:
            worst_l, ls_b = none, none
        lp_b = none if lp is None else [
            codec.probs_to_store(None if ls is None else ls[i], lp[i], prob_l[i] is not None)
            for i in range(n)]
        if pred is not None:
            pred_b, lo, step = codec.encode_q16_rows(pred)
            lo_l, step_l = lo.tolist(), step.tolist()
        else:
            pred_b, lo_l, step_l = none, none, none
        if std is not None:
            s = std.astype(np.float64)
            s = np.where(np.isnan(s), np.nan, np.clip(s, -codec.F16_MAX, codec.F16_MAX))
            std_b = [r.tobytes() for r in s.astype("<f2")]
        else:
            std_b = none
        ids_l, score_l = ids.tolist(), score.tolist()
        encoded = list(zip(ids_l, score_l, prob_l, stat_l, issue, worst_l, ls_b, lp_b, pred_b,
                           lo_l, step_l, std_b, strict=True))
        rank_order = np.lexsort((ids, -score))
        ranks = [(score_l[i], ids_l[i], prob_l[i], worst_l[i], issue[i]) for i in rank_order.tolist()]
        return encoded, ranks

    # ----------------------------------------------------------- reading scores

    def scored_run(self) -> int | None:
        """The latest run with published scores (what the review queue ranks by)."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE score_set IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def _score_sql(self, columns: Iterable[str] | None) -> tuple[str, frozenset[str]]:
        want = frozenset(SCORE_FIELDS if columns is None else columns)
        bad = want - set(SCORE_FIELDS) - {"score"}
        if bad:
            raise ValueError(f"unknown score columns {sorted(bad)}")
        need = set(want)
        if "landmark_probs" in need:
            need |= {"landmark_scores", "outlier_prob"}
        if "prediction" in need:
            need |= {"prediction_lo", "prediction_step"}
        names = ("outlier_prob", "landmark_scores", "landmark_probs", "prediction",
                 "prediction_lo", "prediction_step", "prediction_std", "issue", "statistic",
                 "worst_landmark")
        cols = ", ".join(_SQL_COLS[k] if k in need else "NULL" for k in names)
        return f"sc.sample_id, sc.score, {cols}", want

    def _score_row(self, r: Sequence[Any], want: frozenset[str], run_id: int) -> ScoreRow:
        def build() -> ScoreRow:
            ls = codec.decode_f32(r[3])
            probs = codec.decode_f32(r[4])
            if probs is None and ls is not None and r[2] is not None and "landmark_probs" in want:
                probs = codec.sigmoid(ls)
            return ScoreRow(
                int(r[0]), float(r[1]),
                _num(r[2]) if "outlier_prob" in want else None,
                ls if "landmark_scores" in want else None,
                probs if "landmark_probs" in want else None,
                codec.decode_q16(r[5], r[6], r[7]), codec.decode_f16(r[8]),
                None if r[9] is None else str(r[9]), _num(r[10]),
                None if r[11] is None else int(r[11]), run_id)
        return self._decode(f"scores of sample {r[0]} in run {run_id}", build)

    def scores(self, run_id: int, sample_ids: Iterable[int] | None = None, *,
               columns: Iterable[str] | None = None) -> dict[int, ScoreRow]:
        """A run's published scores by sample id: all samples' or the given ones',
        with every field, or only ``columns`` (the rest read as None; e.g.
        ``columns=("outlier_prob",)`` decodes no per-landmark array)."""
        cols, want = self._score_sql(columns)
        base = (f"SELECT {cols} FROM scores sc WHERE sc.set_id = "
                "(SELECT score_set FROM runs WHERE id = ?)")
        rows = (self.conn.execute(base + " ORDER BY sc.sample_id", (run_id,)) if sample_ids is None
                else self._in_chunks(base + " AND sc.sample_id IN ({marks})", sample_ids, run_id))
        return {int(r[0]): self._score_row(r, want, run_id) for r in rows}

    def score_array(self, run_id: int, column: str = "score") -> tuple[np.ndarray, np.ndarray]:
        """One scalar column of a run's scores for every sample: (sample ids ascending,
        values as float64, NaN where NULL). A million samples: 16 MB, no row objects."""
        if column not in ("score", "outlier_prob", "statistic", "worst_landmark"):
            raise ValueError(f"not a scalar score column: {column!r}")
        cur = self.conn.execute(
            f"SELECT sample_id, {column} FROM scores WHERE set_id = "
            "(SELECT score_set FROM runs WHERE id = ?) ORDER BY sample_id", (run_id,))
        ids: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        while rows := cur.fetchmany(65536):
            ids.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            vals.append(np.fromiter((np.nan if r[1] is None else r[1] for r in rows),
                                    np.float64, len(rows)))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(ids), np.concatenate(vals)

    def sample_score(self, sample_id: int, run_id: int | None = None) -> ScoreRow | None:
        run_id = self.scored_run() if run_id is None else run_id
        if run_id is None:
            return None
        return self.scores(run_id, [sample_id]).get(int(sample_id))
