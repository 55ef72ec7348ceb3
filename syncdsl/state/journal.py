"""The durable SQLite files (state store, stream queue): one way to open them (their tables are\nmade by `syncdsl.state.migrations`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncdsl.safefile import prepare_sqlite


def open_durable(path: Path, schema: str = "") -> sqlite3.Connection:
    """Open (or create) a SQLite file whose commits reach the disk before they return.

    WAL with synchronous=FULL: a committed transaction survives kill -9 and power loss, readers
    never block the writer. Autocommit mode (transactions are explicit); usable from several
    threads, which the callers serialise. Raises sqlite3.DatabaseError for an unusable file, and
    UnsafeFileError when the file (or its -wal/-shm) is a symlink. The files are 0600: they hold
    contacts' data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prepare_sqlite(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if schema:
            db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db
