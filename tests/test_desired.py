"""Golden cases: source files + a spec description -> desired contacts, rejects, counts."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncdsl.errors import SourceError, SpecError
from syncdsl.hubspot.schema import PropertyOption, PropertySchema
from syncdsl.lang import ir
from syncdsl.records.desired import DesiredSet, build_desired
from syncdsl.records.rejection import write_rejects

CASES = Path(__file__).parent / "fixtures" / "sources"
# UPDATE_GOLDEN=1 rewrites expected.json; review the diff before committing it.
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def span() -> ir.Span:
    return ir.Span("test.sync", 1, 1, 1, 2)


def expression(description: Any) -> ir.Expr:
    """ "a.b" -> path; {"column": "A B"} -> one-part path; {"template": ...}; {"literal": ...}."""
    if isinstance(description, str):
        return ir.FieldPath(tuple(description.split(".")), span())
    if "column" in description:
        return ir.FieldPath((description["column"],), span())
    if "template" in description:
        return ir.Template(description["template"], span())
    return ir.LiteralValue(description["literal"], span())


def make_source(directory: Path, description: dict[str, Any]) -> ir.Source:
    mappings = tuple(
        ir.PropertyMapping(prop, expression(expr), span())
        for prop, expr in description["map"].items()
    )
    return ir.Source(
        name=description["name"],
        format=description["format"],
        path=description["path"],
        locations=(ir.DataLocation.file(description["path"], directory / description["path"]),),
        identity=ir.FieldPath(tuple(description["identity"].split(".")), span()),
        mappings=mappings,
        span=span(),
        consent=make_consent(description.get("consent")),
    )


def make_consent(description: dict[str, Any] | None) -> ir.Consent | None:
    """{"fields": ["consents.marketing.email.val", ...], "allow": ["y"] or absent}"""
    if description is None:
        return None
    fields = tuple(ir.FieldPath(tuple(f.split(".")), span()) for f in description["fields"])
    allow = description.get("allow")
    return ir.Consent(fields, tuple(allow) if allow is not None else None)


def make_audience(description: dict[str, Any]) -> ir.Audience:
    return ir.Audience(
        name=description["name"],
        source=description["source"],
        segment=description["segment"],
        property=description["property"],
        adopt=False,
        mass_exit_threshold=ir.DEFAULT_MASS_EXIT_THRESHOLD,
        span=span(),
    )


def make_spec(directory: Path, description: dict[str, Any]) -> ir.Spec:
    destination = ir.Destination(
        "HUBSPOT_TOKEN", "free", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, span()
    )
    return ir.Spec(
        destination=destination,
        sources=tuple(make_source(directory, source) for source in description["sources"]),
        audiences=tuple(make_audience(audience) for audience in description["audiences"]),
        properties=(),
        files=(directory / "test.sync",),
        root=directory,
    )


def make_schema(description: dict[str, Any]) -> dict[str, PropertySchema] | None:
    if "schema" not in description:
        return None
    return {
        name: PropertySchema(
            name=name,
            label=name.title(),
            type=prop["type"],
            field_type=prop["field_type"],
            options=tuple(PropertyOption(label, value) for label, value in prop.get("options", [])),
        )
        for name, prop in description["schema"].items()
    }


def outcome(desired: DesiredSet) -> dict[str, Any]:
    return {
        "contacts": [
            {
                "email": contact.email,
                "properties": contact.properties,
                "audiences": contact.audiences,
                "provenance": [str(origin) for origin in contact.provenance],
                "withheld": contact.withheld,
            }
            for contact in desired
        ],
        "rejected": [
            {"source": r.source, "file": r.file, "line": r.line, "reason": r.reason, "raw": r.raw}
            for r in desired.rejected
        ],
        "counts": [
            {
                "source": c.source,
                "records": c.records,
                "contributed": c.contributed,
                "merged": c.merged,
                "rejected": c.rejected,
            }
            for c in desired.counts
        ],
        "warnings": desired.warnings,
    }


def build_case(case: Path) -> DesiredSet:
    description = json.loads((case / "spec.json").read_text(encoding="utf-8"))
    return build_desired(make_spec(case, description), make_schema(description))


CASE_NAMES = sorted(path.name for path in CASES.iterdir() if (path / "spec.json").exists())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_case(name: str) -> None:
    case = CASES / name
    with build_case(case) as desired:
        actual = outcome(desired)
    expected_file = case / "expected.json"
    if UPDATE:
        text = json.dumps(actual, indent=2, ensure_ascii=False) + "\n"
        expected_file.write_text(text, encoding="utf-8")
    assert actual == json.loads(expected_file.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_record_lands_in_exactly_one_bucket(name: str) -> None:
    with build_case(CASES / name) as desired:
        for counts in desired.counts:
            assert counts.records == counts.contributed + counts.merged + counts.rejected
            rejected_here = [r for r in desired.rejected if r.source == counts.source]
            assert len(rejected_here) == counts.rejected
            contributed_here = sum(
                1
                for contact in desired
                for entry in contact.provenance
                if entry.file == _path_of(desired, counts.source, name)
            )
            assert contributed_here == counts.contributed


def _path_of(desired: DesiredSet, source: str, name: str) -> str:
    description = json.loads((CASES / name / "spec.json").read_text(encoding="utf-8"))
    return next(s["path"] for s in description["sources"] if s["name"] == source)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_rejects_file_round_trips(name: str, tmp_path: Path) -> None:
    with build_case(CASES / name) as desired:
        written = write_rejects(tmp_path / "rejects.jsonl", desired.rejected)
        lines = (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
        assert written == len(lines) == len(desired.rejected)
        for line, rejected in zip(lines, desired.rejected):
            entry = json.loads(line)
            assert entry.pop("ts").startswith("20")
            assert entry == {
                "stage": "mapping",
                "file": rejected.file,
                "line": rejected.line,
                "source": rejected.source,
                "email": rejected.email,
                "reason": rejected.reason,
                "record": rejected.raw,
            }


def test_rejected_jsonl_records_replay_as_the_original_lines(tmp_path: Path) -> None:
    case = CASES / "jsonl_basics"
    with build_case(case) as desired:
        write_rejects(tmp_path / "rejects.jsonl", desired.rejected)
    original = (case / "profiles.jsonl").read_bytes().decode("utf-8", "replace").lstrip("\ufeff")
    lines = original.splitlines()
    for entry_text in (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(entry_text)
        assert lines[entry["line"] - 1] == entry["record"]


def test_desired_set_is_reiterable_sorted_and_searchable() -> None:
    with build_case(CASES / "across_sources") as desired:
        first = list(desired)
        assert first == list(desired)
        emails = [contact.email for contact in first]
        assert emails == sorted(emails) == list(desired.emails())
        assert len(desired) == len(first)
        for contact in first:
            assert desired.get(contact.email) == contact
        assert desired.get("nobody@example.com") is None
        assert desired.get(" ANN@Example.com ") == desired.get("ann@example.com") is not None


def test_close_removes_the_staging_file() -> None:
    desired = build_case(CASES / "across_sources")
    directory = desired._directory
    assert directory.exists()
    desired.close()
    assert not directory.exists()
    desired.close()  # closing twice is harmless


def test_a_missing_source_file_is_a_source_error(tmp_path: Path) -> None:
    description = {
        "sources": [
            {"name": "gone", "format": "csv", "path": "gone.csv", "identity": "Email", "map": {}}
        ],
        "audiences": [],
    }
    with pytest.raises(SourceError, match=r"gone.csv: file not found"):
        build_desired(make_spec(tmp_path, description))


def test_a_literal_that_does_not_fit_its_property_is_a_spec_error(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"email": "a@example.com"}\n', encoding="utf-8")
    description = {
        "sources": [
            {
                "name": "p",
                "format": "jsonl",
                "path": "p.jsonl",
                "identity": "email",
                "map": {"age": {"literal": "old"}},
            }
        ],
        "audiences": [],
        "schema": {"age": {"type": "number", "field_type": "number"}},
    }
    spec = make_spec(tmp_path, description)
    with pytest.raises(SpecError, match="value for 'age' does not fit: expected a number"):
        build_desired(spec, make_schema(description))


def test_long_strings_pass_up_to_the_hubspot_limit_and_are_rejected_beyond(tmp_path: Path) -> None:
    rows = [
        {"email": "fits@example.com", "bio": "x" * 65_536},
        {"email": "toolong@example.com", "bio": "y" * 65_537},
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (tmp_path / "p.jsonl").write_text(text, encoding="utf-8")
    description = {
        "sources": [
            {
                "name": "p",
                "format": "jsonl",
                "path": "p.jsonl",
                "identity": "email",
                "map": {"bio": "bio"},
            }
        ],
        "audiences": [],
    }
    with build_desired(make_spec(tmp_path, description)) as desired:
        assert [c.email for c in desired] == ["fits@example.com"]
        fits = desired.get("fits@example.com")
        assert fits is not None and len(fits.properties["bio"]) == 65_536
        assert [r.reason for r in desired.rejected] == [
            "property 'bio': 65,537 characters is longer than HubSpot's limit of 65,536"
        ]


def test_many_conflicts_are_summarised(tmp_path: Path) -> None:
    first = "".join(f'{{"email": "u{i}@example.com", "n": "a{i}"}}\n' for i in range(130))
    second = "email,n\n" + "".join(f"u{i}@example.com,b{i}\n" for i in range(130))
    (tmp_path / "a.jsonl").write_text(first, encoding="utf-8")
    (tmp_path / "b.csv").write_text(second, encoding="utf-8")
    description = {
        "sources": [
            {
                "name": "a",
                "format": "jsonl",
                "path": "a.jsonl",
                "identity": "email",
                "map": {"firstname": "n"},
            },
            {
                "name": "b",
                "format": "csv",
                "path": "b.csv",
                "identity": "email",
                "map": {"firstname": "n"},
            },
        ],
        "audiences": [],
    }
    with build_desired(make_spec(tmp_path, description)) as desired:
        assert len(desired.warnings) == 101
        assert desired.warnings[-1] == "conflict: ... and 30 more conflicting values (130 in all)"
        assert all(c.properties["firstname"].startswith("b") for c in desired)


_EMAILS = st.sampled_from(["a@example.com", "A@Example.com ", "b@example.com", "bad", "c@x.org"])
_ROWS = st.lists(
    st.one_of(
        st.builds(lambda e, n: json.dumps({"email": e, "n": n}), _EMAILS, st.text(max_size=3)),
        st.just("{broken"),
        st.just("[1]"),
    ),
    max_size=12,
)


def _valid(line: str) -> bool:
    """A line that makes a contact: a profile with an email and no NUL in its value (a NUL is
    not text: its record is rejected)."""
    if not line.startswith('{"'):
        return False
    profile = json.loads(line)
    return "@" in profile["email"] and "\x00" not in profile["n"]


@settings(max_examples=40, deadline=None)
@given(_ROWS, _ROWS)
def test_counts_reconcile_for_any_mix_of_records(first: list[str], second: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "one.jsonl").write_text("".join(line + "\n" for line in first), encoding="utf-8")
        (root / "two.jsonl").write_text("".join(line + "\n" for line in second), encoding="utf-8")
        description = {
            "sources": [
                {
                    "name": name,
                    "format": "jsonl",
                    "path": f"{name}.jsonl",
                    "identity": "email",
                    "map": {"firstname": "n"},
                }
                for name in ("one", "two")
            ],
            "audiences": [],
        }
        with build_desired(make_spec(root, description)) as desired:
            valid = {
                name: [json.loads(line)["email"].strip().lower() for line in lines if _valid(line)]
                for name, lines in (("one", first), ("two", second))
            }
            for counts, lines in zip(desired.counts, (first, second)):
                emails = valid[counts.source]
                assert counts.records == len(lines)
                assert counts.contributed == len(set(emails))
                assert counts.merged == len(emails) - len(set(emails))
                assert counts.rejected == len(lines) - len(emails)
            assert list(desired.emails()) == sorted(set(valid["one"]) | set(valid["two"]))
            last = {
                name: {
                    json.loads(line)["email"].strip().lower(): json.loads(line)["n"]
                    for line in lines
                    if _valid(line)
                }
                for name, lines in (("one", first), ("two", second))
            }
            for contact in desired:
                # within a source the later record wins whole; across sources the later source
                # wins each property it actually sets (empty values are never sent)
                values = [last[name].get(contact.email) for name in ("one", "two")]
                sent = [value for value in values if value and not value.isspace()]
                assert contact.properties.get("firstname") == (sent[-1] if sent else None)
