"""Streaming readers for a source's files (jsonl and parquet exports, csv uploads), one record at a
time, every file of the source in turn."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import orjson

from syncdsl.errors import SourceError
from syncdsl.lang import ir
from syncdsl.records.datafiles import DataError, DataFile, open_data, source_files

_BOM = b"\xef\xbb\xbf"
#: What JSON calls whitespace (RFC 8259): a line of anything else, say U+001C, is a broken record.
_JSON_SPACE = " \t\r\n"
# In JSON text: an escaped backslash (skipped), a surrogate pair (fine), or a lone surrogate.
_ESCAPES = re.compile(
    r"\\\\"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
# A bare integer beyond 64 bits, which orjson reads as a float and the standard library exactly
# (a run of digits inside a string can match too: that line just takes the slow path).
_BIG_INT = re.compile(rb"[:\[,]\s*-?[0-9]{20}")
# One csv field may legitimately hold a 65,536-character HubSpot string, or more (then rejected).
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


class SourceRecord(NamedTuple):
    """One input record: its position, its raw text, and either its fields or why it is unreadable.

    A NamedTuple rather than a dataclass: one is made per input line, on the hot path.
    """

    file: str  # as written in the spec, for people: "data/profiles.jsonl"
    line: int  # 1-based line where the record starts (Parquet: the row)
    raw: str  # the record's text (undecodable bytes replaced), for the rejects file
    fields: dict[str, object] | None  # None when the record could not be read
    error: str | None  # why it could not be read


@dataclass
class ReadReport:
    """What reading a source found, for the plan: its files, their compression, the csv
    delimiters detected."""

    files: int = 0
    compression: set[str] = field(default_factory=set)
    delimiters: set[str] = field(default_factory=set)  # detected from header lines

    def summary(self, source: ir.Source) -> str:
        """`3 files, gzip; delimiter `;` detected from the header line` ("" for one plain file)."""
        parts = [f"{self.files:,} files"] if self.files != 1 else []
        if self.compression:
            parts.append("/".join(sorted(self.compression)))
        text = ", ".join(parts)
        if self.delimiters:
            shown = " and ".join(delimiter_name(d) for d in sorted(self.delimiters))
            text += ("; " if text else "") + f"delimiter {shown} detected from the header line"
        elif source.delimiter is not None and source.delimiter != ",":
            text += ("; " if text else "") + f"delimiter {delimiter_name(source.delimiter)}"
        return text


def delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", " ": "space"}.get(delimiter, f"`{delimiter}`")


def read_source(source: ir.Source, report: ReadReport | None = None) -> Iterator[SourceRecord]:
    """Stream the records of `source`'s files: the files in order, each in file order.

    Raises:
        SourceError: a file cannot be listed, opened or read at all (single bad records, and a
            file whose compressed data breaks off, are yielded with `error` set instead).
    """
    report = report if report is not None else ReadReport()
    files = source_files(source)
    report.files = len(files)
    if source.format == "parquet":
        return _parquet_source(files)
    return _text_source(source, files, report)


def _text_source(
    source: ir.Source, files: tuple[DataFile, ...], report: ReadReport
) -> Iterator[SourceRecord]:
    for file in files:
        handle, codec = open_data(file, source.format)
        if codec is not None:
            report.compression.add(codec)
        if source.format == "jsonl":
            yield from _jsonl_records(handle, file.display)
        else:
            yield from _csv_records(handle, file.display, source, report)


def _parquet_source(files: tuple[DataFile, ...]) -> Iterator[SourceRecord]:
    from syncdsl.records.parquet import read_parquet

    for file in files:
        yield from read_parquet(file)


def read_jsonl(path: Path, *, display: str | None = None) -> Iterator[SourceRecord]:
    """Yield one record per non-blank line of a JSON Lines file (compressed or not); bad lines
    carry their error."""
    name = display or str(path)
    handle, _ = open_data(DataFile(name, str(path)), "jsonl")
    return _jsonl_records(handle, name)


def _jsonl_records(handle: BinaryIO, name: str) -> Iterator[SourceRecord]:
    number = 0
    with handle:
        try:
            for number, data in enumerate(handle, start=1):
                if number == 1 and data.startswith(_BOM):
                    data = data[3:]
                record = parse_jsonl_line(name, number, data)
                if record is not None:
                    yield record
        except DataError as error:
            yield SourceRecord(name, number + 1, "", None, str(error))
        except OSError as error:
            raise SourceError(f"{name}: reading it failed: {error}") from None


def parse_jsonl_line(name: str, number: int, data: bytes) -> SourceRecord | None:
    """One line of a JSON Lines file (line 1 without its BOM) as a record; None when blank."""
    try:
        fields = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(fields) is dict and _BIG_INT.search(data) is None:
            return SourceRecord(name, number, data.decode("utf-8").rstrip("\r\n"), fields, None)
    return _jsonl_slow(name, number, data)


def _jsonl_slow(name: str, number: int, data: bytes) -> SourceRecord | None:
    """One line through the standard library: the reason it is broken, or the exact value of an
    integer orjson reads as a float. None for a blank line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text, error = _decode(data)
        return SourceRecord(name, number, text.rstrip("\r\n"), None, error)
    if not text.strip(_JSON_SPACE):
        return None  # blank lines separate nothing and hold no record
    raw = text.rstrip("\r\n")
    try:
        fields = json.loads(text)
    except ValueError as error:
        return SourceRecord(name, number, raw, None, _json_reason(error, raw))
    except RecursionError:
        reason = "broken JSON: nested too deeply (arrays or objects inside each other)"
        return SourceRecord(name, number, raw, None, reason)
    if "\\u" in text and (surrogate := _lone_surrogate(text)) is not None:
        return SourceRecord(name, number, raw, None, surrogate)
    if type(fields) is not dict:
        reason = f"expected a JSON object, got {_json_kind(fields)}"
        return SourceRecord(name, number, raw, None, reason)
    return SourceRecord(name, number, raw, fields, None)


