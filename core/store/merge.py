"""Merge a copy of a project (an annotator worked on it offline) back into it.

Label versions and review events are append-only, so a merge is a union: every
version and event of the copy that the project lacks is appended, with its own
author and time. A version is the same in both files when its time, author,
origin, note and values are (ids differ between copies). Per sample:

* only the copy changed it (the project's current version is known to the copy):
  the copy's current version becomes current here;
* only the project changed it: nothing to do;
* both changed it: both versions are kept, the newer one is current, and a
  :class:`~core.store.records.Conflict` is recorded (the queue flags the sample
  until someone edits it).

Review statuses follow the same rule. Merging the same copy again adds nothing.
Samples of the copy that the project does not hold (another import) are counted
and left out; runs and scores are not merged (train again on the merged labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.store.base import chunks, marks
from core.store.records import Conflict, ProjectError, now_iso

if TYPE_CHECKING:
    from core.store.project import Project

MERGE_CHUNK = 500


@dataclass
class MergeResult:
    source: Path
    labels_added: int = 0
    events_added: int = 0
    samples_updated: int = 0  # current label or status taken from the copy
    samples_missing: int = 0  # in the copy, not in this project
    conflicts: list[Conflict] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"merged {self.source}: {self.labels_added} label versions and "
                f"{self.events_added} review events added, {self.samples_updated} samples "
                f"updated, {len(self.conflicts)} conflicts")
        if self.samples_missing:
            text += f"; {self.samples_missing} samples of the copy are not in this project"
        return text


_LABEL = "id, sample_id, points, visibility, age, origin, author, created_at, note, replaces"
_EVENT = "id, sample_id, status, author, created_at, note, replaces"


def _lkey(r: Sequence[Any]) -> tuple:
    return (r[7], r[6], r[5], r[8], r[2], r[3], r[4])  # time, author, origin, note, values


def _ekey(r: Sequence[Any]) -> tuple:
    return (r[4], r[3], r[2], r[5])  # time, author, status, note


def _sample_map(project: Project, copy: Project, result: MergeResult) -> dict[int, int]:
    """Copy sample id -> project sample id, matched by source and key."""
    mine = {(s.format, s.task, s.root): s.id for s in project.sources()}
    by_id = {s.id: s for s in project.sources()}
    out: dict[int, int] = {}
    for src in copy.sources():
        same = by_id.get(src.id)
        target = src.id if same is not None and (same.format, same.task) == (src.format, src.task) \
            else mine.get((src.format, src.task, src.root))
        keys = dict(copy.conn.execute("SELECT key, id FROM samples WHERE source_id = ?", (src.id,)))
        if target is None:
            result.samples_missing += len(keys)
            continue
        here = project.sample_ids_by_key(target, list(keys))
        result.samples_missing += len(keys) - len(here)
        out.update({keys[k]: v for k, v in here.items()})
    return out


def merge(project: Project, other: str | Path) -> MergeResult:
    """Bring the label versions and review events of the copy ``other`` into
    ``project`` (see the module docstring); idempotent."""
    from core.store.project import Project

    other = Path(other)
    if other.resolve() == project.path.resolve():
        raise ProjectError(f"{other}: is this project itself; nothing to merge")
    result = MergeResult(other)
    with Project.open(other, read_only=True) as copy:
        if copy.schema != project.schema:
            raise ProjectError(f"{other}: holds other labels ({copy.schema and copy.schema.name}) "
                               f"than {project.path} ({project.schema and project.schema.name})")
        mapping = _sample_map(project, copy, result)
        for part in chunks(sorted(mapping), MERGE_CHUNK):
            _merge_chunk(project, copy, {c: mapping[c] for c in part}, result)
    return result


def _merge_chunk(project: Project, copy: Project, ids: dict[int, int], result: MergeResult) -> None:
    theirs_l: dict[int, list] = {}
    for r in copy.conn.execute(f"SELECT {_LABEL} FROM labels WHERE sample_id IN "
                               f"({marks(len(ids))}) ORDER BY id", list(ids)):
        theirs_l.setdefault(ids[r[1]], []).append(r)
    theirs_e: dict[int, list] = {}
    for r in copy.conn.execute(f"SELECT {_EVENT} FROM review_events WHERE sample_id IN "
                               f"({marks(len(ids))}) ORDER BY id", list(ids)):
        theirs_e.setdefault(ids[r[1]], []).append(r)
    their_cur = dict(copy.conn.execute(f"SELECT id, label_id FROM samples WHERE id IN "
                                       f"({marks(len(ids))})", list(ids)))
    here = list(ids.values())
    with project.transaction():
        ours_l: dict[int, list] = {}
        for r in project.conn.execute(f"SELECT {_LABEL} FROM labels WHERE sample_id IN "
                                      f"({marks(len(here))}) ORDER BY id", here):
            ours_l.setdefault(r[1], []).append(r)
        ours_e: dict[int, list] = {}
        for r in project.conn.execute(f"SELECT {_EVENT} FROM review_events WHERE sample_id IN "
                                      f"({marks(len(here))}) ORDER BY id", here):
            ours_e.setdefault(r[1], []).append(r)
        state = {int(r[0]): r[1:] for r in project.conn.execute(
            f"SELECT id, label_id, review_status FROM samples WHERE id IN ({marks(len(here))})",
            here)}
        for cid, sid in ids.items():
            changed = _merge_labels(project, sid, ours_l.get(sid, []), theirs_l.get(sid, []),
                                    their_cur.get(cid), state[sid][0], result)
            changed |= _merge_events(project, sid, ours_e.get(sid, []), theirs_e.get(sid, []),
                                     result)
            result.samples_updated += changed


def _conflict(project: Project, sid: int, kind: str, ours: int, theirs: int, kept: int,
              result: MergeResult) -> None:
    t = now_iso()
    cur = project.conn.execute(
        "INSERT OR IGNORE INTO conflicts(sample_id, kind, ours, theirs, kept, merged_from,"
        " created_at) VALUES (?,?,?,?,?,?,?)", (sid, kind, ours, theirs, kept,
                                                str(result.source), t))
    if cur.rowcount:
        result.conflicts.append(Conflict(int(cur.lastrowid), sid, kind, ours, theirs, kept,
                                         str(result.source), t, None))


def _merge_labels(project: Project, sid: int, ours: list, theirs: list, their_cur: int | None,
                  our_cur: int | None, result: MergeResult) -> bool:
    known = {_lkey(r): int(r[0]) for r in ours}  # version -> id here
    their_keys = {int(r[0]): _lkey(r) for r in theirs}
    new = [r for r in theirs if _lkey(r) not in known]
    if not new:
        return False
    for r in new:  # in the copy's order, so `replaces` always names a version already here
        rep = None if r[9] is None else known.get(their_keys.get(int(r[9]), ()))
        lid = project.conn.execute(
            "INSERT INTO labels(sample_id, points, visibility, age, origin, author, created_at,"
            " note, replaces) VALUES (?,?,?,?,?,?,?,?,?)",
            (sid, r[2], r[3], r[4], r[5], r[6], r[7], r[8], rep)).lastrowid
        known[_lkey(r)] = int(lid)
        result.labels_added += 1
    if their_cur is None or their_cur not in their_keys:
        return False
    theirs_now = known[their_keys[their_cur]]
    our_row = next((r for r in ours if int(r[0]) == our_cur), None)
    if our_row is None or _lkey(our_row) in set(their_keys.values()):
        kept = theirs_now  # the copy saw our current version: fast-forward
    else:  # both changed it: the newer is current, both are kept
        their_row = next(r for r in theirs if int(r[0]) == their_cur)
        kept = theirs_now if their_row[7] > our_row[7] else int(our_row[0])
        _conflict(project, sid, "label", int(our_row[0]), theirs_now, kept, result)
    if kept != our_cur:
        project.conn.execute("UPDATE samples SET label_id = ? WHERE id = ?", (kept, sid))
        return True
    return False


def _merge_events(project: Project, sid: int, ours: list, theirs: list,
                  result: MergeResult) -> bool:
    known = {_ekey(r): int(r[0]) for r in ours}
    new = [r for r in theirs if _ekey(r) not in known]
    if not new:
        return False
    for r in new:
        eid = project.conn.execute(
            "INSERT INTO review_events(sample_id, status, author, created_at, note, replaces)"
            " VALUES (?,?,?,?,?,?)", (sid, r[2], r[3], r[4], r[5], r[6])).lastrowid
        known[_ekey(r)] = int(eid)
        result.events_added += 1
    their_last = theirs[-1]
    their_keys = {_ekey(r) for r in theirs}
    our_last = ours[-1] if ours else None
    if our_last is None or _ekey(our_last) in their_keys:
        take = their_last
    else:
        take = their_last if their_last[4] > our_last[4] else our_last
        _conflict(project, sid, "review", int(our_last[0]), known[_ekey(their_last)],
                  known[_ekey(take)], result)
    if take is our_last:
        return False
    project.conn.execute(
        "UPDATE samples SET review_status = ?, reviewed_by = ?, reviewed_at = ? WHERE id = ?",
        (take[2], take[3], take[4], sid))
    return True
