"""The SQL path of a jsonl or csv source maps every record exactly as the Python path does.

`syncdsl.records.vectorised` maps in DuckDB the lines it can vouch for and leaves the rest to
`ProfileMapper`; whatever the split, the desired contacts, rejections, counts and warnings must
be those of the Python path alone. Lines are built to sit on every edge the SQL path decides:
duplicate keys on a mapped path, values that are not text, emails just off the happy path,
statuses spelt oddly or under `xdm:` names, escapes, lone surrogates, trailing commas, NaN,
Unicode whitespace, NUL, overlong lines.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_desired import make_spec, outcome

from syncdsl.records import desired as desired_module
from syncdsl.records.desired import build_desired
from syncdsl.records.mapping import ProfileMapper
from syncdsl.records.vectorised import plan_columns

SEGMENT = "3f2a9c4e-6b1d-4e8a-9f0c-1a2b3c4d5e6f"
SPEC = {
    "sources": [
        {
            "name": "profiles",
            "format": "jsonl",
            "path": "profiles.jsonl",
            "identity": "personalEmail.address",
            "map": {
                "firstname": "person.name.firstName",
                "lastname": "person.lastName",
                "city": {"template": "{{ homeAddress.city | title }}"},
                "source": {"literal": "cdp"},
            },
        }
    ],
    "audiences": [
        {"name": "News", "source": "profiles", "segment": SEGMENT, "property": "news"},
        {"name": "Other", "source": "profiles", "segment": "other-1", "property": "other"},
    ],
}

_EMAILS = st.sampled_from(
    [
        "user@example.com",
        "  User@Example.COM ",
        "\tu.v+w@sub.example.org\n",
        "user@example.con",  # a typo'd TLD: Python's reason
        "x" * 65 + "@example.com",
        "üser@example.com",  # not the ASCII happy path
        "user@@example.com",
        "user@example",
        "",
        "\u00a0user@example.com",
    ]
)
_TEXT = st.one_of(
    st.sampled_from(["Ann", "  ", "\u3000", "\u2028x", "a\x00b", "Chloé", 'q"uote', "\\back", ""]),
    st.text(max_size=6),
)
_VALUE: st.SearchStrategy[Any] = st.one_of(
    _TEXT, st.integers(-5, 5), st.floats(allow_nan=False), st.none(), st.just([1]), st.just({})
)
_CONSENT = st.sampled_from(["y", "n", "p", "LI", "", "N", None, 1, "odd value!", "dy"])
_STATUS = st.sampled_from(["realized", "existing", "exited", "Realized", "gone", None, 3])


def _entry(draw: Any) -> object:
    kind = draw(st.sampled_from(["status", "xdm", "none", "empty", "odd", "absent"]))
    if kind == "status":
        return {"status": draw(_STATUS), "lastQualificationTime": "2026-01-01T00:00:00Z"}
    if kind == "xdm":
        return {"xdm:status": draw(_STATUS)}
    if kind == "empty":
        return {}
    if kind == "odd":
        return draw(st.sampled_from(["realized", 1, [], None]))
    return None


@st.composite
def profile_line(draw: Any) -> str:
    profile: dict[str, Any] = {"_id": draw(st.integers(0, 99))}
    profile["personalEmail"] = {"address": draw(st.one_of(_EMAILS, _EMAILS, _EMAILS, _VALUE))}
    name: dict[str, Any] = {}
    if draw(st.booleans()):
        name["firstName"] = draw(_VALUE)
    person: dict[str, Any] = {"name": name}
    if draw(st.booleans()):
        person["lastName"] = draw(_VALUE)
    if draw(st.integers(0, 9)):
        profile["person"] = person
    if draw(st.booleans()):
        profile["homeAddress"] = {"city": draw(_VALUE)}
    membership = draw(st.sampled_from(["ups", "xdm", "none", "odd"]))
    if membership == "ups":
        ups = {}
        for segment in (SEGMENT, "other-1"):
            entry = _entry(draw)
            if entry is not None:
                ups[segment] = entry
        profile["segmentMembership"] = {"ups": ups}
    elif membership == "xdm":
        profile["xdm:segmentMembership"] = {"xdm:ups": {SEGMENT: {"xdm:status": draw(_STATUS)}}}
    elif membership == "odd":
        profile["segmentMembership"] = draw(st.sampled_from([None, [], "x", {"ups": 1}]))
    if draw(st.booleans()):
        marketing: dict[str, Any] = {}
        for channel in ("any", "email"):
            if draw(st.booleans()):
                marketing[channel] = {"val": draw(_CONSENT)}
        profile["consents"] = draw(st.sampled_from([{"marketing": marketing}, marketing, []]))
    text = json.dumps(profile, ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from(_MUTATIONS))(text, draw)


def _duplicate_key(text: str, draw: Any) -> str:
    """The same key twice on a mapped path: Python keeps the last value."""
    key = draw(
        st.sampled_from(
            [
                '"firstName": ',
                '"address": ',
                '"person": ',
                '"status": ',
                '"val": ',
                '"consents": ',
                '"id": ',
            ]
        )
    )
    if key not in text:
        return text
    return text.replace(key, key + json.dumps(draw(_TEXT)) + ", " + key, 1)


_MUTATIONS = [
    lambda text, draw: text,
    lambda text, draw: text,
    lambda text, draw: text,
    _duplicate_key,
    lambda text, draw: text[:-1] + ", }",  # a trailing comma
    lambda text, draw: text.replace('"_id": ', '"_id": NaN, "x": ', 1),
    lambda text, draw: text.replace('"_id": ', '"_id": "\\ud800", "x": ', 1),
    lambda text, draw: "   " + text + " \t",
    lambda text, draw: text[: len(text) // 2],  # cut off
    lambda text, draw: '{"pad": "' + "x" * 4100 + '", ' + text[1:],
    lambda text, draw: "[" + text + "]",
    lambda text, draw: "",
]


#: One line per rule the SQL path decides, each beside a line it must treat alike.
_EDGES = [
    '{"personalEmail": {"address": "user@example.com"}, "person": {"name": {"firstName": "A"}}}',
    '{"personalEmail": {"address": "user@example.con"}}',
    '{"personalEmail": {"address": "  User@Example.COM\\t"}}',
    '{"personalEmail": {"address": "@X@@example.com"}}'.replace("@X@", "x" * 65),
    '{"personalEmail": {"address": "u@@D@.com"}}'.replace("@D@", "d" * 250),
    '{"personalEmail": {"address": "\\u00fcser@example.com"}}',
    '{"personalEmail": {"address": 42}}',
    '{"personalEmail": {"address": null}}',
    '{"personalEmail": "user@example.com"}',
    '{"personalEmail": {"address": "a@example.com", "address": "b@example.com"}}',
    '{"person": {"name": {"firstName": "A", "firstName": "B"}}, '
    '"personalEmail": {"address": "c@example.com"}}',
    '{"personalEmail": {"address": "d@example.com"}, "person": {"name": {"firstName": 7}}}',
    '{"personalEmail": {"address": "e@example.com"}, "person": {"name": {"firstName": "\\u3000"}}}',
    '{"personalEmail": {"address": "f@example.com"}, "person": {"name": {"firstName": "a\\u0000"}}}',
    '{"personalEmail": {"address": "g@example.com"}, "person": {"name": {"firstName": "  "}}}',
    '{"personalEmail": {"address": "h@example.com"}, "person": {"name": {"firstName": "\\"q\\""}}}',
    '{"personalEmail": {"address": "i@example.com"}, "homeAddress": {"city": "new york"}}',
    '{"personalEmail": {"address": "j@example.com"}, "homeAddress": {"city": 3}}',
    '{"personalEmail": {"address": "k@example.com"}, "homeAddress": {"city": null}}',
    '{"personalEmail": {"address": "l@example.com"}, "homeAddress": "x"}',
    '{"personalEmail": {"address": "m@example.com"}, "segmentMembership": {"ups": {"@SEG@": '
    '{"status": "existing"}}}}',
    '{"personalEmail": {"address": "n@example.com"}, "segmentMembership": {"ups": {"@SEG@": '
    '{"status": "Realized"}}}}',
    '{"personalEmail": {"address": "o@example.com"}, "segmentMembership": {"ups": {"@SEG@": '
    '{"xdm:status": "exited"}}}}',
    '{"personalEmail": {"address": "p@example.com"}, "segmentMembership": {"ups": {"@SEG@": {}}}}',
    '{"personalEmail": {"address": "q@example.com"}, "xdm:segmentMembership": {"xdm:ups": '
    '{"@SEG@": {"xdm:status": "realized"}}}}',
    '{"personalEmail": {"address": "r@example.com"}, "segmentMembership": {"ups": {"@SEG@": '
    '{"status": "realized", "status": "exited"}}}}',
    '{"personalEmail": {"address": "s@example.com"}, "segmentMembership": []}',
    '{"personalEmail": {"address": "t@example.com"}, "x": NaN}',
    '{"personalEmail": {"address": "u@example.com"}, "x": "\\ud800"}',
    '{"personalEmail": {"address": "v@example.com"}, }',
    '{"pad": "@X@", "personalEmail": {"address": "w@example.com"}}'.replace("@X@", "x" * 4100),
    "[1, 2]",
    "{broken",
    "   ",
    '\ufeff{"personalEmail": {"address": "x@example.com"}}',
    # consent: `any` overrides the channel, a channel alone, values that are not strings, keys
    # written twice or with escapes, and a withheld record whose values would be refused
    '{"personalEmail": {"address": "c1@example.com"}, "consents": {"marketing": {"any": '
    '{"val": "n"}, "email": {"val": "y"}}}}',
    '{"personalEmail": {"address": "c2@example.com"}, "consents": {"marketing": {"email": '
    '{"val": "n"}}}, "segmentMembership": {"ups": {"@SEG@": {"status": "realized"}}}}',
    '{"personalEmail": {"address": "c3@example.com"}, "consents": {"marketing": {"any": '
    '{"val": "y"}}}, "person": {"name": {"firstName": "Yes"}}}',
    '{"personalEmail": {"address": "c4@example.com"}, "consents": {"marketing": {"email": '
    '{"val": 1}}}}',
    '{"personalEmail": {"address": "c5@example.com"}, "consents": {"marketing": {"email": '
    '{"val": "y", "val": "n"}}}}',
    '{"personalEmail": {"address": "c6@example.com"}, "\\u0063onsents": {"marketing": '
    '{"email": {"val": "n"}}}}',
    '{"personalEmail": {"address": "c7@example.com"}, "consents": {"marketing": {"email": '
    '{"val": "n"}}}, "segmentMembership": "odd", "person": {"name": {"firstName": 5}}}',
    '{"personalEmail": {"address": "c8@example.com"}, "consents": {"marketing": {"email": '
    '{"val": "p"}}}, "consents": {"marketing": {"email": {"val": "n"}}}}',
    '{"personalEmail": {"address": "c9@example.com"}, "consents": {"marketing": {"any": null, '
    '"email": {"val": "LI"}}}}',
    '{"personalEmail": {"address": "bad@@example.com"}, "consents": {"marketing": {"email": '
    '{"val": "n"}}}}',
]
EDGES = [edge.replace("@SEG@", SEGMENT) for edge in _EDGES]


def test_each_edge_is_mapped_alike(tmp_path: Path) -> None:
    (tmp_path / "profiles.jsonl").write_text("".join(e + "\n" for e in EDGES), encoding="utf-8")
    sql = _map(tmp_path, python_only=False)
    assert sql == _map(tmp_path, python_only=True)
    assert len(sql["contacts"]) >= 15  # the edges are not all rejected


def test_a_truncated_gzip_file_keeps_the_lines_before_the_break(tmp_path: Path) -> None:
    """The SQL path reads blocks of megabytes: the lines decoded before the data breaks off
    count there as on the Python path (which reads a line at a time)."""
    import gzip

    lines = [
        json.dumps({"personalEmail": {"address": f"t{n}@example.com"}, "person": {"name": {}}})
        for n in range(3000)
    ]
    data = gzip.compress("".join(line + "\n" for line in lines).encode())
    (tmp_path / "profiles.jsonl").write_bytes(data[: len(data) * 2 // 3])  # the content decides
    sql = _map(tmp_path, python_only=False)
    assert sql == _map(tmp_path, python_only=True)
    (broken,) = sql["rejected"]
    assert "truncated" in broken["reason"]
    assert len(sql["contacts"]) == broken["line"] - 1 > 100


def test_undecodable_bytes_go_to_python_line_by_line(tmp_path: Path) -> None:
    good = b'{"personalEmail": {"address": "a@example.com"}}\n'
    bad = b'{"personalEmail": {"address": "b@example.com"}, "n": "\xff"}\n'
    (tmp_path / "profiles.jsonl").write_bytes(good + bad + good.replace(b"a@", b"c@"))
    sql = _map(tmp_path, python_only=False)
    assert sql == _map(tmp_path, python_only=True)
    assert [r["line"] for r in sql["rejected"]] == [2]
    assert [c["email"] for c in sql["contacts"]] == ["a@example.com", "c@example.com"]


#: The same source under Experience Platform's default consent rule, and under strict opt-in.
_DEFAULT_CONSENT = {"fields": ["consents.marketing.any.val", "consents.marketing.email.val"]}
CONSENT_SPECS = [
    {**SPEC, "sources": [{**SPEC["sources"][0], "consent": _DEFAULT_CONSENT}]},
    {**SPEC, "sources": [{**SPEC["sources"][0], "consent": {**_DEFAULT_CONSENT, "allow": ["y"]}}]},
]


@pytest.mark.parametrize("spec", CONSENT_SPECS, ids=["default", "strict"])
def test_each_edge_is_mapped_alike_under_consent(tmp_path: Path, spec: dict[str, Any]) -> None:
    (tmp_path / "profiles.jsonl").write_text("".join(e + "\n" for e in EDGES), encoding="utf-8")
    sql = _map(tmp_path, python_only=False, spec=spec)
    assert sql == _map(tmp_path, python_only=True, spec=spec)
    withheld = [c["email"] for c in sql["contacts"] if c["withheld"]]
    assert {"c1@example.com", "c2@example.com", "c6@example.com"} <= set(withheld)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(profile_line(), min_size=1, max_size=25), st.sampled_from(CONSENT_SPECS))
def test_sql_and_python_apply_consent_alike(lines: list[str], spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _profiles_file(Path(tmp), lines)
        assert _map(root, python_only=False, spec=spec) == _map(root, python_only=True, spec=spec)


def _profiles_file(root: Path, lines: list[str]) -> Path:
    """`root` with the lines as its profiles.jsonl (lone surrogates written as they are)."""
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    (root / "profiles.jsonl").write_bytes(data)
    return root


def _map(root: Path, *, python_only: bool, spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    patch = pytest.MonkeyPatch()
    if python_only:
        patch.setattr(desired_module, "plan_columns", lambda source, mapper: None)
    try:
        with build_desired(make_spec(root, spec)) as desired:
            skipped = sum(counts.identities_skipped for counts in desired.counts)
            return {**outcome(desired), "identities_skipped": skipped}
    finally:
        patch.undo()


def test_the_reference_shape_takes_the_sql_path(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, SPEC)
    source = spec.sources[0]
    assert plan_columns(source, ProfileMapper(spec, source, None)) is not None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(profile_line(), min_size=1, max_size=25))
def test_sql_and_python_map_every_line_alike(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _profiles_file(Path(tmp), lines)
        assert _map(root, python_only=False) == _map(root, python_only=True)


CSV_SPEC = {
    "sources": [
        {
            "name": "vip",
            "format": "csv",
            "path": "vip.csv",
            "identity": "contact.email",  # in csv, the column named `contact.email`
            "map": {
                "company": "Company",
                "firstname": {"template": "{{ First | title }}"},
                "source": {"literal": "upload"},
            },
        }
    ],
    "audiences": [{"name": "VIP", "source": "vip", "segment": None, "property": "vip"}],
}
_CSV_HEADER = ["contact.email", "Company", "First"]
#: Rows on the edges: emails off the happy path, blank and Unicode-space values, NUL, quotes and
#: line breaks inside fields, rows of the wrong width, a quote left open, duplicates.
CSV_EDGES = (
    ",".join(_CSV_HEADER) + "\n"
    "user@example.com,Acme,ann\n"
    "  User@Example.COM\t,Acme 2,BOB\n"
    "user@example.con,Typo,c\n"
    ",No email,d\n"
    '"q@example.com","Acme ""7"", Inc.\nEMEA",e\n'
    "s@example.com,   ,\u3000\n"
    "n@example.com,a\x00b,f\n"
    "w@example.com,too,many,cells\n"
    "\n"
    "\u00fcser@example.com,Umlaut,g\n"
    "user@example.com,Later wins,h\n"
    'o@example.com,"open quote,i\n'
    "z@example.com,Zed,z\n"
)


def test_each_csv_edge_is_mapped_alike(tmp_path: Path) -> None:
    (tmp_path / "vip.csv").write_text(CSV_EDGES, encoding="utf-8")
    sql = _map(tmp_path, python_only=False, spec=CSV_SPEC)
    assert sql == _map(tmp_path, python_only=True, spec=CSV_SPEC)
    assert (len(sql["contacts"]), len(sql["rejected"])) == (4, 6)


def test_the_upload_shape_takes_the_sql_path(tmp_path: Path) -> None:
    (tmp_path / "vip.csv").write_text(",".join(_CSV_HEADER) + "\n", encoding="utf-8")
    spec = make_spec(tmp_path, CSV_SPEC)
    plan = plan_columns(spec.sources[0], ProfileMapper(spec, spec.sources[0], None))
    assert plan is not None and plan.columns == ("contact.email", "Company", "First")


_CELL = st.one_of(_EMAILS, _TEXT, st.sampled_from(['a"b', "x,y", "l\nm", "\r", "Zoë"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(_CELL, min_size=2, max_size=4), min_size=1, max_size=25),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
)
def test_sql_and_python_map_every_csv_row_alike(rows: list[list[str]], quoting: int) -> None:
    text = io.StringIO()
    writer = csv.writer(text, quoting=quoting)
    writer.writerow(_CSV_HEADER)
    writer.writerows(rows)  # some rows are short or long: rejected alike
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "vip.csv").write_bytes(text.getvalue().encode("utf-8", "surrogatepass"))
        sql = _map(root, python_only=False, spec=CSV_SPEC)
        assert sql == _map(root, python_only=True, spec=CSV_SPEC)


@pytest.mark.parametrize("allow", [None, ["y"]], ids=["default", "strict"])
def test_a_csv_consent_column_is_applied_alike(tmp_path: Path, allow: list[str] | None) -> None:
    consent = {"fields": ["Opt In"]} | ({"allow": allow} if allow else {})
    spec = {**CSV_SPEC, "sources": [{**CSV_SPEC["sources"][0], "consent": consent}]}
    rows = ["y", "n", "", "N", "p", "odd value!", "y"]
    text = "contact.email,Company,First,Opt In\n" + "".join(
        f"u{n}@example.com,Acme,ann,{value}\n" for n, value in enumerate(rows)
    )
    (tmp_path / "vip.csv").write_text(text + "u9@example.con,Typo,x,n\n", encoding="utf-8")
    sql = _map(tmp_path, python_only=False, spec=spec)
    assert sql == _map(tmp_path, python_only=True, spec=spec)
    withheld = {c["email"]: c["withheld"] for c in sql["contacts"] if c["withheld"]}
    assert "u1@example.com" in withheld and "u0@example.com" not in withheld
    assert all(c["audiences"] == {"vip": "exited"} for c in sql["contacts"] if c["withheld"])


PARQUET_SPEC = {
    **SPEC,
    "sources": [{**SPEC["sources"][0], "format": "parquet", "path": "exports/"}],
}
_PARQUET_EMAILS = [
    "user{i}@example.com",
    "  User{i}@Example.COM ",
    "user{i}@example.con",
    "user{i}@@example.com",
    "",
    "üser{i}@example.com",
]


def _write_parquet(path: Path, rows: int, offset: int = 0, row_group: int = 122_880) -> None:
    """Experience Platform's shape in Parquet (nested structs, segmentMembership.ups a map of
    structs), with emails on the SQL path's edges, values absent, and statuses of every kind."""
    import duckdb

    emails = ", ".join(f"'{e}'" for e in _PARQUET_EMAILS)
    connection = duckdb.connect()
    connection.execute(
        f"""
        COPY (
          SELECT
            {{'address': CASE WHEN i % 11 = 10 THEN NULL
                         ELSE replace([{emails}][i % 6 + 1], '{{i}}', i::VARCHAR) END}}
              AS personalEmail,
            {{'name': {{'firstName': CASE WHEN i % 4 = 3 THEN NULL ELSE 'First' || i END}},
              'lastName': 'Last "q" \\ ' || i}} AS person,
            {{'city': CASE WHEN i % 3 = 0 THEN 'paris' ELSE NULL END}} AS homeAddress,
            {{'ups': MAP {{'{SEGMENT}': {{'status': ['realized', 'existing', 'exited',
                                                    'Realized', NULL][i % 5 + 1],
                                          'lastQualificationTime':
                                            TIMESTAMPTZ '2026-11-30 10:00:00+00'}}}}}}
              AS segmentMembership
          FROM range({offset}, {offset + rows}) t(i)
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {row_group})
        """
    )
    connection.close()


