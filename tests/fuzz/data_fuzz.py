"""Data fuzzing campaign: malformed JSONL / CSV / gzip source files through `plan` and `apply`.

    python tests/fuzz/data_fuzz.py --cases 400 [--seed 1] [--apply-every 4] [--subprocess-every 50]

Each case writes a fixed configuration (typed properties: number, date, datetime, enumeration,
bool; a JSONL export and a CSV upload) and data files mutated from valid seeds: byte flips,
truncation, deleted / duplicated / joined lines, huge numbers, deep nesting, lists and objects
where scalars belong, lone surrogates, invalid UTF-8, BOMs, CRLF and stray CRs, NULs, unterminated
CSV quotes, wrong column counts, broken headers, gzip bytes (also under a `.jsonl.gz` path), ...
It runs `plan --local --json` (in process through typer's runner; every Nth case as a real
subprocess) and, for a subset, `apply --local --auto-approve`, then checks:

- the exit code is never 3 and no traceback reaches stderr;
- plan succeeded: every source's `inputs[]` reconciles, `records == contributed + merged +
  rejected + not_member`, and `records` equals the records this script counts in the file itself
  (its own line / RFC 4180 row counter, not syncdsl's reader);
- plan failed: only where this script expects it (a CSV header that cannot be read, names a
  column twice or lacks a mapped column), with exit 1 and a message naming the data file;
- after an apply, the local HubSpot holds exactly the planned contacts, each with a valid email
  and only valid values (numbers finite, dates in range, options from the list, no Python reprs
  such as "<built-in" or "{'", no NUL, no lone surrogate, no U+FFFD).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

SEGMENT = "seg-fuzz-0001"
OPTIONS = ("bronze", "silver", "gold")
SPEC = """\
destination hubspot {
  token = env("HUBSPOT_TOKEN")
  tier  = "professional"
}

property "fz_points" {
  type = "number"
}

property "fz_birth" {
  type = "date"
}

property "fz_seen" {
  type = "datetime"
}

property "fz_tier" {
  type    = "enumeration"
  options = ["bronze", "silver", "gold"]
}

property "fz_optin" {
  type = "bool"
}

property "fz_score" {
  type = "number"
}

source profiles {
  jsonl          = "data/@JSONL@"
  identity email = personalEmail.address
  map {
    firstname = person.name.firstName
    lastname  = person.name.lastName
    city      = "{{ homeAddress.city | title }}"
    fz_points = loyalty.points
    fz_birth  = person.birthDate
    fz_seen   = lastSeen
    fz_tier   = loyalty.tier
    fz_optin  = consents.marketing
  }
}

source upload {
  csv            = "data/@CSV@"
  identity email = Email
  map {
    company  = Company
    fz_score = Score
  }
}

audience "Fuzz Export" {
  source  = profiles
  segment = "seg-fuzz-0001"
}

audience "Fuzz Upload" {
  source = upload
}
"""
NUMBER_PROPS = ("fz_points", "fz_score")
DATE_PROPS = ("fz_birth", "fz_seen")
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MIN_MS = -62135596800000  # 0001-01-01T00:00:00Z
HANG_SECONDS = 60.0
_REPRS = ("<built-in", "<function", "<bound", "{'", "['", "object at 0x", "Undefined")
_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}")


# --- valid seeds ---------------------------------------------------------------------------------

_FIRST = ["Ada", "Grace", "Zoë", "Łukasz", "Ngozi", "Søren", "José", "Mei", "O'Brien", "Anne-Marie"]
_CITY = ["london", "paris", "são paulo", "new york", "kraków", "zürich"]


def seed_jsonl(rng: random.Random, count: int = 24) -> bytes:
    lines = []
    for i in range(count):
        status = rng.choice(["realized", "realized", "existing", "exited"])
        profile: dict[str, Any] = {
            "identityMap": {"ECID": [{"id": str(10**19 + i)}]},
            "personalEmail": {"address": f"user{i}.{rng.randrange(1000)}@example.com"},
            "person": {
                "name": {"firstName": rng.choice(_FIRST), "lastName": f"Family{i}"},
                "birthDate": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            },
            "homeAddress": {"city": rng.choice(_CITY)},
            "loyalty": {"points": rng.choice([0, 12, 1500, 2.5, -3]), "tier": rng.choice(OPTIONS)},
            "lastSeen": rng.choice(["2026-11-10T08:15:00Z", 1767225600000, "2026-01-01"]),
            "consents": {"marketing": rng.choice([True, False, "yes", "no"])},
            "segmentMembership": {"ups": {SEGMENT: {"status": status}}},
        }
        lines.append(json.dumps(profile, ensure_ascii=rng.random() < 0.5))
    return ("\n".join(lines) + "\n").encode()


def seed_csv(rng: random.Random, count: int = 12) -> bytes:
    rows = ["Email,Company,Score,Note"]
    for i in range(count):
        company = rng.choice(['"Acme, Inc."', "Globex", '"Initech ""Labs"""', '"Two\nLines Ltd"'])
        rows.append(f"member{i}@example.org,{company},{rng.choice(['1', '2.5', '-7', ''])},n{i}")
    return ("\n".join(rows) + "\n").encode()


