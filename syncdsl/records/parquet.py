"""Parquet exports, read with DuckDB: every row as the JSON object it would be in an NDJSON
export, so nested XDM (structs, `identityMap` as a map of lists, `segmentMembership`) maps with
the same field paths. Parquet compresses inside the file (snappy, gzip, zstd, lz4, brotli), so
every codec reads the same way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import duckdb
import orjson

from syncdsl.records.datafiles import MAGIC, DataFile, detect, open_raw, remote_filesystem
from syncdsl.records.sources import SourceRecord

_BATCH = 2_048
_LOCAL = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    connection: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "connection", None)
    if connection is None:
        # One thread keeps rows in file order and memory small; the rest of the plan is Python.
        connection = duckdb.connect(config={"threads": 1, "preserve_insertion_order": True})
        connection.execute("SET TimeZone = 'UTC'")  # timestamps with a zone read in UTC
        _LOCAL.connection = connection
        _LOCAL.filesystems = set()
    return connection


def _register(connection: duckdb.DuckDBPyConnection, url: str) -> None:
    protocol = url.split("://", 1)[0]
    if protocol in _LOCAL.filesystems:
        return
    fs, _ = remote_filesystem(url)
    connection.register_filesystem(fs)
    _LOCAL.filesystems.add(protocol)


def read_parquet(file: DataFile) -> Iterator[SourceRecord]:
    """Yield one record per row of a Parquet file, numbered from 1 (`file:row`). A file DuckDB
    cannot read, or stops reading, ends in one rejected record naming why."""
    with open_raw(file) as handle:
        head = handle.read(len(MAGIC["parquet"]))
    if not head.startswith(MAGIC["parquet"]):
        found = detect(head)
        what = f"{found} data" if found else "not Parquet"
        yield SourceRecord(
            file.display,
            1,
            "",
            None,
            f"not a Parquet file ({what}: a Parquet file starts with `PAR1`); declare it as "
            "`jsonl` or `csv`, or export it again",
        )
        return
    connection = _connection()
    row = 0
    try:
        if file.remote:
            _register(connection, file.target)
        cursor = connection.execute(
            "SELECT to_json(p)::VARCHAR FROM read_parquet(?) p", [file.target]
        )
        loads = orjson.loads
        while batch := cursor.fetchmany(_BATCH):
            for (text,) in batch:
                row += 1
                fields: Any = loads(text)
                yield SourceRecord(file.display, row, text, fields, None)
    except duckdb.Error as error:
        detail = str(error).splitlines()[0].removeprefix("Invalid Input Error: ")
        yield SourceRecord(
            file.display,
            row + 1,
            "",
            None,
            f"unreadable Parquet ({detail}); the rows after this point cannot be read: is the "
            "file complete? export or copy it again",
        )
