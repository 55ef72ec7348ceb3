"""Templates that would exhaust the machine: refused by `validate`, or their records rejected.

Issue 13: `{{ 'x' * 10**9 }}` once took `validate` 21 s and 3.9 GB and was accepted (Jinja folded
the constant at compile time); `((999**999)**999)**999` hung it; `'x'.ljust(10**9)` cost gigabytes
per record. Each is now a positioned spec error, or, when only a record's values make it big, a
rejected record with the reason while the other records are planned.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from syncdsl.errors import SpecError
from syncdsl.lang import ir, template_limits
from syncdsl.lang.load import load_spec
from syncdsl.records.desired import build_desired
from syncdsl.records.mapping import ProfileMapper, RecordRejected

SEGMENT = "seg-1"
MEMBER = {"segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}}}

#: (template, what the error says): every attack of the campaign, and a few of its cousins.
STATIC_ATTACKS = [
    ("{{ 'x' * 10**9 }}", "builds a string of more than 1,000,000 characters"),
    ("{{ 10**9 * 'x' }}", "builds a string of more than 1,000,000 characters"),
    ("{{ ((999**999)**999)**999 }}", "builds a number of more than 4,096 bits"),
    ("{{ 'x'.ljust(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ 'x'.rjust(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ '7'.zfill(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ '{:>999999999}'.format('x') }}", "asks `format` for a width of more than 1,000,000"),
    ("{{ '%999999999d' % 1 }}", "asks `%` for a width of more than 1,000,000"),
    ("{{ 'x' | indent(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ 'x' | center(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ lipsum(10**6) }}", "asks for more than 20 lipsum paragraphs"),
    ("{% for i in range(100000) %}{{ i }}{% endfor %}", "makes a range of more than 10,000"),
    (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "makes more than 100,000 loop iterations and calls",
    ),
    (
        "{% set r = range(5000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
        "makes more than 100,000 loop iterations and calls",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "builds a string of more than 1,000,000 characters",
    ),
    (
        "{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) or '' }}{% endfor %}",
        "builds a list of more than 1,000,000 items",
    ),
    ("{{ 'ab' | replace('', 'x' * 999999) }}", "builds a string of more than 1,000,000"),
    ("{{ [1] | batch(10**9, 'x') | list }}", "builds a list of more than 1,000,000 items"),
    ("{{ 'x'.encode().ljust(10**9) }}", "builds a string of more than 1,000,000 characters"),
    ("{{ {'a': [1]} | tojson(indent=10**9) }}", "asks `tojson` for an indent of more than 16"),
    ("{{ 'a http://a.io' | urlize(target='x' * 999999) }}", "builds a string of more than"),
    ("{{ 'x' * 70000 }}", "produced more than 65,536 characters"),
    ("{{ '\\ud800' }}", "makes a lone surrogate (a \\ud800-\\udfff escape)"),
]


def _spec(tmp_path: Path, mappings: dict[str, str]) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "profiles.jsonl").write_text("")
    lines = "\n".join(f"    {prop} = {json.dumps(text)}" for prop, text in mappings.items())
    spec = tmp_path / "main.sync"
    spec.write_text(
        'destination hubspot {\n  token = env("HUBSPOT_TOKEN")\n}\n\n'
        'source profiles {\n  jsonl          = "data/profiles.jsonl"\n'
        f"  identity email = personalEmail.address\n  map {{\n{lines}\n  }}\n}}\n"
    )
    return spec


@pytest.mark.parametrize(("template", "reason"), STATIC_ATTACKS)
def test_validate_refuses_the_template_with_a_positioned_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _spec(tmp_path, {"city": template})
    with pytest.raises(SpecError) as caught:
        load_spec([Path("main.sync")])
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column) == (9, 12)
    assert diagnostic.message.startswith(f"the template for `city` {reason}")
    head, line, caret = caught.value.rendered.split("\n")
    assert head.startswith("main.sync:9:12: error: the template for `city`")
    assert line == f"    city = {json.dumps(template)}"
    assert caret == " " * 11 + "^" + "~" * (len(json.dumps(template)) - 1)


def test_syncdsl_validate_exits_1_naming_every_such_template(tmp_path: Path) -> None:
    attacks = {f"p{index}": template for index, (template, _) in enumerate(STATIC_ATTACKS)}
    _spec(tmp_path, {"city": "{{ homeAddress.city | title }}", **attacks})
    result = subprocess.run(
        [sys.executable, "-m", "syncdsl", "validate", "main.sync"],
        cwd=tmp_path,
        env={"HUBSPOT_TOKEN": "pat-na1-test", "PATH": "/usr/bin:/bin"},
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    for index, (_, reason) in enumerate(STATIC_ATTACKS):
        assert f"main.sync:{10 + index}:" in result.stderr
        assert f"the template for `p{index}` {reason}" in result.stderr
    assert "`city`" not in result.stderr  # the ordinary template is fine


@pytest.mark.parametrize(
    "template",
    [
        "{{ homeAddress.city | title }}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
        "{{ '%05d' % 42 }} {{ '{:>6}'.format('ab') }} {{ 'ab'.ljust(4) }}|",
        "{{ 'ab' | center(6) }} {{ ['a', 'b'] | join(', ') }} {{ 2 ** 10 }}",
        "{{ 'x' * 65536 }}",
    ],
)
def test_ordinary_templates_pass_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _spec(tmp_path, {"city": template})
    load_spec([Path("main.sync")])


# --- at run time: the record's values make the template too big -------------------------------


def span() -> ir.Span:
    return ir.Span("test.sync", 1, 1, 1, 2)


def _run_spec(tmp_path: Path, records: list[dict[str, Any]], **templates: str) -> ir.Spec:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    source = ir.Source(
        "src",
        "jsonl",
        "data.jsonl",
        (ir.DataLocation.file("data.jsonl", data),),
        ir.FieldPath(("email",), span()),
        tuple(
            ir.PropertyMapping(prop, ir.Template(text, span()), span())
            for prop, text in templates.items()
        ),
        span(),
    )
    audience = ir.Audience("A", "src", SEGMENT, "aud", False, 0.25, span())
    destination = ir.Destination(
        "T", "free", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, span()
    )
    return ir.Spec(destination, (source,), (audience,), (), (), tmp_path)


def _outcome(spec: ir.Spec) -> tuple[dict[str, dict[str, str]], dict[int, str]]:
    with build_desired(spec, {}) as desired:
        contacts = {contact.email: dict(contact.properties) for contact in desired}
        return contacts, {r.line: r.reason for r in desired.rejected}


RUNTIME_ATTACKS = [
    ({"n": 10**9}, "{{ city.ljust(n) }}", "builds a string of more than 1,000,000 characters"),
    ({"n": 10**9}, "{{ city.zfill(n) }}", "builds a string of more than 1,000,000 characters"),
    ({"n": 10**9}, "{{ city * n }}", "builds a string of more than 1,000,000 characters"),
    ({"n": 10**9}, "{{ city | indent(n) }}", "builds a string of more than 1,000,000 characters"),
    ({"n": 999}, "{{ ((n ** n) ** n) ** n }}", "builds a number of more than 4,096 bits"),
    (
        {"w": "{:>999999999}"},
        "{{ (w | default('{}')).format(city) }}",
        "asks `format` for a width of more than 1,000,000 characters",
    ),
    (
        {"n": 10**6},
        "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}",
        "makes a range of more than 10,000 numbers",
    ),
    (
        {"n": 5000},
        "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}",
        "makes more than 100,000 loop iterations and calls",
    ),
    ({"n": 70000}, "{{ city * n }}", "produced more than 65,536 characters"),
    ({"n": 7}, "{{ '\\udc00' if n == 7 else city }}", "makes a lone surrogate"),
]


@pytest.mark.parametrize(("fields", "template", "reason"), RUNTIME_ATTACKS)
def test_a_record_that_makes_the_template_too_big_is_rejected_and_the_others_planned(
    tmp_path: Path, fields: dict[str, Any], template: str, reason: str
) -> None:
    records = [
        {"email": "ok@example.com", "city": "x", "n": 3, **MEMBER},
        {"email": "big@example.com", "city": "x", **fields, **MEMBER},
        {"email": "ok2@example.com", "city": "y", "n": 2, **MEMBER},
    ]
    contacts, rejects = _outcome(_run_spec(tmp_path, records, city=template))
    assert set(contacts) == {"ok@example.com", "ok2@example.com"}
    assert rejects == {2: rejects[2]}
    assert rejects[2].startswith(f"template for 'city' {reason}")


def test_the_output_cap_names_the_property_as_the_reason() -> None:
    mapper = _mapper("{{ 'x' * n }}")
    assert mapper.map(_record(n=65_536)).properties == {"city": "x" * 65_536}
    with pytest.raises(RecordRejected) as caught:
        mapper.map(_record(n=65_537))
    assert caught.value.reason == "template for 'city' produced more than 65,536 characters"


def test_a_render_past_its_time_is_rejected_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mapper = _mapper("{% for i in range(3) %}{{ i }}{% endfor %}")
    assert mapper.map(_record()).properties == {"city": "012"}
    monkeypatch.setattr(template_limits, "MAX_RENDER_MS", -1)  # a deadline already past
    with pytest.raises(RecordRejected) as caught:
        mapper.map(_record())
    assert caught.value.reason == "template for 'city' took longer than -1 ms"


def test_a_macro_that_calls_itself_into_an_explosion_is_stopped() -> None:
    mapper = _mapper(
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(depth) }}"
    )
    assert mapper.map(_record(depth=3)).properties == {}
    with pytest.raises(RecordRejected, match=r"^template for 'city' (makes more than|took)"):
        _limited_steps(mapper, depth=40)


def _limited_steps(mapper: ProfileMapper, **fields: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(template_limits, "MAX_STEPS", 1_000)  # keeps the test fast
        mapper.map(_record(**fields))


def _mapper(template: str) -> ProfileMapper:
    source = ir.Source(
        "src",
        "jsonl",
        "data.jsonl",
        (ir.DataLocation.file("data.jsonl", Path("data.jsonl")),),
        ir.FieldPath(("email",), span()),
        (ir.PropertyMapping("city", ir.Template(template, span()), span()),),
        span(),
    )
    destination = ir.Destination(
        "T", "free", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, span()
    )
    return ProfileMapper(ir.Spec(destination, (source,), (), (), (), Path()), source)


def _record(**fields: Any) -> dict[str, Any]:
    return {"email": "ann@example.com", **fields}


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("{{ '%05d' % n }}", {"n": 42}, "00042"),
        ("{{ '{:>5}|'.format(s) }}", {"s": "ab"}, "ab|"),
        ("{{ s.ljust(4) ~ '|' }}", {"s": "ab"}, "ab  |"),
        ("{{ s | center(6) ~ '|' }}", {"s": "ab"}, "ab  |"),
        ("{{ tags | join(', ') }}", {"tags": ["a", "b"]}, "a, b"),
        ("{{ s | replace('a', 'A') }}", {"s": "banana"}, "bAnAnA"),
        ("{{ s | indent(2, true) }}", {"s": "a\nb"}, "a\n  b"),
        ("{{ n ** 3 + 1 }}", {"n": 2}, "9"),
        ("{{ ([s] * 2) | join }}", {"s": "ab"}, "abab"),
        ("{{ (s * 2) + 'c' }}", {"s": "ab"}, "ababc"),
        ("{{ '%s-%s' | format(s, n) }}", {"s": "ab", "n": 1}, "ab-1"),
        ("{{ [[1], [2]] | sum(start=[]) | join }}", {}, "12"),
        ("{{ 'a\tb'.expandtabs(2) }}", {}, "a b"),
        ("{{ {'a': 1} | tojson(indent=2) }}", {}, '{\n  "a": 1\n}'),
        ("{% set l = [1] %}{{ l.extend(l | map('string')) or l | join }}", {}, "11"),
        ("{% for x in tags %}{{ loop.index }}{{ x }}{% endfor %}", {"tags": ["a", "b"]}, "1a2b"),
    ],
)
def test_ordinary_templates_render_as_before(
    template: str, fields: dict[str, Any], expected: str
) -> None:
    assert _mapper(template).map(_record(**fields)).properties == {"city": expected}