# --- mutations -----------------------------------------------------------------------------------

_HUGE = [b"1e999999999", b"-1e309", b"9" * 400, b"1e-400", b"NaN", b"Infinity", b"-Infinity"]
_HUGE_DATES = [b"-999999999999999", b"253402300800000", b'"0001-01-01"', b'"99999-01-01"', b"1e300"]
_BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
_NOT_OBJECTS = [b"[1, 2]", b'"text"', b"42", b"null", b"{}", b'{"a": 1}{"b": 2}', b"   ", b"\x0c"]
_BAD_EMAILS = [
    b'" A@EXAMPLE.COM "',
    b'"a@b"',
    b'"a@@b.com"',
    b'"a@b.con"',
    b'"<a@b.com>"',
    b'"a@b.com\\n"',
    b'"\\u00e4@b.com"',
    b'"' + b"x" * 300 + b'@b.com"',
    b'""',
    b'["a@b.com"]',
    b'{"address": "a@b.com"}',
    b"null",
    b"12",
]
_STATUSES = [b'["realized"]', b'{"x": 1}', b"1", b'"REALIZED"', b'" realized "', b"null", b"true"]
_STRING = re.compile(rb'"(?:[^"\\\n]|\\.)*"')
_NUMBER_FIELD = re.compile(rb'("points": )(-?[0-9.]+)')
_DATE_FIELD = re.compile(rb'("(?:birthDate|lastSeen)": )("[^"]*"|-?[0-9]+)')
_EMAIL_FIELD = re.compile(rb'("address": )("[^"]*")')
_STATUS_FIELD = re.compile(rb'("status": )("[^"]*")')


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _sub_one(rng: random.Random, pattern: re.Pattern[bytes], data: bytes, new: bytes) -> bytes:
    matches = list(pattern.finditer(data))
    if not matches:
        return data
    m = rng.choice(matches)
    group = 2 if pattern.groups >= 2 else 0  # the value after a `"key": ` prefix, or the match
    return data[: m.start(group)] + new + data[m.end(group) :]


def _common(rng: random.Random, data: bytes, kind: int) -> bytes | None:
    """Mutations that mean the same for both formats; None when `kind` is not one of them."""
    lines = _lines(data)
    at = rng.randrange(len(data) + 1)
    if kind == 0 and data:  # byte flips
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == 1:
        return data[:at]
    if kind == 2 and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
        return b"\n".join(lines)
    if kind == 3:
        i = rng.randrange(len(lines))
        lines[i:i] = [lines[i]] * rng.choice([1, 1, 5])
        return b"\n".join(lines)
    if kind == 4:
        return data[:at] + rng.choice(_BAD_UTF8) + data[at:]
    if kind == 5:
        if rng.random() < 0.5:
            return b"\xef\xbb\xbf" + data
        i = rng.randrange(len(lines))
        lines[i] = b"\xef\xbb\xbf" + lines[i]  # a BOM that is not at the start of the file
        return b"\n".join(lines)
    if kind == 6:
        if rng.random() < 0.6:
            return data.replace(b"\n", b"\r\n")
        return data[:at] + b"\r" + data[at:]  # a stray carriage return
    if kind == 7:
        return data[:at] + b"\x00" + data[at:]
    if kind == 8:
        packed = gzip.compress(data)
        if rng.random() < 0.3:  # cut off during the export or the copy
            return packed[: rng.randrange(10, max(11, len(packed)))]
        return packed
    if kind == 9:
        return data.replace(b"\n", b"", 1) if rng.random() < 0.5 else data[:at] + b"\n" + data[at:]
    if kind == 10:
        return rng.choice([b"", b"\n", b"\n\n  \n", b"\xef\xbb\xbf"])
    return None


