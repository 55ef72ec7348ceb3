"""Parsing valid specs into the IR: golden JSON per spec, the grammar's details, robustness.

Regenerate the golden .json with SYNCDSL_UPDATE_GOLDEN=1 (then review every diff before committing).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syncdsl
from syncdsl.errors import Span, SpecError
from syncdsl.lang.ir import (
    DEFAULT_BASE_URL,
    DEFAULT_PROPERTY_GROUP,
    FieldPath,
    LiteralValue,
    Template,
)
from syncdsl.lang.load import load_spec
from syncdsl.lang.parse import parse_text

REPO = Path(__file__).resolve().parent.parent
VALID = Path(__file__).parent / "fixtures" / "specs" / "valid"
UPDATE = os.environ.get("SYNCDSL_UPDATE_GOLDEN") == "1"

# (directory to run in, path to load, golden file)
GOLDEN = [
    (REPO / "specs", "example.sync", VALID / "example.json"),
    (VALID, "full.sync", VALID / "full.json"),
    (VALID, "minimal.sync", VALID / "minimal.json"),
    (VALID, "multi", VALID / "multi.json"),
]


def to_json(node: Any, base: Path) -> Any:
    """The IR as plain JSON: spans as `file:line:col-line:col`, paths relative to `base`."""
    if isinstance(node, Span):
        return f"{node.file}:{node.line}:{node.column}-{node.end_line}:{node.end_column}"
    if isinstance(node, Path):
        return Path(os.path.relpath(node, base)).as_posix()
    if isinstance(node, str) and os.path.isabs(node):  # a data location's target
        return Path(os.path.relpath(node, base)).as_posix()
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = {f.name: to_json(getattr(node, f.name), base) for f in dataclasses.fields(node)}
        return {"node": type(node).__name__, **fields}
    if isinstance(node, tuple | list):
        return [to_json(item, base) for item in node]
    return node


@pytest.mark.parametrize(("cwd", "target", "golden"), GOLDEN, ids=[g[2].stem for g in GOLDEN])
def test_golden_ir(cwd: Path, target: str, golden: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    # multi/ reads ../data: outside its directory, so the fixture directory is its data root.
    actual = to_json(load_spec([Path(target)], data_root=cwd), cwd)
    if UPDATE:
        golden.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert actual == json.loads(golden.read_text(encoding="utf-8"))


def test_public_load_reads_the_reference_spec() -> None:
    spec = syncdsl.load(REPO / "specs" / "example.sync")
    assert spec.destination.token_env == "HUBSPOT_TOKEN"
    assert spec.destination.limits.per_ten_seconds == 190
    assert [s.name for s in spec.sources] == ["profiles", "vip_upload"]
    assert [(a.property, a.key) for a in spec.audiences] == [
        ("newsletter_subscribers", "segment:3f2a9c4e-6b1d-4e8a-9f0c-1a2b3c4d5e6f"),
        ("vip_customers", "upload:vip_upload"),
    ]
    assert spec.root == REPO / "specs"
    assert spec.source("profiles").locations[0].target == str(
        REPO / "specs" / "data" / "profiles.jsonl"
    )


def test_directory_is_one_configuration_of_its_sync_files() -> None:
    spec = load_spec([VALID / "multi"], data_root=VALID)  # multi/ reads ../data
    assert [f.name for f in spec.files] == ["audiences.sync", "destination.sync", "sources.sync"]
    assert spec.root == (VALID / "multi").resolve()
    assert spec.source("profiles").locations[0].target == str(
        (VALID / "data" / "profiles.jsonl").resolve()
    )


def test_defaults() -> None:
    spec = load_spec([VALID / "minimal.sync"])
    destination = spec.destination
    assert (destination.tier, destination.base_url, destination.property_group) == (
        "free",
        DEFAULT_BASE_URL,
        DEFAULT_PROPERTY_GROUP,
    )
    assert spec.source("uploads").mappings == ()
    assert spec.audiences == () and spec.properties == ()


def test_full_spec_values() -> None:
    spec = load_spec([VALID / "full.sync"])
    mappings = {m.property: m.expr for m in spec.source("profiles").mappings}
    assert isinstance(mappings["loyalty_tier"], Template)
    assert mappings["signup_date"] == FieldPath(
        ("_tenant", "signup date"), mappings["signup_date"].span
    )
    literals = {k: v.value for k, v in mappings.items() if isinstance(v, LiteralValue)}
    assert literals == {
        "nickname": 'Café "friend"\tof\\ours',
        "score": 42,
        "ratio": -5.0,
        "opted_in": True,
        "unsubscribed": False,
    }
    assert type(literals["score"]) is int
    assert spec.destination.base_url == "https://api.eu1.hubapi.com"
    first, members = spec.audiences
    assert first.property == "newsletter_subscribers_eu_2025"
    assert (first.adopt, first.mass_exit_threshold) == (True, 1.0)
    assert (members.property, members.segment, members.adopt) == ("club_members", None, False)
    decls = {p.name: (p.label, p.type, p.field_type, p.options) for p in spec.properties}
    assert decls == {
        "loyalty_tier": ("Loyalty Tier", "enumeration", "select", ("bronze", "silver", "gold")),
        "signup_date": ("signup_date", "date", "date", ()),
        "nickname": ("nickname", "string", "text", ()),
    }


def test_spans_point_at_what_was_written() -> None:
    text = 'destination hubspot {\n  token = env("T")\n}\n'
    document = parse_text(text, "x.sync")
    (block,) = document.items
    assert (block.span.line, block.span.column, block.span.end_line, block.span.end_column) == (
        1,
        1,
        3,
        2,
    )
    (attribute,) = block.items
    assert str(attribute.value.span) == "x.sync:2:11"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment",
        "// only a comment\n\n\n",
        "x {}",
        "x { y = 1 }",
        'x "label" {\n  y = [\n    1,\n    2,\n  ]\n}',
        "x {\r\n  y = a.`b c`.d\r\n}\r\n",
        'x {\n  y = f("a", 1, true, [])\n}',
    ],
)
def test_grammar_accepts(text: str) -> None:
    parse_text(text, "x.sync")


def test_keywords_and_comment_markers_inside_strings_are_text() -> None:
    document = parse_text('a = "# not // a comment { }"\nb = "true"\n', "x.sync")
    values = [item.value.value for item in document.items]  # type: ignore[union-attr]
    assert values == ["# not // a comment { }", "true"]


def _parse_only_raises_spec_errors(text: str) -> None:
    try:
        parse_text(text, "fuzz.sync")
    except SpecError as error:
        assert error.diagnostics and error.rendered.startswith("fuzz.sync")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_raises_only_spec_error(text: str) -> None:
    _parse_only_raises_spec_errors(text)


PIECES = [
    "destination",
    "hubspot",
    "source",
    "audience",
    "map",
    "identity",
    "email",
    "token",
    "=",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ".",
    '"x"',
    '"{{ a }}"',
    '"\\q"',
    '"\\ud800"',
    "`col`",
    "`",
    '"',
    "1",
    "-2.5e3",
    "true",
    "false",
    "env",
    "# c",
    "// c",
    "\n",
    "\r\n",
    " ",
    "\t",
    "'",
    ":",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_token_soup_raises_only_spec_error(pieces: list[str]) -> None:
    _parse_only_raises_spec_errors(" ".join(pieces))


NAMES = [
    "destination",
    "hubspot",
    "source",
    "audience",
    "property",
    "map",
    "identity",
    "email",
    "token",
    "tier",
    "jsonl",
    "csv",
    "segment",
    "adopt",
    "mass_exit_threshold",
    "type",
    "options",
    "field_type",
    "label",
    "base_url",
    "property_group",
    "profiles",
    "x",
    "Bad",
]
VALUES = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(
        [
            '"data/p.jsonl"',
            '"data/u.csv"',
            '"free"',
            '"{{ x }}"',
            '"{% if %}"',
            '"seg"',
            '"enumeration"',
            '"date"',
            '"pat-1"',
            '""',
            'env("T")',
            "env(T)",
            "env()",
            "1",
            "0.5",
            "-1",
            "true",
            "[]",
            '["a", "a"]',
            "[1]",
            "a.`b c`",
            "f(1, 2)",
        ]
    ),
)


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(NAMES))
        if depth < 2 and draw(st.booleans()):
            label = draw(
                st.sampled_from(
                    [
                        "",
                        " hubspot",
                        " profiles",
                        ' "Newsletter"',
                        ' "2024"',
                        ' "loyalty_tier"',
                        " x",
                    ]
                )
            )
            lines.append(f"{name}{label} {{\n{draw(_documents(depth + 1))}}}")
        else:
            qualifier = draw(st.sampled_from(["", "", " email", " phone"]))
            lines.append(f"{name}{qualifier} = {draw(VALUES)}")
    return "".join(line + "\n" for line in lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_documents())
def test_random_documents_validate_or_raise_spec_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    folder = tmp_path_factory.mktemp("random")
    (folder / "data").mkdir()
    (folder / "data" / "p.jsonl").write_text("{}\n")
    (folder / "data" / "u.csv").write_text("Email\n")
    (folder / "random.sync").write_text(text, encoding="utf-8")
    try:
        load_spec([folder / "random.sync"])
    except SpecError as error:
        assert error.diagnostics
