"""The state store: what syncdsl last applied to HubSpot, per contact (SQLite, also apply's journal)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

from syncdsl.errors import LockHeldError, StateError
from syncdsl.safefile import private_directory
from syncdsl.state.database import Database, SQLiteDatabase
from syncdsl.state.journal import open_durable
from syncdsl.state.migrations import Migration, migrate
from syncdsl.state.postgres import chosen_store, describe, open_configuration

STATE_DIR = ".syncdsl"
STATE_FILE = "state.db"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    email {email} PRIMARY KEY,
    hubspot_id TEXT,
    properties TEXT NOT NULL,
    audiences TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0  -- sent in a batch whose acceptance was not journaled
);
CREATE INDEX IF NOT EXISTS contacts_by_hubspot_id ON contacts (hubspot_id);
CREATE TABLE IF NOT EXISTS consent (  -- what was last heard of a person's consent
    email {email} PRIMARY KEY,
    withheld TEXT  -- why it withholds them; NULL: it allows export
);
CREATE TABLE IF NOT EXISTS schema_objects (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    definition TEXT NOT NULL
);
"""


def _tables(db: Database) -> None:
    # Emails sort by code point on both (SQLite's BINARY; PostgreSQL's "C", not the locale's),
    # the order the desired set is read in.
    db.script(_TABLES.format(email='TEXT COLLATE "C"' if db.dialect == "postgresql" else "TEXT"))


def _dirty_column(db: Database) -> None:
    """A SQLite state written before contacts had their `dirty` column."""
    if db.dialect == "sqlite":
        columns = {row[1] for row in db.execute("PRAGMA table_info(contacts)")}
        if "dirty" not in columns:
            db.execute("ALTER TABLE contacts ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0")


MIGRATIONS = (Migration(1, _tables), Migration(2, _dirty_column))


@dataclass(frozen=True)
class ContactState:
    """What syncdsl last applied to one contact."""

    email: str
    hubspot_id: str | None
    properties: dict[str, str]
    audiences: dict[str, str]
    dirty: bool = False  # in a batch that was sent but not journaled: HubSpot may hold anything


@dataclass(frozen=True)
class StateSummary:
    """`syncdsl state` output."""

    path: str
    lineage: str
    serial: int
    base_url: str | None
    contacts: int
    members: dict[str, dict[str, int]]  # audience property -> status -> count
    last_apply: str | None
    schema: tuple[str, ...]


def state_dir(root: Path) -> Path:
    """The state directory beside a configuration, created 0700 if missing; UnsafeFileError when
    it is a symlink leading outside the configuration's directory."""
    return private_directory(root / STATE_DIR, root=root)