def _decode(data: bytes, encoding: str = "utf-8") -> tuple[str, str | None]:
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError as error:
        reason = f"undecodable bytes (not {_label(encoding)}) at byte {error.start + 1} of the line"
        return data.decode(encoding, errors="replace"), reason


def _label(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name in ("utf-8", "utf-8-sig") else name


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


def read_csv(
    path: Path, *, display: str | None = None, delimiter: str | None = None, encoding: str = "utf-8"
) -> Iterator[SourceRecord]:
    """Yield one record per data row of a CSV file with a header row (RFC 4180; compressed or not;
    UTF-8 by default, BOM ok; the delimiter detected from the header line unless given).

    A row spanning several lines (quoted newlines) reports the line it starts on.
    """
    name = display or str(path)
    handle, _ = open_data(DataFile(name, str(path)), "csv")
    return _csv_rows(handle, name, delimiter, encoding, ReadReport())


def _csv_records(
    handle: BinaryIO, name: str, source: ir.Source, report: ReadReport
) -> Iterator[SourceRecord]:
    return _csv_rows(handle, name, source.delimiter, source.encoding, report)


#: The delimiters detected from a header line, the first winning a tie.
DELIMITERS = (",", ";", "\t", "|")


def detect_delimiter(line: str) -> str:
    """The delimiter a header line uses: the most frequent of `DELIMITERS` outside quotes
    (a comma when it holds none: a one-column file)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for character in line:
        if character == '"':
            quoted = not quoted
        elif not quoted and character in counts:
            counts[character] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _ascii_compatible(encoding: str) -> bool:
    """Lines can be split on the byte 0x0A before decoding (not so for UTF-16 and UTF-32)."""
    sample = '\n\r",;\t|abc'
    try:
        return (
            sample.encode(encoding) == sample.encode("ascii")
            and "16" not in encoding
            and ("32" not in encoding)
        )
    except (UnicodeError, LookupError):
        return False


class _LineFeed:
    """Decodes a binary file line by line for `csv.reader`, remembering undecodable lines."""

    def __init__(self, handle: BinaryIO, encoding: str = "utf-8") -> None:
        self._encoding = encoding
        self._readline = (
            handle.readline
            if _ascii_compatible(encoding)
            else _transcoded(handle, encoding).readline
        )
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

    def sniff(self) -> str:
        """The delimiter of the first non-blank line (the header), which is left to be read."""
        taken: list[str] = []
        for text in self:
            taken.append(text)
            if text.strip():
                break
        self._again.extend(reversed(taken))
        self.line -= len(taken)
        self.texts = []
        return detect_delimiter(taken[-1]) if taken else ","

    def __next__(self) -> str:
        if self._again:
            self.line += 1
            text = self._again.pop()
            self.texts.append(text)
            return text
        data = self._readline()
        if not data:
            raise StopIteration
        self.line += 1
        if isinstance(data, str):
            text = data
        else:
            if self.line == 1 and data.startswith(_BOM):
                data = data[3:]
            try:
                text = data.decode(self._encoding)
            except UnicodeDecodeError:
                text, reason = _decode(data, self._encoding)
                self.bad[self.line] = reason or "undecodable bytes"
        self.texts.append(text)
        return text


class _Transcoded:
    """Lines of text from an encoding whose line breaks are not the byte 0x0A (UTF-16, UTF-32)."""

    def __init__(self, handle: BinaryIO, encoding: str) -> None:
        self._text = io.TextIOWrapper(handle, encoding=encoding, errors="strict", newline="")

    def readline(self) -> str:
        try:
            return self._text.readline()
        except UnicodeDecodeError as error:
            raise OSError(f"the text is not {error.encoding}: {error.reason}") from None


def _transcoded(handle: BinaryIO, encoding: str) -> _Transcoded:
    return _Transcoded(handle, encoding)


def _csv_rows(
    handle: BinaryIO, name: str, delimiter: str | None, encoding: str, report: ReadReport
) -> Iterator[SourceRecord]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with handle:
        feed = _LineFeed(handle, encoding)
        header: list[str] | None = None
        try:
            if delimiter is None:
                delimiter = feed.sniff()
                if delimiter != ",":
                    report.delimiters.add(delimiter)
            reader = csv.reader(feed, strict=True, delimiter=delimiter)
            while True:
                start = feed.line + 1
                feed.texts = []
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except DataError:
                    if header is None or not feed.texts:
                        raise
                    # A quoted field was open when the data broke off: like a quote that never
                    # closes, line `start` is rejected and the lines after it are read again.
                    yield _malformed(feed, name, start, csv.Error("unexpected end of data"))
                    continue
                except csv.Error as error:
                    if header is None:
                        raise SourceError(
                            f"{name}:{start}: unreadable header row: {error}"
                        ) from None
                    yield _malformed(feed, name, start, error)
                    continue
                texts = feed.texts
                raw = (texts[0] if len(texts) == 1 else "".join(texts)).rstrip("\r\n")
                bad = (
                    [feed.bad.pop(n) for n in range(start, feed.line + 1) if n in feed.bad]
                    if feed.bad
                    else None
                )
                if header is None:
                    if bad:
                        raise SourceError(
                            f"{name}:{start}: header row is not {_label(encoding)}: {bad[0]}"
                        )
                    header = _header(row, name, start)
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
        except DataError as error:
            yield SourceRecord(name, feed.line + 1, "", None, str(error))
        except OSError as error:
            raise SourceError(
                f"{name}: reading it failed near line {feed.line + 1}: {error}"
            ) from None


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


def csv_headers(source: ir.Source) -> list[tuple[str, list[str] | None]]:
    """Each file of a csv source with the column names of its header row (None: an empty file or
    an unreadable header, which reading the file reports)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    headers: list[tuple[str, list[str] | None]] = []
    for file in source_files(source):
        handle, _ = open_data(file, "csv")
        with handle:
            headers.append((file.display, _first_row(handle, source)))
    return headers


def _first_row(handle: BinaryIO, source: ir.Source) -> list[str] | None:
    feed = _LineFeed(handle, source.encoding)
    try:
        delimiter = source.delimiter or feed.sniff()
        for row in csv.reader(feed, strict=True, delimiter=delimiter):
            if row:
                return [column.strip() for column in row]
    except (csv.Error, DataError, OSError):
        return None
    return None


def csv_delimiter(source: ir.Source) -> str:
    """The delimiter of a csv source: as declared, or detected from its first file's header."""
    if source.delimiter is not None:
        return source.delimiter
    files = source_files(source)
    if not files:
        return ","
    handle, _ = open_data(files[0], "csv")
    with handle:
        try:
            return _LineFeed(handle, source.encoding).sniff()
        except (DataError, OSError):
            return ","


def csv_header(source: ir.Source) -> list[str] | None:
    """The header of a csv source's first file (None: empty or unreadable)."""
    headers = csv_headers(source)
    return headers[0][1] if headers else None
