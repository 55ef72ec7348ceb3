"""Streaming readers for source files (jsonl exports, csv uploads), one record at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from syncdsl import ir
from syncdsl.errors import SourceError

_BOM = b"\xef\xbb\xbf"
# One csv field may legitimately hold a 65,536-character HubSpot string, or more (then rejected).
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


class SourceRecord(NamedTuple):
    """One input record: its position, its raw text, and either its fields or why it is unreadable.

    A NamedTuple rather than a dataclass: one is made per input line, on the hot path.
    """

    file: str  # as written in the spec, for people: "data/profiles.jsonl"
    line: int  # 1-based line where the record starts
    raw: str  # the record's text (undecodable bytes replaced), for the rejects file
    fields: dict[str, object] | None  # None when the record could not be read
    error: str | None  # why it could not be read


def read_source(source: ir.Source) -> Iterator[SourceRecord]:
    """Stream the records of `source`'s file, in file order.

    Raises:
        SourceError: the file cannot be opened or read at all (single bad records are yielded
            with `error` set instead).
    """
    display = source.path
    if source.format == "jsonl":
        return read_jsonl(source.resolved_path, display=display)
    return read_csv(source.resolved_path, display=display)


def _open(path: Path, display: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SourceError(
            f"{display}: file not found ({path}); check the path in the spec "
            "(it is relative to the .sync file)"
        ) from None
    except IsADirectoryError:
        raise SourceError(f"{display}: is a directory ({path}), expected a file") from None
    except OSError as error:
        raise SourceError(f"{display}: cannot read {path}: {error.strerror or error}") from None


def _decode(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        reason = f"undecodable bytes (not UTF-8) at byte {error.start + 1} of the line"
        return data.decode("utf-8", errors="replace"), reason


def read_jsonl(path: Path, *, display: str | None = None) -> Iterator[SourceRecord]:
    """Yield one record per non-blank line of a JSON Lines file; bad lines carry their error."""
    name = display or str(path)
    handle = _open(path, name)
    return _jsonl_records(handle, name, path)


def _jsonl_records(handle: BinaryIO, name: str, path: Path) -> Iterator[SourceRecord]:
    loads = json.loads
    with handle:
        try:
            for number, data in enumerate(handle, start=1):
                if number == 1 and data.startswith(_BOM):
                    data = data[3:]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text, error = _decode(data)
                    yield SourceRecord(name, number, text.rstrip("\r\n"), None, error)
                    continue
                if not text.strip():
                    continue  # blank lines separate nothing and hold no record
                try:
                    fields = loads(text)
                except ValueError as error:
                    raw = text.rstrip("\r\n")
                    yield SourceRecord(name, number, raw, None, _json_reason(error, raw))
                    continue
                if type(fields) is not dict:
                    reason = f"expected a JSON object, got {_json_kind(fields)}"
                    yield SourceRecord(name, number, text.rstrip("\r\n"), None, reason)
                    continue
                yield SourceRecord(name, number, text.rstrip("\r\n"), fields, None)
        except OSError as error:
            raise SourceError(f"{name}: reading {path} failed: {error}") from None


def _json_reason(error: ValueError, raw: str) -> str:
    if not isinstance(error, json.JSONDecodeError):
        return f"broken JSON: {error}"
    # One record per line, so the offset is the column (colno would count the trailing newline).
    return f"broken JSON: {error.msg} at column {min(error.pos, len(raw)) + 1}"


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def read_csv(path: Path, *, display: str | None = None) -> Iterator[SourceRecord]:
    """Yield one record per data row of a CSV file with a header row (RFC 4180, UTF-8, BOM ok).

    A row spanning several lines (quoted newlines) reports the line it starts on.
    """
    name = display or str(path)
    handle = _open(path, name)
    return _csv_records(handle, name, path)


class _LineFeed:
    """Decodes a binary file line by line for `csv.reader`, remembering undecodable lines."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.line = 0
        self.bad: dict[int, str] = {}
        self.texts: list[str] = []  # physical lines of the row being read

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        data = self._handle.readline()
        if not data:
            raise StopIteration
        self.line += 1
        if self.line == 1 and data.startswith(_BOM):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, reason = _decode(data)
            self.bad[self.line] = reason or "undecodable bytes"
        self.texts.append(text)
        return text


def _csv_records(handle: BinaryIO, name: str, path: Path) -> Iterator[SourceRecord]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with handle:
        feed = _LineFeed(handle)
        reader = csv.reader(feed, strict=True)
        header: list[str] | None = None
        try:
            while True:
                start = feed.line + 1
                feed.texts = []
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    raw = "".join(feed.texts).rstrip("\r\n")
                    if header is None:
                        raise SourceError(
                            f"{name}:{start}: unreadable header row: {error}"
                        ) from None
                    yield SourceRecord(name, start, raw, None, f"malformed CSV: {error}")
                    continue
                raw = "".join(feed.texts).rstrip("\r\n")
                bad = [feed.bad.pop(n) for n in range(start, feed.line + 1) if n in feed.bad]
                if header is None:
                    if bad:
                        raise SourceError(f"{name}:{start}: header row is not UTF-8: {bad[0]}")
                    header = _header(row, name, start)
                    if header is None:
                        continue
                    continue
                if not row:
                    continue  # a blank line is not a row
                if bad:
                    yield SourceRecord(name, start, raw, None, bad[0])
                elif len(row) != len(header):
                    reason = f"expected {len(header)} columns, got {len(row)}"
                    yield SourceRecord(name, start, raw, None, reason)
                else:
                    yield SourceRecord(name, start, raw, dict(zip(header, row)), None)
        except OSError as error:
            raise SourceError(f"{name}: reading {path} failed: {error}") from None


def _header(row: list[str], name: str, line: int) -> list[str] | None:
    if not row:
        return None  # leading blank lines before the header
    columns = [column.strip() for column in row]
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise SourceError(
                f"{name}:{line}: the header names column {column!r} twice; rename one of them"
            )
        seen.add(column)
    return columns


def csv_header(source: ir.Source) -> list[str] | None:
    """The column names of a csv source's header row (None: empty file or unreadable header,
    which reading the file reports)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with _open(source.resolved_path, source.path) as handle:
        reader = csv.reader(_LineFeed(handle), strict=True)
        try:
            for row in reader:
                if row:
                    return [column.strip() for column in row]
        except csv.Error:
            return None
    return None