_COMMON_KINDS = (
    "byte_flips",
    "truncated",
    "line_deleted",
    "line_duplicated",
    "invalid_utf8",
    "bom",
    "crlf_or_cr",
    "nul_byte",
    "gzip_bytes",  # a third of them truncated
    "lines_joined_or_split",
    "empty_file",
)
JSONL_KINDS = (
    *_COMMON_KINDS,
    "huge_number_or_date",
    "deep_nesting",
    "container_for_scalar",
    "surrogate_or_nul_escape",
    "not_an_object",
    "duplicate_key",
    "bad_email",
    "bad_status",
    "long_value",
)
CSV_KINDS = (
    *_COMMON_KINDS,
    "stray_quote",
    "stray_quote",
    "column_count",
    "header",
    "huge_number",
    "quoting",
    "long_field",
)


def mutation(rng: random.Random, kinds: tuple[str, ...]) -> tuple[int, str]:
    kind = rng.randrange(len(kinds))
    return kind, kinds[kind]


def mutate_jsonl(rng: random.Random, data: bytes, kind: int) -> bytes:
    common = _common(rng, data, kind)
    if common is not None:
        return common
    lines = _lines(data)
    i = rng.randrange(len(lines))
    if kind == 11:
        if rng.random() < 0.6:
            return _sub_one(rng, _NUMBER_FIELD, data, rng.choice(_HUGE))
        return _sub_one(rng, _DATE_FIELD, data, rng.choice(_HUGE_DATES))
    if kind == 12:  # deep nesting, balanced or not
        depth = rng.choice([10, 1000, 100_000])
        value = b"[" * depth + b"1" + b"]" * depth if rng.random() < 0.7 else b"{" * depth
        return _sub_one(rng, _STRING, data, value) if rng.random() < 0.7 else value + b"\n" + data
    if kind == 13:  # a container or another type where a scalar belongs
        strings = list(_STRING.finditer(data))
        if not strings:
            return data
        m = rng.choice(strings)
        text = m.group(0)
        new = rng.choice([b"[" + text + b"]", b'{"a": ' + text + b"}", b"null", b"true", b"123"])
        # a key keeps its quotes; replace values only (the match is followed by `,` or `}`)
        if data[m.end() : m.end() + 1] == b":":
            return data
        return data[: m.start()] + new + data[m.end() :]
    if kind == 14:  # lone surrogates and NUL escapes inside strings
        escape = rng.choice([b"\\ud800", b"\\udfff", b"\\ud83d", b"\\ude00x", b"\\u0000"])
        strings = list(_STRING.finditer(data))
        if not strings:
            return data
        m = rng.choice(strings)
        return data[: m.end() - 1] + escape + data[m.end() - 1 :]
    if kind == 15:
        lines[i] = rng.choice(_NOT_OBJECTS)
        return b"\n".join(lines)
    if kind == 16:  # duplicate keys: the later one wins in JSON
        lines[i] = lines[i].replace(b"{", b'{"personalEmail": {"address": "dup@example.com"}, ', 1)
        return b"\n".join(lines)
    if kind == 17:
        return _sub_one(rng, _EMAIL_FIELD, data, rng.choice(_BAD_EMAILS))
    if kind == 18:
        return _sub_one(rng, _STATUS_FIELD, data, rng.choice(_STATUSES))
    size = rng.choice([1000, 70_000, 1_000_000])  # kind 19: very long values
    return data.replace(b'"Family', b'"' + b"z" * size, 1)


