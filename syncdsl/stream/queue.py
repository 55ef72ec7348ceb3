"""The durable event queue: SQLite in WAL mode, fsync'd on every commit, or a PostgreSQL table
shared by replicas; read in arrival order."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncdsl.errors import StateError
from syncdsl.state.database import Database, SQLiteDatabase
from syncdsl.state.journal import open_durable
from syncdsl.state.migrations import Migration, migrate

QUEUE_FILE = "stream-queue.db"

_TABLES = """
CREATE TABLE IF NOT EXISTS events (
    id {id},
    source TEXT NOT NULL,
    received {real} NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (input TEXT PRIMARY KEY, position BIGINT NOT NULL);
"""


def _tables(db: Database) -> None:
    if db.dialect == "postgresql":
        db.script(_TABLES.format(id="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION"))
    else:
        db.script(_TABLES.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL"))


MIGRATIONS = (Migration(1, _tables),)
#: How long a replica trusts its count of the shared queue (PostgreSQL) before counting again.
DEPTH_TTL = 0.25


@dataclass(frozen=True)
class QueuedEvent:
    """One stored event: its id (arrival order), source name, wall-clock receipt time, raw JSON."""

    id: int
    source: str
    received: float
    payload: str


@dataclass(frozen=True)
class InputOffset:
    """How far a followed input file has been read (bytes), stored with the events read from it."""

    input: str
    position: int


class EventQueue:
    """Events wait here from receipt until HubSpot accepted or rejected them.

    `append` returns only after the commit is durable (SQLite: WAL + synchronous=FULL;
    PostgreSQL: its commit), so an acknowledged event survives kill -9 and power loss. One
    connection, guarded by a lock, serves the intake threads and the dispatcher.

    On PostgreSQL several replicas append to one queue: each append holds a transaction-level
    advisory lock, so ids are committed in increasing order and the one dispatcher reading
    `read_after` its cursor never passes over an event committed late.
    """

    def __init__(self, path: Path, *, database: Database | None = None) -> None:
        """The queue in the SQLite file `path`, or in `database` (a shared store; `path` then
        only names it for people)."""
        self.path = path
        try:
            self._db = database or SQLiteDatabase(open_durable(path))
            migrate(self._db, "queue", MIGRATIONS)
        except sqlite3.DatabaseError as error:
            raise StateError(
                f"the stream queue {path} is unusable ({error}); stop every `syncdsl stream` on "
                "this configuration, then move the file away (its unsent events are lost)"
            ) from error
        self._shared = self._db.dialect == "postgresql"
        self._lock = threading.Lock()
        self._depth = self._count()
        self._counted = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._shared = False  # the depth stays as last counted

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    @property
    def depth(self) -> int:
        """Events stored and not yet settled (accepted or rejected), by every replica."""
        if self._shared and time.monotonic() - self._counted > DEPTH_TTL:
            with self._lock:
                self._depth = self._count()
                self._counted = time.monotonic()
        return self._depth

    def append(
        self,
        events: Sequence[tuple[str, str]],
        *,
        offset: InputOffset | None = None,
        received: float | None = None,
    ) -> int:
        """Store (source, payload) events, and an input offset, in one durable transaction."""
        stamp = time.time() if received is None else received
        with self._lock, self._db.transaction():
            if self._shared:
                # One configuration's appends in turn (its schema names it).
                self._db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('syncdsl queue ' || current_schema()))"
                )
            self._db.executemany(
                "INSERT INTO events (source, received, payload) VALUES (?, ?, ?)",
                [(source, stamp, payload) for source, payload in events],
            )
            if offset is not None:
                self._db.execute(
                    "INSERT INTO offsets (input, position) VALUES (?, ?) "
                    "ON CONFLICT (input) DO UPDATE SET position = excluded.position",
                    (offset.input, offset.position),
                )
        with self._lock:
            self._depth += len(events)
        return len(events)

    def read_after(self, last_id: int, limit: int) -> list[QueuedEvent]:
        """The next events in arrival order, after `last_id` (the dispatcher's cursor)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, received, payload FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit),
            ).fetchall()
        return [QueuedEvent(int(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]

    def delete(self, ids: Iterable[int]) -> int:
        """Forget settled events (HubSpot accepted or rejected them)."""
        chunk = list(ids)
        if not chunk:
            return 0
        with self._lock, self._db.transaction():
            removed = 0
            for start in range(0, len(chunk), 500):
                part = chunk[start : start + 500]
                marks = ",".join("?" * len(part))
                cursor = self._db.execute(f"DELETE FROM events WHERE id IN ({marks})", part)
                removed += cursor.rowcount
        with self._lock:
            self._depth -= removed
        return removed

    def offset(self, input_name: str) -> int:
        """Bytes of `input_name` already stored (0 for an input never read)."""
        with self._lock:
            row = self._db.execute(
                "SELECT position FROM offsets WHERE input = ?", (input_name,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def oldest_received(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(received) FROM events").fetchone()
        return None if row is None or row[0] is None else float(row[0])
