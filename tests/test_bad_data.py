"""Issue 13: bad input data is a rejected record (file:line and reason), never an internal error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from syncdsl.emulator import Emulator
from syncdsl.hubspot.schema import PropertySchema
from syncdsl.lang import ir
from syncdsl.records.datafiles import MAGIC
from syncdsl.records.desired import build_desired
from syncdsl.records.sources import read_csv, read_jsonl
from syncdsl.records.values import NUL_REASON, CoercionError, coerce

SEGMENT = "seg-1"
NUMBER = PropertySchema("n", "N", "number", "number")
DATE = PropertySchema("d", "D", "date", "date")
DATETIME = PropertySchema("t", "T", "datetime", "date")
MEMBER = {"segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}}}


def span() -> ir.Span:
    return ir.Span("test.sync", 1, 1, 1, 2)


def expr(text: str) -> ir.Expr:
    if "{{" in text:
        return ir.Template(text, span())
    return ir.FieldPath(tuple(text.split(".")), span())


def make_spec(tmp_path: Path, fmt: str, data: bytes, **mappings: str) -> ir.Spec:
    name = f"data.{fmt}"
    (tmp_path / name).write_bytes(data)
    source = ir.Source(
        "src",
        fmt,
        name,
        (ir.DataLocation.file(name, tmp_path / name),),
        ir.FieldPath(("email",), span()),
        tuple(ir.PropertyMapping(prop, expr(text), span()) for prop, text in mappings.items()),
        span(),
    )
    segment = SEGMENT if fmt == "jsonl" else None
    audience = ir.Audience("A", "src", segment, "aud", False, 0.25, span())
    destination = ir.Destination(
        "T", "free", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, span()
    )
    return ir.Spec(destination, (source,), (audience,), (), (), tmp_path)


def jsonl(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


SCHEMA = {"n": NUMBER, "d": DATE, "t": DATETIME}


def outcome(spec: ir.Spec) -> tuple[list[str], list[tuple[int, str]], tuple[int, ...]]:
    with build_desired(spec, SCHEMA) as desired:
        emails = [contact.email for contact in desired]
        rejects = [(r.line, r.reason) for r in desired.rejected]
        (counts,) = desired.counts
        assert counts.records == counts.contributed + counts.merged + counts.rejected
        return emails, rejects, (counts.records, counts.contributed, counts.rejected)


# --- values HubSpot cannot hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prop", "reason"),
    [
        ("1e999999999", NUMBER, "larger than HubSpot can hold"),
        ("1e-999999999", NUMBER, "closer to zero than HubSpot can hold"),
        (10**400, NUMBER, "larger than HubSpot can hold"),
        ("1.8e308", NUMBER, "larger than"),
        (-999_999_999_999_999, DATETIME, "out of the range HubSpot can hold"),
        ("0001-01-01T00:00:00+01:00", DATETIME, "out of the range"),
        ("253402300800000", DATE, "out of the range"),
        (1e300, DATETIME, "out of the range"),
    ],
)
def test_values_out_of_range_are_coercion_errors(
    value: object, prop: PropertySchema, reason: str
) -> None:
    with pytest.raises(CoercionError, match=reason):
        coerce(value, prop)


@pytest.mark.parametrize(
    ("value", "prop", "expected"),
    [
        ("1.7976931348623157e308", NUMBER, "17976931348623157" + "0" * 292),
        ("-62135596800000", DATETIME, "-62135596800000"),
        ("9999-12-31T23:59:59.999Z", DATETIME, "253402300799999"),
        ("9999-12-31", DATE, "253402214400000"),
        ("0001-01-01", DATE, "-62135596800000"),
    ],
)
def test_the_edges_of_the_ranges_are_accepted(
    value: object, prop: PropertySchema, expected: str
) -> None:
    assert coerce(value, prop) == expected


def test_emulator_answers_400_not_500_for_values_out_of_range() -> None:
    with Emulator(token="t", rate_limits=False) as hubspot, requests.Session() as http:
        for name, kind in (("t", "datetime"), ("n", "number")):
            hubspot.create_property(
                {"name": name, "label": name, "type": kind, "fieldType": "date"}
                | ({"fieldType": "number"} if kind == "number" else {})
                | {"groupName": "contactinformation"}
            )
        http.headers["Authorization"] = "Bearer t"
        url = hubspot.base_url + "/crm/v3/objects/contacts/batch/upsert"
        for name, value in (("t", "-999999999999999"), ("n", "1" * 400)):
            body = {
                "inputs": [{"id": "a@b.com", "idProperty": "email", "properties": {name: value}}]
            }
            response = http.post(url, json=body)
            assert response.status_code == 400, response.text
            assert response.json()["category"] == "VALIDATION_ERROR"
        deep = http.post(url, data=b"[" * 100_000, headers={"Content-Type": "application/json"})
        assert deep.status_code == 400
        odd = http.post(
            hubspot.base_url + "/crm/v3/properties/contacts",
            json={"name": "x", "label": "x", "type": ["string"], "fieldType": "text"},
        )
        assert odd.status_code == 400
        ordered = http.post(
            hubspot.base_url + "/crm/v3/properties/contacts/groups",
            json={"name": "g", "label": "g", "displayOrder": "first"},
        )
        assert ordered.status_code == 400


def test_emulator_reads_back_year_one_with_four_digits() -> None:
    with Emulator(token="t") as hubspot:
        hubspot.create_property(
            {"name": "t", "label": "t", "type": "datetime", "fieldType": "date",
             "groupName": "contactinformation"}
        )  # fmt: skip
        hubspot.seed_contacts([{"email": "a@b.com", "t": "-62135596800000"}])
        contact = hubspot.contact_by_email("a@b.com")
        assert contact is not None and contact["t"] == "0001-01-01T00:00:00.000Z"


# --- one bad record among good ones ------------------------------------------------------------


def test_each_bad_value_rejects_its_record_and_the_others_go_on(tmp_path: Path) -> None:
    good = {"email": "good@example.com", **MEMBER}
    data = jsonl(
        {"email": "a@example.com", "n": "1e999999999", **MEMBER},
        {"email": "b@example.com", "t": -999_999_999_999_999, **MEMBER},
        {"email": "c@example.com", "segmentMembership": {"ups": {SEGMENT: {"status": ["x"]}}}},
        {"email": ["d@example.com"], **MEMBER},
        {"email": "e@example.com", "city": {"a": 1}, **MEMBER},
        {"email": "f@example.com", "job": "CTO at Acme", **MEMBER},
        good,
    )
    data += b'{"email": "g@example.com", "city": "\\ud800"}\n' + b"[" * 100_000 + b"\n"
    spec = make_spec(
        tmp_path,
        "jsonl",
        data,
        n="n",
        t="t",
        city="{{ city }}",
        jobtitle="{{ job.title ~ ' @ ' ~ job.org }}",
    )
    emails, rejects, counts = outcome(spec)
    assert emails == ["good@example.com"]
    assert counts == (9, 1, 8)
    reasons = dict(rejects)
    assert "larger than HubSpot can hold" in reasons[1]
    assert "out of the range HubSpot can hold" in reasons[2]
    assert "status ['x'] is not one of" in reasons[3]
    assert "expected text, got list" in reasons[4]
    assert "an object would be printed" in reasons[5]
    assert "'title' is a method of a str" in reasons[6]
    assert "lone surrogate \\ud800" in reasons[8]
    assert "nested too deeply" in reasons[9]


def test_a_nul_in_a_text_value_rejects_its_record_and_is_never_sent(tmp_path: Path) -> None:
    # The data fuzz (tests/fuzz/data_fuzz.py) found NULs from corrupt files reaching HubSpot.
    data = jsonl(
        {"email": "a@example.com", "city": "Pa\x00ris", **MEMBER},
        {"email": "b@example.com", "city": "Paris", **MEMBER},
    )
    emails, rejects, counts = outcome(make_spec(tmp_path, "jsonl", data, city="city"))
    assert emails == ["b@example.com"]
    assert counts == (2, 1, 1)
    assert rejects == [(1, "property 'city': " + NUL_REASON)]
    csv_spec = make_spec(tmp_path, "csv", b"email,city\nc@example.com,Ly\x00on\n", city="city")
    assert outcome(csv_spec)[1] == [(2, "property 'city': " + NUL_REASON)]
    template = make_spec(tmp_path, "jsonl", data, city="{{ city | upper }}")
    assert outcome(template)[1] == [(1, "property 'city': " + NUL_REASON)]


@pytest.mark.parametrize("prop", [None, PropertySchema("s", "S", "string", "textarea")])
def test_coerce_refuses_a_nul_in_text(prop: PropertySchema | None) -> None:
    with pytest.raises(CoercionError, match="NUL"):
        coerce("one\x00two", prop)
    assert coerce("tab\tand\nnew line", prop) == "tab\tand\nnew line"


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("{{ address }}", {"address": {"city": "Paris"}}),
        ("{{ tags }}", {"tags": ["a", "b"]}),
        ("{{ 'at ' ~ address }}", {"address": {"city": "Paris"}}),
        ("{{ address | title }}", {"address": {"city": "Paris"}}),
        ("{{ name.upper }}", {"name": "ann"}),
        ("{{ name.split(' ') }}", {"name": "ann lee"}),
    ],
)
def test_a_template_never_sends_a_repr(
    tmp_path: Path, template: str, fields: dict[str, Any]
) -> None:
    data = jsonl({"email": "a@example.com", **fields, **MEMBER})
    emails, rejects, _ = outcome(make_spec(tmp_path, "jsonl", data, city=template))
    assert emails == []
    assert len(rejects) == 1 and rejects[0][1].startswith("template for 'city': ")


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("{{ tags | join(', ') }}", {"tags": ["a", "b"]}, "a, b"),
        ("{{ name.upper() }}", {"name": "ann"}, "ANN"),
        ("{{ job.title }}", {"job": {"title": "CTO"}}, "CTO"),
        ("{{ address | tojson }}", {"address": {"c": 1}}, '{"c": 1}'),
        ("{{ tags | length }}", {"tags": [1, 2]}, "2"),
    ],
)
def test_containers_still_render_through_their_filters(
    tmp_path: Path, template: str, fields: dict[str, Any], expected: str
) -> None:
    data = jsonl({"email": "a@example.com", **fields, **MEMBER})
    with build_desired(make_spec(tmp_path, "jsonl", data, city=template), SCHEMA) as desired:
        assert [c.properties for c in desired] == [{"city": expected}]


def test_a_template_literal_lone_surrogate_is_rejected_with_its_reason_not_a_crash(
    tmp_path: Path,
) -> None:
    data = jsonl({"email": "a@example.com", **MEMBER}, {"email": "b@example.com", **MEMBER})
    spec = make_spec(tmp_path, "jsonl", data, city="{{ '\\ud800' if email == 'a@example.com' }}")
    emails, rejects, counts = outcome(spec)
    assert emails == ["b@example.com"]
    assert counts == (2, 1, 1)
    assert rejects[0] == (
        1,
        "template for 'city' makes a lone surrogate (a \\ud800-\\udfff escape), which is not "
        "a character",
    )


def test_an_unforeseen_error_on_one_record_is_a_visible_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncdsl.records import mapping

    original = mapping.ProfileMapper.map_row

    def flaky(self: mapping.ProfileMapper, record: Any) -> Any:
        if record.get("email") == "boom@example.com":
            raise KeyError("surprise")
        return original(self, record)

    monkeypatch.setattr(mapping.ProfileMapper, "map_row", flaky)
    # Records Python maps (SQL maps the plain ones of a jsonl source): all of them, here.
    from syncdsl.records import desired

    monkeypatch.setattr(desired, "plan_columns", lambda source, mapper: None)
    data = jsonl({"email": "boom@example.com", **MEMBER}, {"email": "ok@example.com", **MEMBER})
    emails, rejects, _ = outcome(make_spec(tmp_path, "jsonl", data))
    assert emails == ["ok@example.com"]
    assert rejects == [
        (1, "internal error on this record (KeyError: 'surprise'); please report it")
    ]


# --- csv: an unterminated quote --------------------------------------------------------------


def test_an_unterminated_csv_quote_says_so_and_the_later_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(b'email,company\na@x.com,"Acme\nb@x.com,B\nc@x.com,"C, Inc"\nd@x.com,D\n')
    records = list(read_csv(path))
    assert [(r.line, r.fields) for r in records] == [
        (2, None),
        (3, {"email": "b@x.com", "company": "B"}),
        (4, {"email": "c@x.com", "company": "C, Inc"}),
        (5, {"email": "d@x.com", "company": "D"}),
    ]
    reason = records[0].error or ""
    assert "unterminated quote: the quoted field opened on line 2" in reason
    assert "closed only on line 4" in reason and "2 lines later" in reason


def test_a_csv_quote_that_never_closes_says_how_many_lines_it_would_swallow(
    tmp_path: Path,
) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(b'email,company\na@x.com,"Acme\nb@x.com,B\nc@x.com,C\n')
    records = list(read_csv(path))
    assert [r.line for r in records] == [2, 3, 4]
    assert "never closes: it ran to the end of the file (2 more lines)" in (records[0].error or "")
    assert records[0].raw == 'a@x.com,"Acme'


def test_a_jsonl_surrogate_pair_is_fine_and_an_escaped_backslash_is_not_a_surrogate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": "\\ud83d\\ude00"}\n{"a": "\\\\ud800"}\n{"a": "\\udc00"}\n')
    records = list(read_jsonl(path))
    assert [r.error is None for r in records] == [True, True, False]
    assert records[0].fields == {"a": "\U0001f600"}


# --- random records through the pipeline (bounded) ---------------------------------------------

_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["1e999999999", "-999999999999999", "2024-01-05", "\ud800", "a@b.co"]),
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=5,
)
_STATUS = st.one_of(_VALUE, st.sampled_from(["realized", "existing", "exited", " Realized "]))
_RECORD = st.fixed_dictionaries(
    {
        "email": st.one_of(st.sampled_from(["a@example.com", "b@example.com"]), _VALUE),
        "n": _VALUE,
        "t": _VALUE,
        "city": _VALUE,
        "job": _VALUE,
        "segmentMembership": st.one_of(
            _VALUE,
            st.fixed_dictionaries(
                {
                    "ups": st.fixed_dictionaries(
                        {SEGMENT: st.fixed_dictionaries({"status": _STATUS})}
                    )
                }
            ),
        ),
    }
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    records=st.lists(_RECORD, max_size=6), raw_lines=st.lists(st.binary(max_size=20), max_size=3)
)
def test_random_records_are_contacts_or_rejects_and_counts_reconcile(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[dict[str, Any]],
    raw_lines: list[bytes],
) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    data = b"".join(
        json.dumps(record).encode("utf-8", "surrogatepass") + b"\n" for record in records
    )
    data += b"".join(line.replace(b"\n", b" ") + b"\n" for line in raw_lines)
    # A file that starts as a compressed one does is read as compressed (another test's case).
    assume(not any(data.startswith(magic) for magic in MAGIC.values()))
    spec = make_spec(
        tmp_path, "jsonl", data, n="n", t="t", city="{{ city }}", jobtitle="{{ job.title ~ '@' }}"
    )
    emails, rejects, (total, contributed, rejected) = outcome(spec)
    # Blank lines hold no record: JSON whitespace only, after the BOM a file may start with.
    first = 0 if records else 1
    shown = [
        line.removeprefix(b"\xef\xbb\xbf") if i == first else line
        for i, line in enumerate(raw_lines, start=1)
    ]
    assert total == len(records) + len(raw_lines) - sum(
        1 for line in shown if not line.strip(b" \t\r\n")
    )
    assert rejected == len(rejects)
    assert contributed == len(set(emails)) or contributed >= len(emails)
    assert all(not reason.startswith("internal error") for _, reason in rejects), rejects


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=4), max_size=6),
    cut=st.integers(0, 200),
)
def test_random_csv_rows_are_contacts_or_rejects_and_counts_reconcile(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], cut: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzzcsv")
    text = "email,n,t\n" + "".join(",".join(row) + "\n" for row in rows)
    data = text.encode("utf-8", "surrogatepass")
    data = data[: 10 + cut]  # truncation, often inside a row or a quote
    spec = make_spec(tmp_path, "csv", data, n="n", t="t")
    _, rejects, _ = outcome(spec)
    assert all(not reason.startswith("internal error") for _, reason in rejects), rejects


def test_a_line_of_a_control_character_is_a_broken_record_not_a_blank_line(
    tmp_path: Path,
) -> None:
    """Python calls U+001C whitespace; JSON does not: the line is a record, and a broken one."""
    data = jsonl({"email": "a@example.com", **MEMBER}) + b"\x1c\n" + b" \t\r\n"
    emails, rejects, counts = outcome(make_spec(tmp_path, "jsonl", data))
    assert emails == ["a@example.com"]
    assert counts == (2, 1, 1)
    assert rejects[0][0] == 2 and rejects[0][1].startswith("broken JSON")