def mutate_csv(rng: random.Random, data: bytes, kind: int) -> bytes:
    common = _common(rng, data, kind)
    if common is not None:
        return common
    lines = _lines(data)
    i = rng.randrange(len(lines))
    at = rng.randrange(len(data) + 1)
    if kind in (11, 12):  # an unterminated or misplaced quote
        return data[:at] + b'"' + data[at:]
    if kind == 13:  # wrong column counts
        lines[i] = lines[i] + b",extra" if rng.random() < 0.5 else lines[i].rsplit(b",", 1)[0]
        return b"\n".join(lines)
    if kind == 14:  # the header
        header = rng.choice(
            [b"Email,Email,Score,Note", b"", b" Email , Company ,Score,Note", b"E-mail,Company"]
        )
        return b"\n".join([header, *lines[1:]]) if rng.random() < 0.8 else b"\n".join(lines[1:])
    if kind == 15:
        value = rng.choice(
            [b"1e999999999", b"9" * 400, b"NaN", b"-inf", b"0x10", b"1,5", b"\xe2\x80\x8b1"]
        )
        return re.sub(rb",(-?[0-9.]*),n", b"," + value.replace(b",", b'","') + b",n", data, count=1)
    if kind == 16:  # quotes: escaped, a char after a closing quote, fields holding line breaks
        field_text = rng.choice([b'"a ""b"" c"', b'"x"y', b'"multi\nline\nfield"', b'""""', b'"'])
        lines[i] = (
            lines[i].replace(b"Globex", field_text, 1)
            if b"Globex" in lines[i]
            else (lines[i] + b"," + field_text)
        )
        return b"\n".join(lines)
    size = rng.choice([1000, 70_000, 1_000_000])  # kind 17: very long fields
    return data.replace(b",n", b"," + b"w" * size + b",n", 1)


# --- counting records independently ----------------------------------------------------------


def plain(data: bytes) -> tuple[bytes, bool]:
    """A file's bytes as syncdsl reads them: gzip (detected from its first bytes, every member)
    decompressed. `broken`: the gzip data breaks off or is corrupt; then only the complete lines
    before the break are read, and the break is one rejected record."""
    if not data.startswith(b"\x1f\x8b"):
        return data, False
    out, rest = [], data
    while rest:
        engine = zlib.decompressobj(wbits=31)
        try:
            out.append(engine.decompress(rest))
        except zlib.error:
            return b"".join(out).rpartition(b"\n")[0] + b"\n", True
        if not engine.eof:
            return b"".join(out).rpartition(b"\n")[0] + b"\n", True
        rest = engine.unused_data
        if rest and not rest.strip(b"\x00"):
            break
    return b"".join(out), False


