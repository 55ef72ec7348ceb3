"""Streaming readers for source files (jsonl exports, csv uploads), one record at a time."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from syncdsl.errors import SourceError
from syncdsl.lang import ir

_BOM = b"\xef\xbb\xbf"
#: What JSON calls whitespace (RFC 8259): a line of anything else, say U+001C, is a broken record.
_JSON_SPACE = " \t\r\n"
# In JSON text: an escaped backslash (skipped), a surrogate pair (fine), or a lone surrogate.
_ESCAPES = re.compile(
    r"\\\\"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
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
                if not text.strip(_JSON_SPACE):
                    continue  # blank lines separate nothing and hold no record
                try:
                    fields = loads(text)
                except ValueError as error:
                    raw = text.rstrip("\r\n")
                    yield SourceRecord(name, number, raw, None, _json_reason(error, raw))
                    continue
                except RecursionError:
                    reason = "broken JSON: nested too deeply (arrays or objects inside each other)"
                    yield SourceRecord(name, number, text.rstrip("\r\n"), None, reason)
                    continue
                if "\\u" in text and (surrogate := _lone_surrogate(text)) is not None:
                    yield SourceRecord(name, number, text.rstrip("\r\n"), None, surrogate)
                    continue
                if type(fields) is not dict:
                    reason = f"expected a JSON object, got {_json_kind(fields)}"
                    yield SourceRecord(name, number, text.rstrip("\r\n"), None, reason)
                    continue
                yield SourceRecord(name, number, text.rstrip("\r\n"), fields, None)
        except OSError as error:
            raise SourceError(f"{name}: reading {path} failed: {error}") from None


def _lone_surrogate(text: str) -> str | None:
    """Why a JSON line is not valid Unicode: a \\uD800-\\uDFFF escape that is half a pair."""
    for match in _ESCAPES.finditer(text):
        if match.group(1):
            return (
                f"invalid JSON string: lone surrogate {match.group(1)} at column "
                f"{match.start(1) + 1} (half of a UTF-16 pair, not valid Unicode)"
            )
    return None


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
        self._again: list[str] = []  # lines to read again, last first

    def __iter__(self) -> _LineFeed:
        return self

    def reread(self, start: int) -> None:
        """Read the lines after line `start` of the current row again, as new rows."""
        self._again.extend(reversed(self.texts[1:]))
        self.line = start

    def __next__(self) -> str:
        if self._again:
            self.line += 1
            text = self._again.pop()
            self.texts.append(text)
            return text
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
                    if header is None:
                        raise SourceError(
                            f"{name}:{start}: unreadable header row: {error}"
                        ) from None
                    yield _malformed(feed, name, start, error)
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
                    if feed.line > start:
                        reason += (
                            f" (the row spans lines {start}-{feed.line}: a quoted field holds "
                            "line breaks; is a quote unbalanced?)"
                        )
                    yield SourceRecord(name, start, raw, None, reason)
                else:
                    yield SourceRecord(name, start, raw, dict(zip(header, row)), None)
        except OSError as error:
            raise SourceError(f"{name}: reading {path} failed: {error}") from None


def _malformed(feed: _LineFeed, name: str, start: int, error: csv.Error) -> SourceRecord:
    """The reject for an unparsable row; a quote left open at `start` gives back what it ate.

    A quote that never closes would swallow every later row into this one, and one that a later
    row's quote closes swallows the rows between: either way line `start` alone is rejected and
    the lines after it are read again as rows.
    """
    end = feed.line
    if end == start:
        raw = "".join(feed.texts).rstrip("\r\n")
        return SourceRecord(name, start, raw, None, f"malformed CSV: {error}")
    first = feed.texts[0].rstrip("\r\n")
    feed.bad.pop(start, None)
    swallowed = end - start
    if str(error) == "unexpected end of data":
        how = f"never closes: it ran to the end of the file ({swallowed} more lines)"
    else:
        how = f"was closed only on line {end} ({error}), {swallowed} lines later"
    reason = (
        f"malformed CSV: unterminated quote: the quoted field opened on line {start} {how}; "
        f"line {start} is rejected and the lines after it are read again as rows"
    )
    feed.reread(start)
    return SourceRecord(name, start, first, None, reason)


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
