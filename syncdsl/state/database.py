"""One way to speak to the two storage backends: SQLite files and a PostgreSQL database.

The state store and the stream queue write their SQL once, with `?` placeholders and the upsert
form both engines take (`INSERT ... ON CONFLICT (key) DO UPDATE SET ...`); `Database` runs it on
either. Only what has no common form (a table's schema, the bulk read of the state) asks for
`dialect`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import psycopg

Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """What both drivers' cursors give."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database:
    """A connection to one backend: `execute`, `executemany` and `transaction` on either."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        raise NotImplementedError

    def script(self, sql: str) -> None:
        """Run several statements (a schema), outside any transaction on SQLite."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction, which takes the write lock at once (SQLite: BEGIN IMMEDIATE), so two
        writers queue instead of one failing half way."""
        self.execute(self._begin)
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    _begin = "BEGIN"

    def close(self) -> None:
        raise NotImplementedError


class SQLiteDatabase(Database):
    """A SQLite file, in autocommit mode (transactions are explicit)."""

    dialect: Dialect = "sqlite"
    _begin = "BEGIN IMMEDIATE"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.connection.executemany(sql, rows)

    def script(self, sql: str) -> None:
        self.connection.executescript(sql)

    def close(self) -> None:
        self.connection.close()


class PostgresDatabase(Database):
    """A PostgreSQL connection (psycopg 3), in autocommit mode (transactions are explicit).

    `?` placeholders become psycopg's `%s` (and a literal `%` is doubled), so the callers' SQL is
    the same text for both backends."""

    dialect: Dialect = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.connection.execute(_placeholders(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def script(self, sql: str) -> None:
        self.connection.execute(sql.encode())  # no parameters: several statements may run

    def close(self) -> None:
        self.connection.close()


def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")