def count_jsonl(data: bytes) -> int:
    """Records in a JSON Lines file: every line that is not blank (JSON whitespace only; an
    undecodable line counts); gzip decompressed, a break in it one record more."""
    data, broken = plain(data)
    records = int(broken)
    for number, line in enumerate(data.split(b"\n"), start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            records += 1
            continue
        if text.strip(" \t\r\n"):  # JSON whitespace (RFC 8259), not Python's
            records += 1
    return records


class HeaderError(Exception):
    """The CSV header cannot be read: the whole source is refused (exit 1)."""


def _csv_row(lines: list[str], start: int) -> tuple[int, bool, bool]:
    """Read one RFC 4180 row from line `start` as Python's csv module (strict) does.

    Returns (next line, the row is empty, the row failed). A failed row is line `start` alone.
    """
    state = "start_record"
    nul_is_error = sys.version_info < (3, 11)  # csv reads NUL since 3.11
    i = start
    fields = 0
    while i < len(lines):
        line = lines[i]
        if nul_is_error and "\x00" in line:
            return start + 1, False, True
        for char in [*line, None]:  # None: the end of the line (as the csv module's EOL)
            if state in ("start_record", "start_field"):
                if char is None or char in "\r\n":
                    if state == "start_record":
                        state = "done" if char is None else "eat_crnl"
                    else:
                        fields += 1
                        state = "done" if char is None else "eat_crnl"
                elif char == '"':
                    state = "quoted"
                elif char == ",":
                    fields += 1
                    state = "start_field"
                else:
                    state = "field"
            elif state == "field":
                if char is None or char in "\r\n":
                    fields += 1
                    state = "done" if char is None else "eat_crnl"
                elif char == ",":
                    fields += 1
                    state = "start_field"
            elif state == "quoted":
                if char == '"':
                    state = "quote_in_quoted"
            elif state == "quote_in_quoted":
                if char == '"':
                    state = "quoted"
                elif char == ",":
                    fields += 1
                    state = "start_field"
                elif char is None or char in "\r\n":
                    fields += 1
                    state = "done" if char is None else "eat_crnl"
                else:
                    return start + 1, False, True  # "',' expected after '\"'"
            elif state == "eat_crnl":
                if char is None:
                    state = "done"
                elif char not in "\r\n":
                    return start + 1, False, True  # "new-line character seen in unquoted field"
            if state == "done":
                return i + 1, fields == 0, False
        i += 1
    return start + 1, False, True  # "unexpected end of data": a quote that never closes


def count_csv(data: bytes) -> int:
    """Data rows of a CSV file with a header; an unparsable row is its first line alone, and the
    lines after it are read again (syncdsl's documented rule); gzip decompressed, a break in it one
    record more. Raises HeaderError."""
    data, broken = plain(data)
    raw_lines = data.split(b"\n")
    lines = [line + b"\n" for line in raw_lines[:-1]] + ([raw_lines[-1]] if raw_lines[-1] else [])
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    texts = [line.decode("utf-8", "replace") for line in lines]
    position, header = 0, False
    records = 0
    while position < len(texts):
        start = position
        position, empty, failed = _csv_row(texts, start)
        if not header:
            if failed:
                raise HeaderError(f"line {start + 1}")
            if not empty:
                undecodable = any(_bad_utf8(lines[n]) for n in range(start, position))
                if undecodable:
                    raise HeaderError(f"line {start + 1} is not UTF-8")
                columns = [c.strip() for c in next(csv.reader(texts[start:position]))]
                if len(set(columns)) != len(columns):
                    raise HeaderError(f"a column twice in {columns}")
                if missing := {"Email", "Company", "Score"} - set(columns):
                    raise HeaderError(f"no column {sorted(missing)} in {columns}")
                header = True
            continue
        if failed or not empty:
            records += 1
    return records + int(broken)  # a break before the header is a rejection too


def _bad_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# --- running and checking ------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    runs: int = 0
    applies: int = 0
    records: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    internal: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    slowest: float = 0.0
    slowest_case: str = ""

    def problems(self) -> list[str]:
        return [*self.internal, *self.tracebacks, *self.mismatches, *self.invalid]


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    crashed: str | None  # an exception that escaped the CLI (in process)


def _in_process(args: list[str]) -> Run:
    from syncdsl.cli import app

    start = time.monotonic()
    result = CliRunner().invoke(app, args, env={"HUBSPOT_TOKEN": "pat-fuzz"})
    crashed = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crashed = f"{type(result.exception).__name__}: {result.exception}"
    return Run(result.exit_code, result.stdout, result.stderr, time.monotonic() - start, crashed)


def _subprocess(args: list[str]) -> Run:
    start = time.monotonic()
    env = {**os.environ, "HUBSPOT_TOKEN": "pat-fuzz"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "syncdsl", *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=HANG_SECONDS,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return Run(-1, "", "hang", time.monotonic() - start, None)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - start, None)


def _note(tally: Tally, label: str, run: Run) -> None:
    tally.runs += 1
    tally.codes[f"{label.split()[0]}:{run.code}"] += 1
    if run.seconds > tally.slowest:
        tally.slowest, tally.slowest_case = run.seconds, label
    if run.code == 3 or "internal error" in run.stderr or run.crashed:
        tally.internal.append(f"{label}: exit {run.code} {run.crashed or run.stderr[-400:]}")
    if "Traceback" in run.stderr or run.code == -1:
        tally.tracebacks.append(f"{label}: {run.stderr[-400:]}")


@dataclass(frozen=True)
class Case:
    """One configuration to run: its data files and what this script expects of them."""

    jsonl_name: str
    jsonl: bytes
    csv_name: str
    csv: bytes
    kinds: tuple[str, ...]

    def expected(self) -> dict[str, int] | str:
        """Records per source, or why the plan must fail (an unreadable CSV header)."""
        try:
            csv_records = count_csv(self.csv)
        except HeaderError as error:
            return f"csv header: {error}"
        return {"profiles": count_jsonl(self.jsonl), "upload": csv_records}


def make_case(rng: random.Random) -> Case:
    jsonl, csv_data = seed_jsonl(rng), seed_csv(rng)
    kinds: list[str] = []
    target = rng.choice(["jsonl", "jsonl", "csv", "csv", "both"])
    if target in ("jsonl", "both"):
        for _ in range(rng.choice([1, 1, 2, 3])):
            kind, name = mutation(rng, JSONL_KINDS)
            jsonl = mutate_jsonl(rng, jsonl, kind)
            kinds.append(f"jsonl:{name}")
    if target in ("csv", "both"):
        for _ in range(rng.choice([1, 1, 2, 3])):
            kind, name = mutation(rng, CSV_KINDS)
            csv_data = mutate_csv(rng, csv_data, kind)
            kinds.append(f"csv:{name}")
    jsonl_name, csv_name = "profiles.jsonl", "upload.csv"
    if rng.random() < 0.05:  # a gzip file named as such: not a supported source format
        jsonl, jsonl_name = gzip.compress(jsonl), "profiles.jsonl.gz"
        kinds.append("jsonl:gz_path")
    if rng.random() < 0.03:
        csv_data, csv_name = gzip.compress(csv_data), "upload.csv.gz"
        kinds.append("csv:gz_path")
    return Case(jsonl_name, jsonl, csv_name, csv_data, tuple(kinds))


def write_case(root: Path, case: Case) -> None:
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    spec = SPEC.replace("@JSONL@", case.jsonl_name).replace("@CSV@", case.csv_name)
    (root / "fuzz.sync").write_text(spec, encoding="utf-8")
    (root / "data" / case.jsonl_name).write_bytes(case.jsonl)
    (root / "data" / case.csv_name).write_bytes(case.csv)


def check_plan(tally: Tally, label: str, run: Run, case: Case) -> dict[str, Any] | None:
    expected = case.expected()
    if isinstance(expected, str):
        if run.code != 1 or f"data/{case.csv_name}" not in run.stderr:
            tally.mismatches.append(f"{label}: expected a refusal ({expected}), got {run.code}")
        return None
    if run.code != 0:
        tally.mismatches.append(f"{label}: plan exit {run.code}: {run.stderr[-300:]}")
        return None
    plan: dict[str, Any] = json.loads(run.stdout)
    inputs = {counts["source"]: counts for counts in plan["inputs"]}
    for source, records in expected.items():
        counts = inputs.get(source)
        if counts is None:
            tally.mismatches.append(f"{label}: no inputs[] entry for {source}")
            continue
        buckets = (
            counts["contributed"] + counts["merged"] + counts["rejected"] + counts["not_member"]
        )
        if counts["records"] != records or buckets != records:
            tally.mismatches.append(
                f"{label}: {source} has {records} records in the file; inputs[] says {counts}"
            )
        tally.records += records
    return plan


def _value_problem(name: str, value: str) -> str | None:
    if any(marker in value for marker in _REPRS):
        return "a Python repr"
    if "\x00" in value or "\ufffd" in value:
        return "a NUL or U+FFFD"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    if name in NUMBER_PROPS:
        try:
            number = float(value)
        except ValueError:
            return "not a number"
        if not math.isfinite(number) or value.strip() != value:
            return "not a finite number"
    if name in DATE_PROPS and not re.fullmatch(r"-?[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}(T.*)?", value):
        return "not a date"
    if name == "fz_tier" and value not in OPTIONS:
        return "not one of the options"
    if name == "fz_optin" and value not in ("true", "false"):
        return "not true/false"
    return None


def check_portal(tally: Tally, label: str, root: Path, plan: dict[str, Any]) -> None:
    portal = json.loads((root / ".syncdsl" / "local-hubspot.json").read_text(encoding="utf-8"))
    contacts: list[dict[str, Any]] = portal["contacts"]
    created = plan["summary"]["create"]
    if len(contacts) != created:
        tally.invalid.append(
            f"{label}: {len(contacts)} contacts in HubSpot, plan created {created}"
        )
    for contact in contacts:
        email = contact.get("email") or ""
        if len(email) > 254 or not _EMAIL.fullmatch(email):
            tally.invalid.append(f"{label}: invalid email in HubSpot: {email[:80]!r}")
        for name, value in contact.items():
            if not isinstance(value, str):
                continue
            problem = _value_problem(name, value)
            if problem is not None:
                tally.invalid.append(f"{label}: {name}={value[:80]!r} is {problem}")


def run_case(root: Path, case: Case, tally: Tally, number: int, *, apply: bool, real: bool) -> None:
    write_case(root, case)
    runner = _subprocess if real else _in_process
    label = f"plan case {number} ({'/'.join(case.kinds)}{', subprocess' if real else ''})"
    run = runner(["plan", str(root), "--local", "--json"])
    _note(tally, label, run)
    if run.code == 3 or run.crashed:
        return
    plan = check_plan(tally, label, run, case)
    if plan is None or not apply:
        return
    shutil.rmtree(root / ".syncdsl", ignore_errors=True)
    label = label.replace("plan", "apply", 1)
    run = runner(["apply", str(root), "--local", "--auto-approve"])
    _note(tally, label, run)
    tally.applies += 1
    if run.code == 0:
        check_portal(tally, label, root, plan)
    elif run.code != 3:
        tally.mismatches.append(f"{label}: apply exit {run.code}: {run.stderr[-300:]}")


def campaign(cases: int, seed: int, *, apply_every: int, subprocess_every: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="syncdsl-data-fuzz-") as tmp:
        root = Path(tmp) / "case"
        for number in range(cases):
            case = make_case(rng)
            tally.cases += 1
            tally.kinds.update(case.kinds)
            apply = apply_every > 0 and number % apply_every == 0
            real = subprocess_every > 0 and number % subprocess_every == 0
            run_case(root, case, tally, number, apply=apply, real=real)
            if (number + 1) % 100 == 0:
                print(
                    f"progress: {number + 1} cases, {tally.runs} runs, internal errors "
                    f"{len(tally.internal)}, other problems {len(tally.problems())}",
                    flush=True,
                )
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--apply-every", type=int, default=4, help="apply every Nth case (0: none)")
    parser.add_argument("--subprocess-every", type=int, default=50)
    options = parser.parse_args()
    started = time.monotonic()
    tally = campaign(
        options.cases,
        options.seed,
        apply_every=options.apply_every,
        subprocess_every=options.subprocess_every,
    )
    print(
        f"cases: {tally.cases}, records: {tally.records:,}, runs: {tally.runs} "
        f"({tally.applies} applies), {time.monotonic() - started:.0f} s"
    )
    print("mutations applied:")
    for name, count in sorted(tally.kinds.items()):
        print(f"  {name:34} {count}")
    print(f"exit codes: {dict(sorted(tally.codes.items()))}")
    print(f"internal errors (exit 3): {len(tally.internal)}")
    print(f"tracebacks or hangs: {len(tally.tracebacks)}")
    print(f"inputs[] not reconciling with the file: {len(tally.mismatches)}")
    print(f"invalid values in HubSpot: {len(tally.invalid)}")
    print(f"max run time: {tally.slowest:.2f} s ({tally.slowest_case})")
    for problem in tally.problems()[:20]:
        print("  " + problem.replace("\n", "\n    "))
    return 1 if tally.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