def test_parquet_takes_the_sql_path_and_maps_alike(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    _write_parquet(tmp_path / "exports" / "part-00000.parquet", 300)
    _write_parquet(tmp_path / "exports" / "part-00001.parquet", 200, offset=300)
    whole = (tmp_path / "exports" / "part-00001.parquet").read_bytes()
    (tmp_path / "exports" / "part-00002.parquet").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "exports" / "_SUCCESS").write_bytes(b"")
    spec = make_spec(tmp_path, PARQUET_SPEC)
    source = spec.sources[0]
    assert plan_columns(source, ProfileMapper(spec, source, None)) is not None
    sql = _map(tmp_path, python_only=False, spec=PARQUET_SPEC)
    assert sql == _map(tmp_path, python_only=True, spec=PARQUET_SPEC)
    assert len(sql["contacts"]) > 100
    rejected = {(r["file"], r["line"]) for r in sql["rejected"]}
    assert ("exports/part-00000.parquet", 4) in rejected  # user3@@example.com, row 4
    assert any(
        r["file"] == "exports/part-00002.parquet" and "unreadable Parquet" in r["reason"]
        for r in sql["rejected"]
    )


def test_a_parquet_file_corrupt_part_way_is_a_rejection_naming_it(tmp_path: Path) -> None:
    """DuckDB raises the error of a corrupt page inside the arrow stream (OSError), not at the
    query: it still ends the file in one rejection, never a traceback."""
    import pyarrow.parquet as pq

    (tmp_path / "exports").mkdir()
    path = tmp_path / "exports" / "part-00000.parquet"
    _write_parquet(path, 40_000, row_group=2048)  # twenty row groups
    page = pq.ParquetFile(path).metadata.row_group(15).column(1).data_page_offset
    data = bytearray(path.read_bytes())
    data[page + 20 : page + 400] = b"\xab" * 380  # a data page of the sixteenth row group
    path.write_bytes(bytes(data))
    sql = _map(tmp_path, python_only=False, spec=PARQUET_SPEC)
    assert sql == _map(tmp_path, python_only=True, spec=PARQUET_SPEC)
    (broken,) = [r for r in sql["rejected"] if "unreadable Parquet" in r["reason"]]
    assert broken["file"] == "exports/part-00000.parquet"
    assert broken["line"] <= 15 * 2048 + 1  # no later than the corrupt page
    assert "export or copy it again" in broken["reason"]
    rows = sql["counts"][0]
    assert rows["contributed"] + rows["merged"] + rows["rejected"] == rows["records"]