def _writable(path: Path) -> bool:
    """Whether SQLite may write `path` and its journal beside it."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StateStore:
    """The state: one row per contact syncdsl manages, plus lineage/serial and the schema it made.

    In a SQLite file beside the configuration (`.syncdsl/state.db`), or in the configuration's
    schema of a PostgreSQL store (`syncdsl.state.backend`): the same tables and SQL on both.
    """

    def __init__(self, db: Database, path: str) -> None:
        self._db = db
        self.path = path  # where the state is, for people (never a password)
        self._lost: threading.Event | None = None
        try:
            migrate(db, "state", MIGRATIONS)
            if self._meta("lineage") is None:
                with self.transaction():
                    self._insert_meta("lineage", str(uuid.uuid4()))
                    self._insert_meta("serial", "0")
                    self._insert_meta("plan_secret", secrets.token_hex(32))
        except BaseException:
            db.close()
            raise

    @classmethod
    def open(cls, root: Path, store: str | None = None, key: str | None = None) -> StateStore:
        """The state of the configuration at `root`: in `.syncdsl/state.db`, or in its schema of
        the PostgreSQL store SYNCDSL_STORE (else `store`) names (`chosen_store`)."""
        return cls.at(root, *chosen_store(root, store, key))

    @classmethod
    def at(cls, root: Path, url: str | None, key: str) -> StateStore:
        """The state in the store `url` under `key`, or in the SQLite file (url None)."""
        if url is None:
            return cls.sqlite(state_dir(root) / STATE_FILE)
        return cls(open_configuration(url, key), describe(url, key))

    @classmethod
    def sqlite(cls, path: Path) -> StateStore:
        try:
            db = SQLiteDatabase(open_durable(path, ""))
            return cls(db, str(path))
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and not _writable(path):
                raise StateError(  # the store may be fine: only its directory is read-only
                    f"the state store {path} cannot be opened for writing ({error}): "
                    f"{path.parent} is read-only (its file system or its permissions); make it "
                    "writable and run the command again"
                ) from None
            raise StateError(
                f"the state store {path} is unusable ({error}); move it away and "
                "run `syncdsl state --rebuild` to rebuild it from HubSpot"
            ) from error

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _insert_meta(self, key: str, value: str) -> None:
        """Set `key` unless it is set (two processes opening a new state at once keep one)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (key, value),
        )

    @property
    def lineage(self) -> str:
        return self._meta("lineage") or ""

    @property
    def serial(self) -> int:
        return int(self._meta("serial") or 0)

    def plan_key(self) -> bytes:
        """The key saved plans are signed with: this state's lineage and a secret only the state
        holds, so a person editing a saved plan cannot recompute its digest."""
        secret = self._meta("plan_secret")
        if secret is None:  # a state made before saved plans were signed
            self._insert_meta("plan_secret", secrets.token_hex(32))
            secret = self._meta("plan_secret") or ""
        message = f"syncdsl saved plan\0{self.lineage}".encode()
        return hmac.new(secret.encode(), message, hashlib.sha256).digest()

    @property
    def base_url(self) -> str | None:
        return self._meta("base_url")

    @property
    def last_apply(self) -> str | None:
        return self._meta("last_apply")

    @property
    def refresh_pending(self) -> bool:
        """An apply of a refreshed plan did not finish: the next plan must refresh too."""
        return self._meta("refresh_pending") == "1"

    def begin_apply(self, *, refreshed: bool) -> None:
        with self.transaction():
            if refreshed:
                self._set_meta("refresh_pending", "1")
            if self._meta("apply_tracked") is None:  # a resume keeps the first attempt's count
                self._set_meta("apply_tracked", str(self.count()))

    @property
    def interrupted_tracked(self) -> int | None:
        """How many contacts the state tracked when an apply that did not finish began (None:
        every apply finished): a resume is judged as that apply was."""
        value = self._meta("apply_tracked")
        return int(value) if value is not None and value.isdigit() else None

    def is_empty(self) -> bool:
        return self._db.execute("SELECT 1 FROM contacts LIMIT 1").fetchone() is None

    def bind(self, base_url: str) -> bool:
        """Tie the state to one HubSpot; return False (and forget contacts) if it tracked another.

        After a switch the state knows only what is applied from now on, so plans refresh until
        an apply completes.
        """
        previous = self.base_url
        if previous == base_url:
            return True
        with self.transaction():
            if previous is not None:
                self._db.execute("DELETE FROM contacts")
                self._db.execute("DELETE FROM schema_objects")
                self._set_meta("refresh_pending", "1")
            self._set_meta("base_url", base_url)
        return previous is None

    # -- contacts ---------------------------------------------------------------------------
    def get(self, email: str) -> ContactState | None:
        row = self._db.execute(
            "SELECT email, hubspot_id, properties, audiences, dirty FROM contacts WHERE email = ?",
            (email,),
        ).fetchone()
        return None if row is None else _contact(row)

    def get_many(self, emails: list[str]) -> dict[str, ContactState]:
        found: dict[str, ContactState] = {}
        for start in range(0, len(emails), 500):
            chunk = emails[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT email, hubspot_id, properties, audiences, dirty FROM contacts "
                f"WHERE email IN ({marks})",
                chunk,
            )
            for row in rows:
                found[row[0]] = _contact(row)
        return found

    def iter_contacts(self) -> Iterator[ContactState]:
        """Every tracked contact in ascending email order (the order DesiredSet uses)."""
        cursor = self._db.execute(
            "SELECT email, hubspot_id, properties, audiences, dirty FROM contacts ORDER BY email"
        )
        for row in cursor:
            yield _contact(row)

    def contact_lines(self, size: int = 50_000) -> Iterator[bytes]:
        """Every tracked contact as a JSON array `[email, hubspot_id, properties, audiences,
        dirty]` (the JSON documents as stored, as strings), a line each, in chunks of `size`
        lines: for loading in bulk (`syncdsl.plan.settle`), SQLite writing the text, so no
        Python object is made per row."""
        if self._db.dialect == "postgresql":
            yield from self._postgres_lines(size)
            return
        after = -1
        while True:
            last, text = self._db.execute(
                "SELECT max(rowid), CAST(group_concat(line, char(10)) AS BLOB) FROM"
                " (SELECT rowid, json_array(email, hubspot_id, properties, audiences, dirty)"
                " AS line FROM contacts WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                (after, size),
            ).fetchone()
            if last is None:
                return
            yield bytes(text)
            after = last

    def _postgres_lines(self, size: int) -> Iterator[bytes]:
        after: str | None = None
        while True:
            last, text = self._db.execute(
                "SELECT max(email), string_agg(line, chr(10)) FROM"
                " (SELECT email, json_build_array(email, hubspot_id, properties, audiences, dirty)"
                "::text AS line FROM contacts WHERE ?::text IS NULL OR email > ?"
                " ORDER BY email LIMIT ?) AS page",
                (after, after, size),
            ).fetchone()
            if last is None:
                return
            yield str(text).encode()
            after = last

    def consent_of(self, email: str) -> tuple[bool, str | None]:
        """(known, withheld): whether anything was heard of this person's consent, and why it
        withholds them (None: it allows export)."""
        row = self._db.execute("SELECT withheld FROM consent WHERE email = ?", (email,)).fetchone()
        return (False, None) if row is None else (True, row[0])

    def remember_consent(self, email: str, withheld: str | None) -> None:
        """Record what a record said of this person's consent (None: it allows export)."""
        with self.transaction():
            self._db.execute(_CONSENT, (email, withheld))

    def replace_withheld(self, people: Iterable[tuple[str, str]]) -> None:
        """After a batch apply: the people the export's consent withholds, and nothing else
        (whoever it exported, the state knows as a contact)."""
        with self.transaction():
            self._db.execute("DELETE FROM consent")
            self._db.executemany(_CONSENT, people)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])

    def members(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for email, text in self._db.execute("SELECT email, audiences FROM contacts"):
            audiences = _json_or_none(text)
            if not _strings(audiences):
                raise _damaged(email)
            for prop, status in audiences.items():
                per = counts.setdefault(prop, {})
                per[status] = per.get(status, 0) + 1
        return counts

    def record(self, contacts: Iterable[ContactState]) -> None:
        """Record contacts HubSpot accepted, merging into what was known; one transaction."""
        now = _now()
        with self.transaction():
            for contact in contacts:
                known = self.get(contact.email)
                properties = {**(known.properties if known else {}), **contact.properties}
                audiences = {**(known.audiences if known else {}), **contact.audiences}
                hubspot_id = contact.hubspot_id or (known.hubspot_id if known else None)
                self._db.execute(
                    _CONTACT,
                    (contact.email, hubspot_id, _dump(properties), _dump(audiences), now),
                )
                if hubspot_id:
                    # One HubSpot contact is one row: an email that resolved to it (a merge made
                    # it a secondary address) replaces the row of its former primary email.
                    self._db.execute(
                        "DELETE FROM contacts WHERE hubspot_id = ? AND email != ?",
                        (hubspot_id, contact.email),
                    )
            self._bump()

    def replace(self, contacts: Iterable[ContactState]) -> None:
        """Replace the whole contact table (state rebuild from HubSpot)."""
        now = _now()
        with self.transaction():
            self._db.execute("DELETE FROM contacts")
            self._db.executemany(
                _CONTACT,
                (
                    (c.email, c.hubspot_id, _dump(c.properties), _dump(c.audiences), now)
                    for c in contacts
                ),
            )
            self._bump()

    def fence(self, lost: threading.Event) -> None:
        """Refuse to journal new batches once `lost` is set (the writer's lease was lost, so
        another process may be writing the same portal)."""
        self._lost = lost

    def mark_dirty(self, emails: list[str]) -> None:
        """Before a batch is sent: if the process dies before its acceptance is journaled, the
        next plan must resend these contacts' values, whatever the state says they were."""
        if self._lost is not None and self._lost.is_set():
            raise LockHeldError(
                "this apply lost its lease on the portal (the store could not be reached in "
                "time), so another process may write to it now: it stopped before the next "
                "batch; what HubSpot accepted is journaled. Run it again"
            )
        with self.transaction():
            for start in range(0, len(emails), 500):
                chunk = emails[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"UPDATE contacts SET dirty = 1 WHERE email IN ({marks})", chunk)

    def forget(self, emails: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM contacts WHERE email = ?", ((e,) for e in emails))
            self._bump()

    # -- schema -----------------------------------------------------------------------------
    def record_schema(self, name: str, kind: str, definition: dict[str, object]) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO schema_objects VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET kind = excluded.kind, definition = excluded.definition",
                (name, kind, _dump(definition)),
            )
            self._bump()

    def schema_names(self) -> tuple[str, ...]:
        rows = self._db.execute("SELECT kind, name FROM schema_objects ORDER BY kind, name")
        return tuple(f"{kind}:{name}" for kind, name in rows)

    def mark_applied(self) -> None:
        with self.transaction():
            self._set_meta("last_apply", _now())
            self._set_meta("refresh_pending", "0")
            self._db.execute("DELETE FROM meta WHERE key = 'apply_tracked'")

    def summary(self) -> StateSummary:
        return StateSummary(
            path=str(self.path),
            lineage=self.lineage,
            serial=self.serial,
            base_url=self.base_url,
            contacts=self.count(),
            members=self.members(),
            last_apply=self.last_apply,
            schema=self.schema_names(),
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _bump(self) -> None:
        self._set_meta("serial", str(self.serial + 1))

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._db.transaction()


_CONSENT = (
    "INSERT INTO consent VALUES (?, ?) "
    "ON CONFLICT (email) DO UPDATE SET withheld = excluded.withheld"
)
_CONTACT = (
    "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (email) DO UPDATE SET "
    "hubspot_id = excluded.hubspot_id, properties = excluded.properties, "
    "audiences = excluded.audiences, applied_at = excluded.applied_at, dirty = 0"
)


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _contact(row: tuple[str, str | None, str, str, int]) -> ContactState:
    properties, audiences = _json_or_none(row[2]), _json_or_none(row[3])
    if not (_strings(properties) and _strings(audiences) and isinstance(row[0], str)):
        raise _damaged(row[0])
    return ContactState(row[0], row[1], properties, audiences, bool(row[4]))


def _damaged(email: object) -> StateError:
    return StateError(
        f"the state store holds a damaged row for {str(email)[:100]!r} (not valid JSON of "
        "strings); move .syncdsl/state.db away and run `syncdsl state --rebuild` to rebuild "
        "it from HubSpot"
    )


def _json_or_none(text: object) -> object:
    try:
        return json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _strings(value: object) -> TypeGuard[dict[str, str]]:
    """True for a dict of strings to strings, as the state stores values."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )
