"""Golden error fixtures: each bad spec in tests/fixtures/specs/errors/ renders exactly its .expected.

Regenerate with SYNCDSL_UPDATE_GOLDEN=1 (then read every changed .expected before committing).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncdsl.errors import SpecError
from syncdsl.lang.load import load_spec

ERRORS = Path(__file__).parent / "fixtures" / "specs" / "errors"
UPDATE = os.environ.get("SYNCDSL_UPDATE_GOLDEN") == "1"
CASES = sorted(
    p.name for p in ERRORS.iterdir() if p.suffix == ".sync" or (p.is_dir() and p.name != "data")
)


def _rendered(name: str, monkeypatch: pytest.MonkeyPatch) -> SpecError:
    monkeypatch.chdir(ERRORS)  # paths in messages are relative, as a user would type them
    with pytest.raises(SpecError) as caught:
        load_spec([Path(name)])
    return caught.value


def test_there_are_enough_error_fixtures() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_error_fixture(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    error = _rendered(name, monkeypatch)
    expected = ERRORS / (Path(name).stem + ".expected")
    if UPDATE:
        expected.write_text(error.rendered + "\n", encoding="utf-8")
    assert error.rendered + "\n" == expected.read_text(encoding="utf-8")
    # Every diagnostic is located, and the rendering carries each message once, in file order.
    assert error.diagnostics
    for diagnostic in error.diagnostics:
        assert f": error: {diagnostic.message}" in error.rendered
    keys = [(d.span.file, d.span.line, d.span.column) for d in error.diagnostics]
    assert keys == sorted(keys)


@pytest.mark.parametrize("name", ["literal_token.sync", "syntax_literal_token_not_echoed.sync"])
def test_literal_token_is_never_echoed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    error = _rendered(name, monkeypatch)
    for secret in ("secret", "pat-"):
        assert secret not in error.rendered
        assert secret not in str(error.diagnostics)


def test_literal_token_error_says_what_to_write(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 'env("HUBSPOT_TOKEN")' in _rendered("literal_token.sync", monkeypatch).rendered


def test_many_errors_are_reported_in_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _rendered("many_errors.sync", monkeypatch)
    assert len(error.diagnostics) >= 4


def test_missing_path_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file or directory"):
        load_spec([tmp_path / "nope.sync"])


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"no \.sync files"):
        load_spec([tmp_path])


def test_paths_from_two_directories_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        (tmp_path / name / "x.sync").write_text("")
    with pytest.raises(SpecError, match="one configuration is one directory"):
        load_spec([tmp_path / "a", tmp_path / "b" / "x.sync"])


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.sync"
    spec.write_bytes("# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec([spec])
