"""`syncdsl fmt`: golden layouts, idempotence, meaning kept (hypothesis), and the CLI commands.

Regenerate the golden .formatted files with SYNCDSL_UPDATE_GOLDEN=1 (then review them).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from syncdsl.cli import app
from syncdsl.errors import Span, SpecError
from syncdsl.hubspot.tiers import TIERS
from syncdsl.lang.fmt import format_text
from syncdsl.lang.load import load_spec

REPO = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).parent / "fixtures" / "specs"
FMT = SPECS / "fmt"
UPDATE = os.environ.get("SYNCDSL_UPDATE_GOLDEN") == "1"
CASES = sorted(p.stem for p in FMT.glob("*.sync"))


def _comments(text: str) -> list[str]:
    """Comment texts, found outside strings and backticks."""
    pattern = r'"(?:[^"\\\n]|\\.)*"|`[^`\n]*`|((?:#|//)[^\r\n]*)'
    return [m.group(1).rstrip() for m in re.finditer(pattern, text) if m.group(1)]


@pytest.mark.parametrize("name", CASES)
def test_golden_layout(name: str) -> None:
    source = (FMT / f"{name}.sync").read_bytes().decode("utf-8")
    formatted = format_text(source, f"{name}.sync")
    expected = FMT / f"{name}.formatted"
    if UPDATE:
        expected.write_bytes(formatted.encode("utf-8"))
    assert formatted == expected.read_bytes().decode("utf-8")
    assert format_text(formatted) == formatted
    assert _comments(formatted) == _comments(source)


def test_reference_spec_is_already_canonical() -> None:
    text = (REPO / "specs" / "example.sync").read_text(encoding="utf-8")
    assert format_text(text) == text


def test_alignment_runs_and_comment_columns() -> None:
    text = "x {\n  a = 1 # one\n  long_name = 2    # two\n\n  b = 3\n  identity email = e\n  cc = 4\n}\n"
    assert format_text(text) == (
        "x {\n"
        "  a         = 1 # one\n"  # the code reached the comment: one space after it
        "  long_name = 2    # two\n"  # hand-placed column kept
        "\n"
        "  b = 3\n"  # a blank line starts a new run
        "  identity email = e\n"  # a qualified attribute is a run of its own
        "  cc = 4\n"
        "}\n"
    )


def test_every_parsable_fixture_is_stable_under_fmt() -> None:
    for path in sorted(SPECS.rglob("*.sync")):
        text = path.read_text(encoding="utf-8")
        try:
            once = format_text(text, path.name)
        except SpecError:
            continue  # syntax-error fixtures
        assert format_text(once, path.name) == once, path
        assert _comments(once) == _comments(text), path


def test_fmt_refuses_syntax_errors() -> None:
    with pytest.raises(SpecError, match="unclosed"):
        format_text('x {\n  a = "b\n}\n', "bad.sync")


# --- hypothesis: generated valid specs keep their meaning through fmt ---------------------------

KEYWORDS = {"true", "false"}
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS
)
columns = st.text(st.sampled_from("abcXYZ _-#.9é"), min_size=1, max_size=8).filter(
    lambda c: c.strip() == c and c
)
segments = st.one_of(identifiers, columns.map(lambda c: f"`{c}`"))
paths = st.lists(segments, min_size=1, max_size=3).map(".".join)
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
    lambda t: "{{" not in t and "{%" not in t
)


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return '"' + "".join(c if c.isprintable() or c == " " else _u_escape(c) for c in escaped) + '"'


def _u_escape(char: str) -> str:
    units = char.encode("utf-16-be")  # astral characters become a surrogate pair of escapes
    return "".join(
        f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
    )


values = st.one_of(
    paths,
    plain_text.map(_quote),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["true", "false", "0.5", "-1.25e2"]),
    st.sampled_from(['"{{ x | upper }}"', '"{% if a %}y{% endif %}"', '"{{ a.b ~ \\"!\\" }}"']),
)


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    """Random whitespace and comments: how a person might have typed the spec."""
    return {
        "indent": draw(st.sampled_from(["", " ", "  ", "    ", "\t"])),
        "eq": draw(st.sampled_from(["=", " = ", "  =   ", "\t= "])),
        "blank": draw(st.sampled_from(["", "\n", "\n\n\n"])),
        "comment": draw(st.sampled_from(["", "  # note", " // note", "\t#"])),
        "line_comment": draw(st.sampled_from(["", "# above\n", "// above\n"])),
    }


@st.composite
def specs(draw: st.DrawFn) -> str:
    look = draw(layouts())
    ind, eq, blank, comment, above = (
        look[k] for k in ("indent", "eq", "blank", "comment", "line_comment")
    )
    lines = [f"{above}destination hubspot {{{comment}"]
    lines.append(
        f'{ind}token{eq}env("{draw(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True))}")'
    )
    if draw(st.booleans()):
        lines.append(f'{ind}tier{eq}"{draw(st.sampled_from(sorted(TIERS)))}"{comment}')
    lines.append("}" + blank)
    names = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
    for index, name in enumerate(names):
        jsonl = draw(st.booleans())
        lines.append(f"{above}source {name} {{")
        data = '"data/p.jsonl"' if jsonl else '"data/u.csv"'
        lines.append(f"{ind}{'jsonl' if jsonl else 'csv'}{eq}{data}{comment}")
        lines.append(f"{ind}identity email{eq}{draw(paths)}")
        targets = draw(
            st.lists(identifiers.filter(lambda t: t != "email"), max_size=4, unique=True)
        )
        if targets:
            lines.append(f"{ind}map {{{comment}")
            for target in targets:
                lines.append(f"{ind}{ind}{target}{eq}{draw(values)}{comment}")
            lines.append(f"{ind}}}{blank}")
        lines.append("}" + blank)
        if draw(st.booleans()):
            lines.append(f'audience "Audience {index} of {name}" {{')
            lines.append(f"{ind}source{eq}{name}{comment}")
            if jsonl:
                lines.append(f'{ind}segment{eq}"segment-{index}"')
            if draw(st.booleans()):
                lines.append(f"{ind}adopt{eq}true")
            lines.append("}")
    if draw(st.booleans()):
        options = draw(
            st.lists(plain_text.filter(bool).map(_quote), min_size=1, max_size=3, unique=True)
        )
        lines.append(f'property "choice"{comment and " "}{{{comment}')
        lines.append(f'{ind}type{eq}"enumeration"')
        if draw(st.booleans()):  # written over several lines, with comments between options
            lines.append(f"{ind}options{eq}[{comment}")
            lines.extend(f"{ind}{ind}{option},{comment}" for option in options)
            lines.append(f"{above}{ind}]")
        else:
            lines.append(f"{ind}options{eq}[{', '.join(options)}]")
        lines.append("}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


def _meaning(node: Any) -> Any:
    """The IR without spans (and without the file, which the test writes twice)."""
    if isinstance(node, Span):
        return None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: _meaning(getattr(node, f.name)) for f in dataclasses.fields(node)}
    if isinstance(node, tuple | list):
        return [_meaning(item) for item in node]
    return node


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fmt")
    (folder / "data").mkdir()
    (folder / "data" / "p.jsonl").write_text("{}\n")
    (folder / "data" / "u.csv").write_text("Email\n")
    return folder


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=specs())
def test_fmt_keeps_meaning_and_is_idempotent(workdir: Path, text: str) -> None:
    spec_file = workdir / "spec.sync"
    spec_file.write_text(text, encoding="utf-8")
    before = _meaning(load_spec([spec_file]))
    formatted = format_text(text, "spec.sync")
    spec_file.write_text(formatted, encoding="utf-8")
    assert _meaning(load_spec([spec_file])) == before
    assert format_text(formatted) == formatted
    assert _comments(formatted) == _comments(text)


# --- CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "specs")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "1 file valid: 1 destination, 2 sources, 2 audiences"


def test_validate_directory_counts_files_and_properties() -> None:
    # multi/ reads ../data, outside its directory: the operator allows that root.
    valid = str(SPECS / "valid")
    result = runner.invoke(app, ["validate", "--data-root", valid, str(SPECS / "valid" / "multi")])
    assert result.stdout.strip() == "3 files valid: 1 destination, 1 source, 1 audience"
    result = runner.invoke(app, ["validate", str(SPECS / "valid" / "full.sync")])
    assert (
        result.stdout.strip() == "1 file valid: 1 destination, 2 sources, 2 audiences, 3 properties"
    )


def test_validate_errors_exit_1_with_every_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(SPECS / "errors")
    result = runner.invoke(app, ["validate", "many_errors.sync"])
    assert result.exit_code == 1
    assert result.stderr == (SPECS / "errors" / "many_errors.expected").read_text()
    assert "Traceback" not in result.output


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    canonical = tmp_path / "ok.sync"
    shutil.copy(REPO / "specs" / "example.sync", canonical)
    messy = tmp_path / "messy.sync"
    shutil.copy(FMT / "messy.sync", messy)
    original = messy.read_text()

    result = runner.invoke(app, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(messy)]
    assert messy.read_text() == original  # --check writes nothing

    result = runner.invoke(app, ["fmt", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [str(messy)]
    assert messy.read_text() == (FMT / "messy.formatted").read_text()
    assert canonical.read_text() == (REPO / "specs" / "example.sync").read_text()

    assert runner.invoke(app, ["fmt", "--check", str(tmp_path)]).exit_code == 0


def test_fmt_with_a_syntax_error_writes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "a.sync"
    shutil.copy(FMT / "messy.sync", messy)
    (tmp_path / "b.sync").write_text("x {\n")
    result = runner.invoke(app, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert "unclosed `{`" in result.stderr
    assert messy.read_text() == (FMT / "messy.sync").read_text()
