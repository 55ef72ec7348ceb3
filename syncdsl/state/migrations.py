"""Schema migrations: each component's tables (state, stream queue, leases) are brought up to its
latest version, recorded in a `schema_version` table beside them, on both backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from syncdsl.errors import StateError
from syncdsl.state.database import Database

_VERSIONS = "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"

#: PostgreSQL: held while schemas and tables are created, so replicas starting together wait.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('syncdsl migrations'))"


@dataclass(frozen=True)
class Migration:
    """One step of a component's schema: `run` takes the tables from `version - 1` to `version`.

    Steps are written so that running one again does no harm (`IF NOT EXISTS`): a SQLite file
    written before versions were recorded starts from version 0 with its tables already there."""

    version: int
    run: Callable[[Database], None]


def script(sql: str) -> Callable[[Database], None]:
    """A step that runs `sql` (several statements)."""
    return lambda db: db.script(sql)


def migrate(db: Database, component: str, steps: Sequence[Migration]) -> int:
    """Run the steps of `component` its tables do not have yet; return its version.

    On PostgreSQL the steps run in one transaction under an advisory lock, so replicas starting
    together migrate once; SQLite files have one writer (the configuration's lock)."""
    latest = steps[-1].version
    if db.dialect == "postgresql":
        with db.transaction():
            db.execute(MIGRATION_LOCK)
            db.script(_VERSIONS)
            return _run(db, component, steps, latest)
    db.script(_VERSIONS)
    return _run(db, component, steps, latest)


def _run(db: Database, component: str, steps: Sequence[Migration], latest: int) -> int:
    row = db.execute(
        "SELECT version FROM schema_version WHERE component = ?", (component,)
    ).fetchone()
    current = 0 if row is None else int(row[0])
    if current > latest:
        raise StateError(
            f"the {component} tables are at schema version {current}, newer than this syncdsl "
            f"knows ({latest}): a newer syncdsl migrated them; upgrade syncdsl to use them"
        )
    for step in steps:
        if step.version > current:
            step.run(db)
            db.execute(
                "INSERT INTO schema_version (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, step.version),
            )
    return latest
