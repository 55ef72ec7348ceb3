"""The PostgreSQL backend: where a configuration's state and stream queue live when the store is
`postgresql://…`, and the leases that let one process at a time write to a portal.

Every configuration has its own PostgreSQL schema (named after its key), holding the same tables
as its SQLite files; the leases are in the shared `syncdsl` schema.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from syncdsl.errors import LockHeldError, StateError
from syncdsl.state.database import PostgresDatabase
from syncdsl.state.migrations import MIGRATION_LOCK, Migration, migrate, script

STORE_ENV = "SYNCDSL_STORE"
SQLITE = "sqlite"  # SYNCDSL_STORE or `store =`: the SQLite files beside the configuration
SHARED_SCHEMA = "syncdsl"
#: Seconds a lease lasts without a heartbeat (SYNCDSL_LEASE_SECONDS overrides it).
LEASE_SECONDS = 15.0

_LEASES = Migration(
    1,
    script(
        """
        CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY,       -- portal:<fingerprint> or configuration:<key>
            holder TEXT NOT NULL,        -- the holding process's random id
            note TEXT NOT NULL,          -- who holds it, for people: host, pid, command
            acquired TIMESTAMPTZ NOT NULL,
            expires TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS configurations (
            key TEXT PRIMARY KEY,
            schema_name TEXT NOT NULL UNIQUE,
            created TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    ),
)


def redact(url: str) -> str:
    """The store URL as it may be shown: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres(url: str | None) -> bool:
    return url is not None and url.startswith(("postgresql://", "postgres://"))


def chosen_store(
    root: Path, store: str | None = None, key: str | None = None
) -> tuple[str | None, str]:
    """(URL, configuration key) of the configuration at `root`: SYNCDSL_STORE, else the spec's
    `store`; (None, "") for the SQLite files beside it. The key is `key`, else the
    configuration directory's name."""
    chosen = os.environ.get(STORE_ENV, "").strip() or store
    if chosen is None or chosen == SQLITE:
        return None, ""
    if not is_postgres(chosen):
        raise StateError(
            f"{STORE_ENV} must be a postgresql:// URL (or `{SQLITE}` for the files beside "
            f"the configuration); found {redact(chosen)!r}"
        )
    return chosen, key or root.resolve().name


def describe(url: str, key: str) -> str:
    """A configuration's place in a shared store, for people (never the password)."""
    return f"{redact(url)} (configuration {key})"


def connect(url: str) -> PostgresDatabase:
    """A connection in autocommit mode; StateError naming the store (never its password)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise StateError(
            "the PostgreSQL store needs psycopg: pip install 'psycopg[binary]'"
        ) from None
    try:
        connection: psycopg.Connection[Any] = psycopg.connect(
            url, autocommit=True, connect_timeout=10, application_name="syncdsl"
        )
    except psycopg.Error as error:
        raise StateError(
            f"cannot connect to the PostgreSQL store {redact(url)}: {_first_line(error)}; check "
            "the address in SYNCDSL_STORE (or `store =`) and the password in PGPASSWORD"
        ) from None
    db = PostgresDatabase(connection)
    try:
        with db.transaction():  # processes starting together: one creates, the others wait
            db.execute(MIGRATION_LOCK)
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {SHARED_SCHEMA}")
        db.execute(f"SET search_path TO {SHARED_SCHEMA}")
        migrate(db, "leases", (_LEASES,))
    except BaseException:
        db.close()
        raise
    return db


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def configuration_schema(db: PostgresDatabase, key: str) -> str:
    """The schema holding the tables of the configuration `key`, created on first use."""
    slug = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")[:40] or "configuration"
    name = f"c_{slug}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    with db.transaction():
        db.execute(MIGRATION_LOCK)
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        db.execute(
            f"INSERT INTO {SHARED_SCHEMA}.configurations (key, schema_name) VALUES (?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            (key, name),
        )
    return name


def open_configuration(url: str, key: str) -> PostgresDatabase:
    """A connection whose tables are the configuration `key`'s."""
    db = connect(url)
    try:
        schema = configuration_schema(db, key)
        db.execute(f'SET search_path TO "{schema}", {SHARED_SCHEMA}')
    except BaseException:
        db.close()
        raise
    return db


def portal_fingerprint(base_url: str, token_digest: str) -> str:
    """Names one HubSpot portal in lease rows: its API address and its token's digest."""
    return f"{base_url} #{token_digest[:16]}"


