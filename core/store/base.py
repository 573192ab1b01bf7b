"""What every part of the store shares: the connection, transactions, read-only
refusal, defensive row decoding and chunking helpers."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from core.store import files
from core.store.records import LabelSchema, ProjectError, ReadOnlyProjectError

T = TypeVar("T")
CHUNK = 500  # ids per `IN (...)` list and rows per short write transaction


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def marks(n: int) -> str:
    return ",".join("?" * n)


class StoreBase:
    """One open connection to a project file. Not thread-safe: open one per thread."""

    path: Path
    conn: sqlite3.Connection
    read_only: bool
    read_only_reason: str
    warnings: list[str]
    _schema: LabelSchema | None

    def __init__(self, path: Path, conn: sqlite3.Connection, *, read_only: bool = False,
                 read_only_reason: str = "") -> None:
        self.path = path
        self.conn = conn
        self.read_only = read_only
        self.read_only_reason = read_only_reason
        self.warnings = []
        self._schema = None

    # ----------------------------------------------------------- transactions

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyProjectError(
                f"{self.path}: open read-only ({self.read_only_reason}); nothing can be saved")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it is committed or none. Takes the write lock
        polling every millisecond (see :mod:`core.store.files`); keep it short."""
        self._refuse_if_read_only()
        if self.conn.in_transaction:  # nested: join the outer one
            yield self.conn
            return
        files.begin_immediate(self.conn)
        try:
            yield self.conn
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): then
            # there is nothing to undo, and the error that says why must stay the one
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    # ----------------------------------------------------------- decoding

    def _decode(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Build a record from stored values; a malformed value (a crafted file) raises
        one ProjectError line naming the record instead of a traceback."""
        try:
            return fn(*args)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError,
                RecursionError) as exc:
            msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ProjectError(f"{self.path}: {what}: {msg}") from None

    def _in_chunks(self, sql: str, ids: Iterable[int], *args: Any) -> Iterator[Any]:
        """Run ``sql`` (with ``{marks}`` where the id list goes) for chunks of ``ids``."""
        ids = [int(i) for i in ids]
        for part in chunks(ids):
            yield from self.conn.execute(sql.format(marks=marks(len(part))), [*args, *part])

    # ----------------------------------------------------------- meta / schema

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def schema(self) -> LabelSchema | None:
        if self._schema is None:
            text = self.meta("label_schema")
            self._schema = None if text is None else self._decode(
                "label schema", LabelSchema.from_json, text)
        return self._schema

    def set_schema(self, schema: LabelSchema) -> None:
        """Set the label schema; a project holds one, so a different one is refused."""
        current = self.schema
        if current is not None:
            if current != schema:
                raise ProjectError(
                    f"{self.path}: project holds {current.task} labels"
                    f"{' (' + current.name + ')' if current.name else ''}; "
                    f"cannot add {schema.task} labels{' (' + schema.name + ')' if schema.name else ''}"
                )
            return
        self.set_meta("label_schema", schema.to_json())
        self._schema = schema

    @property
    def cache_dir(self) -> Path:
        """Folder beside the project file that holds derived data (image cache, checkpoints)."""
        return self.path.with_name(self.path.name + "-cache")