def test_a_parquet_nan_or_hugeint_maps_alike_on_both_paths(tmp_path: Path) -> None:
    """DuckDB writes a DOUBLE's NaN as `NaN` and a HUGEINT whole: the Python path reads the row
    as a jsonl line is read (it used to fail on the NaN with a traceback)."""
    import duckdb

    (tmp_path / "exports").mkdir()
    duckdb.sql(
        f"""COPY (SELECT {{'address': 'user' || i || '@example.com'}} AS personalEmail,
                 {{'name': {{'firstName': CASE WHEN i = 2 THEN NULL ELSE 'Ann' END}},
                   'lastName': 12345678901234567890123::HUGEINT}} AS person,
                 CASE WHEN i = 1 THEN 'NaN'::DOUBLE ELSE 1.5 END AS score
             FROM range(3) t(i)) TO '{tmp_path}/exports/part-0.parquet' (FORMAT parquet)"""
    )
    sql = _map(tmp_path, python_only=False, spec=PARQUET_SPEC)
    assert sql == _map(tmp_path, python_only=True, spec=PARQUET_SPEC)
    assert sql["counts"][0]["records"] == 3


IDENTITY_MAP_SPEC = {
    **SPEC,
    "sources": [{**SPEC["sources"][0], "identity": "identityMap.Email"}],
}
_ECID = '"ECID": [{"id": "0123", "primary": true}]'
#: `identityMap.Email` on every edge: one entry (SQL), several (Python picks the primary one and
#: counts the others), the namespace in another case or twice, entries that are not plain.
_IDENTITY_EDGES = [
    '{"identityMap": {"Email": [{"id": "a1@example.com"}]}}',
    '{"identityMap": {@ECID@, "Email": [{"id": "A2@Example.com ", "primary": true}]}, '
    '"person": {"name": {"firstName": "Ann"}}}',
    '{"identityMap": {"Email": [{"id": "a3@example.com", "primary": false}]}}',
    '{"identityMap": {"Email": [{"id": "b1@example.com"}, {"id": "b2@example.com", '
    '"primary": true}]}}',
    '{"identityMap": {"Email": [{"id": ""}, {"id": "b3@example.com"}]}}',
    '{"identityMap": {"email": [{"id": "c1@example.com"}]}}',
    '{"identityMap": {"email": [{"id": "c2@example.com"}], "Email": [{"id": "c3@example.com"}]}}',
    '{"identityMap": {"Email": [{"id": "c4@example.com"}], "EMAIL": [{"id": "c5@example.com"}]}}',
    '{"identityMap": {"Email": [{"id": "c6@example.com"}], "Email": [{"id": "c7@example.com"}]}}',
    '{"identityMap": {"\\u0045mail": [{"id": "c8@example.com"}]}}',
    '{"identityMap": {"Émail": [{"id": "c9@example.com"}], "Email": [{"id": "d0@example.com"}]}}',
    '{"identityMap": {"Email": {"id": "d1@example.com"}}}',
    '{"identityMap": {"Email": [{"id": "d2@example.com", "id": "d3@example.com"}]}}',
    '{"identityMap": {"Email": [{"id": 42}]}}',
    '{"identityMap": {"Email": [{"id": null}]}}',
    '{"identityMap": {"Email": ["d4@example.com"]}}',
    '{"identityMap": {"Email": []}}',
    '{"identityMap": {"Email": [{"id": "d5@example.con"}]}}',
    '{"identityMap": []}',
    '{"identityMap": {@ECID@}}',
    '{"personalEmail": {"address": "d6@example.com"}}',
    # every path the mapping reads present: the strict parse reads the namespace's list whole
    '{"identityMap": {"Email": [{"id": "e1@example.com"}]}, @FULL@}',
    '{"identityMap": {"Email": [{"id": "e2@example.com", "id": "e3@example.com"}]}, @FULL@}',
    '{"identityMap": {"Email": [{"id": "e4@example.com"}, {"id": "e5@example.com"}]}, @FULL@}',
    '{"identityMap": {"Email": [{"id": "e6@example.com"}], "email": [{"id": "e7@x.com"}]}, @FULL@}',
    '{"identityMap": {"Email": [{"id": "e8@example.com"}]}, @FULL@, "identityMap": {}}',
]
_FULL = (
    '"person": {"name": {"firstName": "F"}, "lastName": "L"}, "homeAddress": {"city": "x"}, '
    '"segmentMembership": {"ups": {"@SEG@": {"status": "realized"}, "other-1": {"status": '
    '"existing"}}}'
)
IDENTITY_EDGES = [
    edge.replace("@ECID@", _ECID).replace("@FULL@", _FULL).replace("@SEG@", SEGMENT)
    for edge in _IDENTITY_EDGES
]