def lease_seconds() -> float:
    value = os.environ.get("SYNCDSL_LEASE_SECONDS", "").strip()
    try:
        return max(float(value), 1.0) if value else LEASE_SECONDS
    except ValueError:
        return LEASE_SECONDS


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease: a random id per process (and lease), and a note for people."""

    id: str
    note: str

    @classmethod
    def here(cls, command: str) -> LeaseHolder:
        note = f"pid {os.getpid()} on {socket.gethostname()}: syncdsl {command}"
        return cls(uuid.uuid4().hex, note)


class Leases:
    """Leases on named resources (a portal, a configuration), held together, renewed by a
    heartbeat thread until released.

    A lease row holds an expiry; a holder renews it every third of the lease time. A holder that
    dies stops renewing, and once the expiry passes another process takes the row. A holder that
    cannot renew in time (the database unreachable) counts itself as having lost the lease: `lost`
    is set, and the work it guards must stop, since another process may take over.
    """

    def __init__(
        self, url: str, names: Sequence[str], holder: LeaseHolder, seconds: float | None = None
    ) -> None:
        self.url = url
        self.names = tuple(sorted(set(names)))
        self.holder = holder
        self.seconds = lease_seconds() if seconds is None else seconds
        self.lost = threading.Event()
        self._db: PostgresDatabase | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = 0.0

    # -- taking and giving back ------------------------------------------------------------
    def try_acquire(self) -> bool:
        """Take every lease, or none (False when another live holder has one)."""
        if self._db is None:
            self._db = connect(self.url)
        taken: list[str] = []
        for name in self.names:
            if not self._take(name):
                self._give_back(taken)
                return False
            taken.append(name)
        self._renewed = time.monotonic()
        self.lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return True

    def acquire(self, what: str) -> Leases:
        """Take the leases now, or raise LockHeldError naming the holder."""
        if not self.try_acquire():
            raise LockHeldError(
                f"another syncdsl process holds {what} ({self.holders()}); wait for it to "
                f"finish, or stop it (a stopped holder's lease expires within {self.seconds:g} s)"
            )
        return self

    def _take(self, name: str) -> bool:
        assert self._db is not None
        row = self._db.execute(
            "INSERT INTO leases AS l (name, holder, note, acquired, expires) "
            "VALUES (?, ?, ?, now(), now() + make_interval(secs => ?)) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, note = excluded.note, "
            "acquired = excluded.acquired, expires = excluded.expires "
            "WHERE l.expires < now() OR l.holder = excluded.holder RETURNING name",
            (name, self.holder.id, self.holder.note, self.seconds),
        ).fetchone()
        return row is not None

    def holders(self) -> str:
        """Who holds these leases now, as they wrote it."""
        marks = ",".join("?" * len(self.names))
        rows = self._rows(
            f"SELECT note FROM leases WHERE name IN ({marks}) AND expires >= now() AND holder != ?",
            (*self.names, self.holder.id),
        )
        return "; ".join(sorted({str(row[0]) for row in rows})) or "another process"

    def rivals(self) -> list[str]:
        """The names the current holders of these leases hold that this process does not ask
        for (say, another configuration on the same portal)."""
        marks = ",".join("?" * len(self.names))
        rows = self._rows(
            "SELECT name FROM leases WHERE expires >= now() AND holder IN (SELECT holder "
            f"FROM leases WHERE name IN ({marks}) AND holder != ?) AND name NOT IN ({marks})",
            (*self.names, self.holder.id, *self.names),
        )
        return sorted(str(row[0]) for row in rows)

    def _rows(self, sql: str, params: Sequence[object]) -> list[Any]:
        """A query on this holder's connection (one opened for it when it holds none)."""
        db = self._db or connect(self.url)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            if db is not self._db:
                db.close()

    def release(self) -> None:
        """Stop the heartbeat and delete the rows (another process may take them at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds)
            self._thread = None
        if self._db is None:
            return
        try:
            self._give_back(self.names)
        except Exception:  # noqa: BLE001 - unreachable: the rows expire by themselves
            pass
        finally:
            self._db.close()
            self._db = None

    def _give_back(self, names: Sequence[str]) -> None:
        assert self._db is not None
        if names:
            marks = ",".join("?" * len(names))
            self._db.execute(
                f"DELETE FROM leases WHERE name IN ({marks}) AND holder = ?",
                (*names, self.holder.id),
            )

    @property
    def held(self) -> bool:
        return self._thread is not None and not self.lost.is_set()

    # -- the heartbeat -----------------------------------------------------------------------
    def _beat(self) -> None:
        """Renew every third of the lease time; give up (`lost`) once two thirds passed
        without a renewal, before anyone else could take the lease."""
        connection: PostgresDatabase | None = None
        while not self._stop.wait(self.seconds / 3):
            try:
                if connection is None:
                    connection = connect(self.url)
                marks = ",".join("?" * len(self.names))
                cursor = connection.execute(
                    "UPDATE leases SET expires = now() + make_interval(secs => ?) "
                    f"WHERE name IN ({marks}) AND holder = ?",
                    (self.seconds, *self.names, self.holder.id),
                )
                if cursor.rowcount < len(self.names):
                    self.lost.set()  # taken over: this holder had stalled past the expiry
                    break
                self._renewed = time.monotonic()
            except Exception:  # noqa: BLE001 - retried until the deadline below
                if connection is not None:
                    connection.close()
                    connection = None
            if time.monotonic() - self._renewed > self.seconds * 2 / 3:
                self.lost.set()
                break
        if connection is not None:
            connection.close()
