"""The durable event queue: SQLite in WAL mode, fsync'd on every commit, read in arrival order."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncdsl.errors import StateError
from syncdsl.state.journal import open_durable

QUEUE_FILE = "stream-queue.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    received REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (input TEXT PRIMARY KEY, position INTEGER NOT NULL);
"""


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

    `append` returns only after the commit reached the disk (WAL + synchronous=FULL), so an
    acknowledged event survives kill -9 and power loss. One connection, guarded by a lock, serves
    the intake threads and the dispatcher.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = open_durable(path, _SCHEMA)
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.DatabaseError as error:
            raise StateError(
                f"the stream queue {path} is unusable ({error}); stop every `syncdsl stream` on "
                "this configuration, then move the file away (its unsent events are lost)"
            ) from error
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def depth(self) -> int:
        """Events stored and not yet settled (accepted or rejected)."""
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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO events (source, received, payload) VALUES (?, ?, ?)",
                    ((source, stamp, payload) for source, payload in events),
                )
                if offset is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO offsets (input, position) VALUES (?, ?)",
                        (offset.input, offset.position),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = 0
                for start in range(0, len(chunk), 500):
                    part = chunk[start : start + 500]
                    marks = ",".join("?" * len(part))
                    cursor = self._db.execute(f"DELETE FROM events WHERE id IN ({marks})", part)
                    removed += cursor.rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
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
