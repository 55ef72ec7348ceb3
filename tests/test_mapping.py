"""ProfileMapper: identity, field paths, literals, sandboxed Jinja (and its fast path), statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncdsl.errors import SpecError
from syncdsl.hubspot.schema import PropertySchema
from syncdsl.lang import ir
from syncdsl.lang.template_values import TemplateValueError
from syncdsl.records import mapping
from syncdsl.records.mapping import MappedRecord, ProfileMapper, RecordRejected

SEGMENT = "3f2a9c4e-6b1d-4e8a-9f0c-1a2b3c4d5e6f"


def span() -> ir.Span:
    return ir.Span("test.sync", 3, 5, 3, 9)


def path(text: str) -> ir.FieldPath:
    return ir.FieldPath(tuple(text.split(".")), span())


def source(fmt: str, identity: ir.FieldPath, **exprs: ir.Expr) -> ir.Source:
    mappings = tuple(ir.PropertyMapping(prop, expr, span()) for prop, expr in exprs.items())
    return ir.Source(
        "src",
        fmt,
        f"data/src.{fmt}",
        (ir.DataLocation.file(f"data/src.{fmt}", Path(f"/nowhere/src.{fmt}")),),
        identity,
        mappings,
        span(),
    )


def spec(src: ir.Source, *audiences: tuple[str, str | None]) -> ir.Spec:
    destination = ir.Destination(
        "T", "free", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, span()
    )
    return ir.Spec(
        destination,
        (src,),
        tuple(
            ir.Audience(prop, src.name, segment, prop, False, 0.25, span())
            for prop, segment in audiences
        ),
        (),
        (),
        Path("/nowhere"),
    )


def mapper(
    fmt: str = "jsonl",
    *audiences: tuple[str, str | None],
    schema: dict[str, PropertySchema] | None = None,
    **exprs: ir.Expr,
) -> ProfileMapper:
    identity = path("personalEmail.address") if fmt == "jsonl" else ir.FieldPath(("Email",), span())
    src = source(fmt, identity, **exprs)
    return ProfileMapper(spec(src, *audiences), src, schema)


def profile(**fields: Any) -> dict[str, Any]:
    return {"personalEmail": {"address": "Ann@Example.com"}, **fields}


def test_reference_mapping() -> None:
    m = mapper(
        "jsonl",
        ("newsletter", SEGMENT),
        firstname=path("person.name.firstName"),
        phone=path("mobilePhone.number"),
        city=ir.Template("{{ homeAddress.city | title }}", span()),
    )
    record = profile(
        person={"name": {"firstName": "Ann"}},
        mobilePhone={"number": "+1 555"},
        homeAddress={"city": "new york"},
        segmentMembership={"ups": {SEGMENT: {"status": "realized"}}},
    )
    assert m.map(record) == MappedRecord(
        "ann@example.com",
        {"firstname": "Ann", "phone": "+1 555", "city": "New York"},
        {"newsletter": "realized"},
    )


@pytest.mark.parametrize("value", [None, "", "   ", {}, "missing"])
def test_missing_null_and_empty_values_are_not_sent(value: object) -> None:
    m = mapper(first=path("person.first"), city=ir.Template("{{ home.city | title }}", span()))
    fields = {} if value == "missing" else {"person": {"first": value}, "home": {"city": value}}
    if value == {}:
        fields = {"person": None, "home": "not an object"}
    assert m.map(profile(**fields)).properties == {}


def test_paths_into_lists_and_scalars() -> None:
    m = mapper(ecid=path("identityMap.ECID.0.id"), bad=path("a.b.c.d"))
    record = profile(identityMap={"ECID": [{"id": "123"}]}, a={"b": "scalar"})
    assert m.map(record).properties == {"ecid": "123"}


def test_non_text_values_become_text() -> None:
    m = mapper(n=path("n"), f=path("f"), b=path("b"))
    assert m.map(profile(n=42, f=2.50, b=False)).properties == {"n": "42", "f": "2.5", "b": "false"}


def test_csv_columns_are_named_by_the_joined_path() -> None:
    m = mapper(
        "csv",
        ("vip", None),
        first=ir.FieldPath(("First Name",), span()),
        city=path("address.city"),
        tier=ir.LiteralValue("gold", span()),
    )
    record = {"Email": " BOB@example.com", "First Name": "Bob", "address.city": "Oslo"}
    assert m.map(record) == MappedRecord(
        "bob@example.com", {"first": "Bob", "city": "Oslo", "tier": "gold"}, {"vip": "realized"}
    )


@pytest.mark.parametrize(
    ("literal", "prop", "expected"),
    [
        ("customer", None, "customer"),
        (42, PropertySchema("n", "N", "number", "number"), "42"),
        (2.0, PropertySchema("n", "N", "number", "number"), "2"),
        (True, PropertySchema("b", "B", "bool", "booleancheckbox"), "true"),
        (True, None, "true"),
    ],
)
def test_literals(literal: str | float | bool, prop: PropertySchema | None, expected: str) -> None:
    schema = {"x": prop} if prop else None
    m = mapper(schema=schema, x=ir.LiteralValue(literal, span()))
    assert m.map(profile()).properties == {"x": expected}


def test_a_literal_that_cannot_fit_is_a_spec_error_at_construction() -> None:
    schema = {"n": PropertySchema("n", "N", "number", "number")}
    with pytest.raises(SpecError) as caught:
        mapper(schema=schema, n=ir.LiteralValue("lots", span()))
    assert "value for 'n' does not fit: expected a number" in str(caught.value)
    assert caught.value.diagnostics[0].span == span()


def test_a_template_that_does_not_compile_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="template for 'x' does not compile"):
        mapper(x=ir.Template("{{ broken ", span()))


def test_coercion_failures_reject_the_record_with_the_property() -> None:
    schema = {"age": PropertySchema("age", "Age", "number", "number")}
    m = mapper(schema=schema, age=path("age"))
    assert m.map(profile(age="41")).properties == {"age": "41"}
    with pytest.raises(RecordRejected, match="property 'age': expected a number, got 'old'"):
        m.map(profile(age="old"))


@pytest.mark.parametrize(
    ("membership", "expected"),
    [
        ({"segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}}}, {"a": "realized"}),
        ({"segmentMembership": {"ups": {SEGMENT: {"status": "existing"}}}}, {"a": "existing"}),
        ({"segmentMembership": {"ups": {SEGMENT: {"status": "exited"}}}}, {"a": "exited"}),
        (
            {"xdm:segmentMembership": {"ups": {SEGMENT: {"xdm:status": "realized"}}}},
            {"a": "realized"},
        ),
        # An entry without a status is realized: XDM's declared default for xdm:status.
        ({"segmentMembership": {"ups": {SEGMENT: {}}}}, {"a": "realized"}),
        (
            {"segmentMembership": {"ups": {SEGMENT: {"lastQualificationTime": "x"}}}},
            {"a": "realized"},
        ),
        ({"segmentMembership": {"ups": {SEGMENT: {"status": "EXISTING"}}}}, {"a": "existing"}),
        ({"segmentMembership": {"ups": {"other": {"status": "realized"}}}}, {}),
        ({"segmentMembership": {"ups": {}}}, {}),
        ({}, {}),
    ],
)
def test_segment_statuses(membership: dict[str, Any], expected: dict[str, str]) -> None:
    m = mapper("jsonl", ("a", SEGMENT))
    assert m.map(profile(**membership)).audiences == expected


@pytest.mark.parametrize(
    ("membership", "reason"),
    [
        (
            {"segmentMembership": {"ups": {SEGMENT: {"status": "qualified"}}}},
            f"segment {SEGMENT}: status 'qualified' is not one of realized, existing, exited",
        ),
        (
            {"segmentMembership": {"ups": {SEGMENT: "realized"}}},
            f"segment {SEGMENT}: membership is not an object",
        ),
        ({"segmentMembership": []}, "segmentMembership is not an object"),
    ],
)
def test_bad_statuses_reject_the_record(membership: dict[str, Any], reason: str) -> None:
    m = mapper("jsonl", ("a", SEGMENT))
    with pytest.raises(RecordRejected) as caught:
        m.map(profile(**membership))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({}, "no email: field 'personalEmail.address' is missing or empty"),
        (
            {"personalEmail": {"address": ""}},
            "no email: field 'personalEmail.address' is missing or empty",
        ),
        ({"personalEmail": {"address": "x"}}, "invalid email 'x': no @"),
    ],
)
def test_identity_problems_reject_the_record(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ record.__class__.__base__ }}",
        "{{ name.format_map.__globals__ }}",
    ],
)
def test_sandbox_escapes_reject_the_record(template: str) -> None:
    m = mapper(x=ir.Template(template, span()))
    with pytest.raises(
        RecordRejected, match=r"template for 'x' (tried to leave the sandbox|failed)"
    ):
        m.map(profile(name="ann"))


def test_template_failures_reject_only_that_record() -> None:
    m = mapper(q=ir.Template("{{ 100 // d }}", span()))
    assert m.map(profile(d=4)).properties == {"q": "25"}
    with pytest.raises(RecordRejected, match="template for 'q' failed: ZeroDivisionError"):
        m.map(profile(d=0))
    assert m.map(profile(d=5)).properties == {"q": "20"}


def test_templates_see_top_level_fields_and_the_whole_record() -> None:
    m = mapper(
        "csv",
        full=ir.Template("{{ record['First Name'] }} {{ Last }}", span()),
        shout=ir.Template("  {{ Last | upper }}!  ", span()),
    )
    record = {"Email": "a@example.com", "First Name": "Ann", "Last": "Lee"}
    assert m.map(record).properties == {"full": "Ann Lee", "shout": "LEE!"}


def test_data_is_never_evaluated_as_a_template() -> None:
    m = mapper(x=ir.Template("{{ name }}", span()), y=ir.Template("{{ name | upper }} ", span()))
    out = m.map(profile(name="{{ 7 * 7 }}"))
    assert out.properties == {"x": "{{ 7 * 7 }}", "y": "{{ 7 * 7 }}"}


def test_each_template_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = mapping.TEMPLATE_ENVIRONMENT.from_string

    def counting(source: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(mapping.TEMPLATE_ENVIRONMENT, "from_string", counting)
    m = mapper(x=ir.Template("{{ a ~ b }}", span()))
    for index in range(50):
        assert m.map(profile(a=index, b="!")).properties == {"x": f"{index}!"}
    assert calls == ["{{ a ~ b }}"]


def test_simple_templates_take_the_fast_path_and_others_do_not() -> None:
    assert mapping._fast_template("{{ homeAddress.city | title }}", "jsonl") is not None
    assert mapping._fast_template("{{ a.b.c }}", "jsonl") is not None
    for template in [
        "{{ a.items }}",
        "{{ a | title | upper }}",
        "x {{ a }}",
        "{{ a | default('x') }}",
        "{{ range }}",
        "{{ a._private }}",
        "{{ a['b'] }}",
        "{{ record }}",
    ]:
        assert mapping._fast_template(template, "jsonl") is None, template


_KEYS = st.sampled_from(["a", "b", "city", "items", "upper", "range"])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=6,
)
_TEMPLATES = st.sampled_from(
    [
        "{{ a }}",
        "{{ a.b }}",
        "{{ a.b.city }}",
        "{{ a | title }}",
        "{{ a.b | upper }}",
        "{{ city | lower }}",
        "{{ a.city | capitalize }}",
        "{{ b | trim }}",
    ]
)


@settings(max_examples=300)
@given(_TEMPLATES, st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_fast_path_renders_exactly_like_jinja(template: str, record: dict[str, Any]) -> None:
    # Issue 13: a container reaching the text is refused by both, never printed as a repr.
    fast = mapping._fast_template(template, "jsonl")
    assert fast is not None
    slow = mapping.TEMPLATE_ENVIRONMENT.from_string(template)
    try:
        expected = slow.render(record)
    except TemplateValueError:
        with pytest.raises(TemplateValueError):
            fast(record)
        return
    assert fast(record) == expected