def _python_lines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the records `ProfileMapper` maps (the lines SQL left to Python)."""
    calls: list[int] = []
    map_row = ProfileMapper.map_row

    def counted(self: ProfileMapper, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return map_row(self, *args, **kwargs)

    monkeypatch.setattr(ProfileMapper, "map_row", counted)
    return calls


def test_an_identity_map_email_takes_the_sql_path_when_it_is_the_only_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profiles.jsonl").write_text(
        "".join(e + "\n" for e in IDENTITY_EDGES), encoding="utf-8"
    )
    spec = make_spec(tmp_path, IDENTITY_MAP_SPEC)
    source = spec.sources[0]
    assert plan_columns(source, ProfileMapper(spec, source, None)) is not None
    python = _map(tmp_path, python_only=True, spec=IDENTITY_MAP_SPEC)
    calls = _python_lines(monkeypatch)
    sql = _map(tmp_path, python_only=False, spec=IDENTITY_MAP_SPEC)
    assert sql == python
    emails = {contact["email"] for contact in sql["contacts"]}
    assert {"a1@example.com", "a2@example.com", "b2@example.com", "b3@example.com"} <= emails
    assert {"c1@example.com", "c2@example.com", "d1@example.com", "e3@example.com"} <= emails
    # The plain single entries (a1..a3, c8 with its key escaped, e1) were mapped in SQL, the
    # rest by Python.
    assert len(calls) == len(IDENTITY_EDGES) - 5
    assert sql["identities_skipped"] == 2  # b1, e4


@st.composite
def identity_line(draw: Any) -> str:
    """A profile line whose `identityMap` holds the Email namespace in various shapes."""
    try:
        profile = json.loads(draw(profile_line()))
    except ValueError:
        profile = {}  # a broken line: its identityMap is the point here
    if not isinstance(profile, dict):
        profile = {}
    entries = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"id": st.one_of(_EMAILS, _VALUE)},
                    optional={"primary": st.sampled_from([True, False, None, "true"])},
                ),
                _VALUE,
            ),
            max_size=3,
        )
    )
    key = draw(st.sampled_from(["Email", "Email", "Email", "email", "EMAIL", "Émail"]))
    identity_map: dict[str, Any] = {key: draw(st.sampled_from([entries, entries, entries[:1]]))}
    if draw(st.booleans()):
        identity_map["ECID"] = [{"id": "42", "primary": True}]
    if draw(st.integers(0, 4)) == 0:
        identity_map[draw(st.sampled_from(["Email", "email"]))] = [{"id": "z@example.com"}]
    profile["identityMap"] = identity_map if draw(st.integers(0, 9)) else draw(_VALUE)
    text = json.dumps(profile, ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from(_MUTATIONS))(text, draw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(identity_line(), min_size=1, max_size=20))
def test_sql_and_python_read_identity_maps_alike(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _profiles_file(Path(tmp), lines)
        spec = IDENTITY_MAP_SPEC
        assert _map(root, python_only=False, spec=spec) == _map(root, python_only=True, spec=spec)
