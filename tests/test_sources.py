"""Streaming readers: positions, raw text, every malformed record surfaced rather than dropped."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from syncdsl.errors import SourceError
from syncdsl.records.sources import SourceRecord, read_csv, read_jsonl


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def summary(records: list[SourceRecord]) -> list[tuple[int, object]]:
    return [(r.line, r.fields if r.error is None else r.error) for r in records]


def test_jsonl_yields_objects_with_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", b'\xef\xbb\xbf{"a": 1}\r\n\n   \n{"b": {"c": "\xc3\xa9"}}')
    records = list(read_jsonl(path, display="data/p.jsonl"))
    assert summary(records) == [(1, {"a": 1}), (4, {"b": {"c": "é"}})]
    assert [r.file for r in records] == ["data/p.jsonl", "data/p.jsonl"]
    assert [r.raw for r in records] == ['{"a": 1}', '{"b": {"c": "é"}}']


def test_jsonl_bad_lines_are_records_with_errors(tmp_path: Path) -> None:
    data = b'{"ok": 1}\n{"broken": \n[1, 2]\n"text"\nnull\n{"bad": "\xff"}\n{"ok": 2}\n'
    records = list(read_jsonl(write(tmp_path, "p.jsonl", data)))
    assert summary(records) == [
        (1, {"ok": 1}),
        (2, "broken JSON: Expecting value at column 12"),
        (3, "expected a JSON object, got an array"),
        (4, "expected a JSON object, got a string"),
        (5, "expected a JSON object, got null"),
        (6, "undecodable bytes (not UTF-8) at byte 10 of the line"),
        (7, {"ok": 2}),
    ]
    assert records[5].raw == '{"bad": "\ufffd"}'


def test_csv_rows_become_dicts_keyed_by_header(tmp_path: Path) -> None:
    data = (
        "\ufeffEmail,First Name,address.city\r\n"
        "a@example.com,Ann,Paris\r\n"
        '"b@example.com","Smith, ""Bob""","New\r\nYork"\r\n'
        "\r\n"
        "c@example.com,Cy,\r\n"
    ).encode()
    records = list(read_csv(write(tmp_path, "u.csv", data), display="u.csv"))
    assert summary(records) == [
        (2, {"Email": "a@example.com", "First Name": "Ann", "address.city": "Paris"}),
        (
            3,
            {"Email": "b@example.com", "First Name": 'Smith, "Bob"', "address.city": "New\r\nYork"},
        ),
        (6, {"Email": "c@example.com", "First Name": "Cy", "address.city": ""}),
    ]
    assert records[1].raw == '"b@example.com","Smith, ""Bob""","New\r\nYork"'


def test_csv_without_bom_and_with_lf_endings(tmp_path: Path) -> None:
    records = list(read_csv(write(tmp_path, "u.csv", b'Email\nx@example.com\n"y\n@z"\nw@e.com')))
    assert summary(records) == [
        (2, {"Email": "x@example.com"}),
        (3, {"Email": "y\n@z"}),
        (5, {"Email": "w@e.com"}),
    ]


def test_csv_bad_rows_are_records_with_errors(tmp_path: Path) -> None:
    data = b'a,b\n1,2\n1\n1,2,3\n"x\xff",2\n"unterminated,2\n3,4\n'
    records = list(read_csv(write(tmp_path, "u.csv", data)))
    assert summary(records)[:4] == [
        (2, {"a": "1", "b": "2"}),
        (3, "expected 2 columns, got 1"),
        (4, "expected 2 columns, got 3"),
        (5, "undecodable bytes (not UTF-8) at byte 3 of the line"),
    ]
    # An unterminated quote no longer swallows the rest of the file (issue 13): its line is
    # rejected, saying so, and the rows after it are read again.
    assert len(records) == 6
    assert records[4].line == 6
    assert records[4].error is not None and records[4].error.startswith("malformed CSV")
    assert "unterminated quote" in records[4].error
    assert records[4].raw == '"unterminated,2'
    assert summary(records)[5] == (7, {"a": "3", "b": "4"})


def test_csv_undecodable_bytes_inside_a_multiline_row_reject_that_row_only(tmp_path: Path) -> None:
    data = b'a,b\n"x\n\xfe",2\nok,3\n'
    records = list(read_csv(write(tmp_path, "u.csv", data)))
    assert summary(records) == [
        (2, "undecodable bytes (not UTF-8) at byte 1 of the line"),
        (4, {"a": "ok", "b": "3"}),
    ]


def test_csv_header_problems_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="the header names column 'a' twice"):
        list(read_csv(write(tmp_path, "dup.csv", b"a,b,a\n1,2,3\n")))
    with pytest.raises(SourceError, match="header row is not UTF-8"):
        list(read_csv(write(tmp_path, "bad.csv", b"\xffa,b\n1,2\n")))


def test_empty_files_have_no_records(tmp_path: Path) -> None:
    assert list(read_csv(write(tmp_path, "e.csv", b""))) == []
    assert list(read_csv(write(tmp_path, "h.csv", b"Email\n"))) == []
    assert list(read_jsonl(write(tmp_path, "e.jsonl", b""))) == []


@pytest.mark.parametrize("reader", [read_csv, read_jsonl])
def test_missing_files_and_directories_are_source_errors(reader: object, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"data/x: file not found .*relative to the \.sync file"):
        reader(tmp_path / "x", display="data/x")  # type: ignore[operator]
    with pytest.raises(SourceError, match="is a directory"):
        reader(tmp_path, display="data")  # type: ignore[operator]


def test_a_long_csv_field_is_read_whole(tmp_path: Path) -> None:
    value = "y" * 200_000  # more than the csv module's default field limit
    records = list(read_csv(write(tmp_path, "l.csv", f"a\n{value}\n".encode())))
    assert records[0].fields == {"a": value}


def test_readers_stream_in_constant_memory(tmp_path: Path) -> None:
    line = json.dumps({"email": "a@example.com", "pad": "x" * 200}) + "\n"
    path = write(tmp_path, "big.jsonl", (line * 20_000).encode())
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_jsonl(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 1_000_000  # the file is ~4.7 MB; a reader holding it would exceed this
