"""A bounded data fuzz (issue 13): malformed JSONL / CSV / gzip sources through plan and apply.

The campaign itself is `tests/fuzz/data_fuzz.py` (400+ cases); this runs a few cases with a fixed
seed so it keeps running in CI, and checks that its independent record counters are right.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from syncdsl.records.sources import read_csv, read_jsonl
from tests.fuzz.data_fuzz import (
    Case,
    HeaderError,
    Run,
    Tally,
    campaign,
    check_plan,
    count_csv,
    count_jsonl,
    make_case,
    seed_csv,
    seed_jsonl,
)


def test_a_bounded_campaign_finds_no_internal_error_and_every_count_reconciles() -> None:
    tally = campaign(16, seed=13, apply_every=4, subprocess_every=0)
    assert tally.problems() == []
    assert tally.runs >= 16 and tally.applies >= 3 and tally.records > 0


_CSV_CASES = [
    b"Email,Company\na@x.com,A\n\nb@x.com,B\n",  # a blank line is no row
    b'Email,Company\na@x.com,"A\nB"\nb@x.com,B\n',  # a quoted line break: one row
    b'Email,Company\na@x.com,"Acme\nb@x.com,B\nc@x.com,"C, Inc"\nd@x.com,D\n',  # closed later
    b'Email,Company\na@x.com,"Acme\nb@x.com,B\n',  # never closed
    b'Email,Company\na@x.com,"x"y\nb@x.com,B',  # a character after a closing quote
    b"Email,Company\r\na@x.com,A\rb\r\n",  # a stray carriage return
    b'\xef\xbb\xbf\n\nEmail,Company\na@x.com,A\xff\nb@x.com,a"b\n',
    b"Email,Company\na@x.com,A\x00\n",
]


@pytest.mark.parametrize("data", _CSV_CASES)
def test_the_csv_counter_agrees_with_the_reader_on_hand_made_files(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(data)
    assert count_csv(data.replace(b"Email,Company", b"Email,Company,Score")) == len(
        list(read_csv(path))
    )


def test_the_counters_agree_with_the_readers_on_mutated_seeds(tmp_path: Path) -> None:
    rng = random.Random(5)
    for _ in range(60):
        case = make_case(rng)
        (tmp_path / "p.jsonl").write_bytes(case.jsonl)
        assert count_jsonl(case.jsonl) == len(list(read_jsonl(tmp_path / "p.jsonl")))
        (tmp_path / "u.csv").write_bytes(case.csv)
        try:
            expected = count_csv(case.csv)
        except HeaderError:
            continue
        assert expected == len(list(read_csv(tmp_path / "u.csv")))


def test_the_header_counter_refuses_what_plan_refuses() -> None:
    with pytest.raises(HeaderError):
        count_csv(b"Email,Email,Score,Company\n")
    with pytest.raises(HeaderError):
        count_csv(b"E-mail,Company,Score\na@x.com,A,1\n")
    with pytest.raises(HeaderError):
        count_csv(b'"Email,Company,Score\n')
    assert count_csv(b"") == 0


def test_a_count_that_does_not_reconcile_is_reported() -> None:
    rng = random.Random(1)
    case = Case("profiles.jsonl", seed_jsonl(rng), "upload.csv", seed_csv(rng), ())
    counts = {"contributed": 20, "merged": 0, "rejected": 0, "not_member": 4, "records": 24}
    wrong = {"contributed": 11, "merged": 0, "rejected": 0, "not_member": 0, "records": 11}
    inputs = [{"source": "profiles", **counts}, {"source": "upload", **wrong}]
    stdout = '{"inputs": ' + str(inputs).replace("'", '"') + "}"
    tally = Tally()
    check_plan(tally, "plan case 0", Run(0, stdout, "", 0.1, None), case)
    assert len(tally.mismatches) == 1 and "upload has 12 records" in tally.mismatches[0]


def test_gzip_bytes_where_jsonl_belongs_are_read_as_the_records_they_hold(
    tmp_path: Path,
) -> None:
    plain = seed_jsonl(random.Random(2))
    data = gzip.compress(plain)
    (tmp_path / "p.jsonl").write_bytes(data)  # the suffix says plain; the content says gzip
    records = list(read_jsonl(tmp_path / "p.jsonl"))
    assert len(records) == count_jsonl(data) == count_jsonl(plain) > 0
    assert all(record.fields is not None for record in records)
    cut = data[: len(data) // 2]
    (tmp_path / "cut.jsonl.gz").write_bytes(cut)
    records = list(read_jsonl(tmp_path / "cut.jsonl.gz"))
    assert len(records) == count_jsonl(cut) > 1
    assert records[-1].fields is None and "truncated" in str(records[-1].error)
