"""Parquet exports, read with DuckDB: every row as the JSON object it would be in an NDJSON
export, so nested XDM (structs, `identityMap` as a map of lists, `segmentMembership`) maps with
the same field paths. Parquet compresses inside the file (snappy, gzip, zstd, lz4, brotli), so
every codec reads the same way."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa

from syncdsl.records.datafiles import MAGIC, DataFile, detect, open_raw, remote_filesystem
from syncdsl.records.sources import SourceRecord, parse_jsonl_line
from syncdsl.records.vectorised import BrokenData, LineChunk

_BATCH = 16_384
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
    for part in parquet_chunks(0, file):
        if isinstance(part, BrokenData):
            yield SourceRecord(file.display, part.line, "", None, part.reason)
            return
        data, offsets = part.data, part.offsets.tolist()
        for number, (start, end) in enumerate(itertools.pairwise(offsets), part.first):
            # As a jsonl line: a DOUBLE's NaN reads as Python reads it, a HUGEINT exactly.
            record = parse_jsonl_line(file.display, number, data[start:end])
            if record is not None:
                yield record


def parquet_chunks(index: int, file: DataFile) -> Iterator[LineChunk | BrokenData]:
    """The rows of a Parquet file (the `index`-th of its source) as chunks of JSON lines, one
    object per row, for the SQL mapping as for an NDJSON file; a file that is not Parquet, or
    that DuckDB stops reading, ends in a `BrokenData` naming why."""
    with open_raw(file) as handle:
        head = handle.read(len(MAGIC["parquet"]))
    if not head.startswith(MAGIC["parquet"]):
        found = detect(head)
        what = f"{found} data" if found else "not Parquet"
        yield BrokenData(
            file.display,
            1,
            f"not a Parquet file ({what}: a Parquet file starts with `PAR1`); declare it as "
            "`jsonl` or `csv`, or export it again",
        )
        return
    connection = _connection()
    row = 0
    try:
        if file.remote:
            _register(connection, file.target)
        reader = connection.sql(
            "SELECT to_json(p)::VARCHAR FROM read_parquet($1) p", params=[file.target]
        ).to_arrow_reader(_BATCH)
        for batch in reader:
            texts = batch.column(0).cast(pa.large_binary())
            _, offsets_buffer, data_buffer = texts.buffers()
            offsets = np.frombuffer(
                offsets_buffer, np.int64, count=len(texts) + 1, offset=texts.offset * 8
            )
            start, end = int(offsets[0]), int(offsets[-1])
            data = data_buffer.to_pybytes()[start:end] if data_buffer is not None else b""
            yield LineChunk(index, file.display, row + 1, data, offsets - start)
            row += len(texts)
    except (duckdb.Error, pa.ArrowException, OSError) as error:
        # A file DuckDB cannot open raises its own error; one it stops reading part-way (a
        # corrupt page) reaches the arrow reader, which raises OSError with DuckDB's text.
        detail = str(error).splitlines()[0]
        for prefix in ("Invalid Input Error: ", "Invalid Error: "):
            detail = detail.removeprefix(prefix)
        yield BrokenData(
            file.display,
            row + 1,
            f"unreadable Parquet ({detail}); the rows after this point cannot be read: is the "
            "file complete? export or copy it again",
        )
