"""Issue 13: bad specs, lock files, state rows and a full disk end in clear errors, never exit 3."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncdsl.cli import app
from syncdsl.errors import PlanError, StateError
from syncdsl.lang.load import load_spec
from syncdsl.records.desired import build_desired
from syncdsl.state.lockfile import read_lock
from syncdsl.state.locks import ApplyLock
from syncdsl.state.store import StateStore

EXAMPLE = Path(__file__).resolve().parent.parent / "specs"


def _config(tmp_path: Path, text: str | bytes | None = None) -> Path:
    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    spec = tmp_path / "example.sync"
    base = (EXAMPLE / "example.sync").read_text()
    if isinstance(text, bytes):
        spec.write_bytes(text)
    else:
        spec.write_text(base if text is None else text)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"HUBSPOT_TOKEN": "pat-x"})
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_deep_nesting_is_a_positioned_error_in_validate_and_fmt(tmp_path: Path) -> None:
    root = _config(tmp_path, "x {\n" * 1000 + "}\n" * 1000)
    for command in ("validate", "fmt"):
        code, out = _run(command, str(root))
        assert code == 1, out
        assert "example.sync:51:3: error: blocks and lists nest at most 50 deep" in out


def test_lark_parser_state_type_error_is_a_syntax_error(tmp_path: Path) -> None:
    text = (
        (EXAMPLE / "example.sync").read_text().replace("source vip_upload {", "source vip_=pload {")
    )
    code, out = _run("validate", str(_config(tmp_path, text)))
    assert code == 1, out
    assert "example.sync:18:19: error:" in out


def test_non_utf8_file_names_the_bad_byte(tmp_path: Path) -> None:
    root = _config(tmp_path, b'destination hubspot {\n  tier = "caf\xe9"\n}\n')
    code, out = _run("validate", str(root))
    assert code == 1
    assert "example.sync:2:14: error: not UTF-8 text (byte 0xe9)" in out


@pytest.mark.parametrize("path", ["data/" + "a" * 300 + ".jsonl", "data/a\\u0000b.jsonl"])
def test_unusable_data_paths_are_spec_errors(tmp_path: Path, path: str) -> None:
    text = (EXAMPLE / "example.sync").read_text().replace("data/profiles.jsonl", path)
    code, out = _run("validate", str(_config(tmp_path, text)))
    assert code == 1, out
    assert "example.sync:8:11: error: data file path" in out and "is unusable" in out


def test_huge_string_costs_a_short_error(tmp_path: Path) -> None:
    text = (EXAMPLE / "example.sync").read_text()
    text = text.replace('"professional"', '"' + "x" * 5_000_000 + '"')
    code, out = _run("validate", str(_config(tmp_path, text)))
    assert code == 1
    assert "example.sync:4:70001: error: line too long" in out
    assert len(out) < 2_000


def test_long_line_is_shown_cut_around_the_caret(tmp_path: Path) -> None:
    text = (EXAMPLE / "example.sync").read_text()
    text = text.replace('"professional"', '"' + "x" * 60_000 + '"')
    code, out = _run("validate", str(_config(tmp_path, text)))
    assert code == 1 and "unknown tier" in out
    assert len(out) < 2_000


def test_thousands_of_audiences_fit_the_staging_table(tmp_path: Path) -> None:
    text = (EXAMPLE / "example.sync").read_text() + "".join(
        f'\naudience "A{i}" {{\n  source = profiles\n  segment = "s{i}"\n}}\n' for i in range(2100)
    )
    spec = load_spec([_config(tmp_path, text)])
    with build_desired(spec) as desired:
        contacts = list(desired)
        assert contacts and len(desired) == len(contacts)
        assert desired.get(contacts[0].email) == contacts[0]


def test_deleting_apply_lock_does_not_let_a_second_apply_in(tmp_path: Path) -> None:
    with ApplyLock(tmp_path) as lock:
        lock.path.unlink()
        with pytest.raises(PlanError, match=r"another syncdsl apply \(or stream\) is running"):
            ApplyLock(tmp_path).__enter__()
    with ApplyLock(tmp_path):
        pass


def test_local_portal_is_held_by_one_command_even_when_its_lock_file_is_deleted(
    tmp_path: Path,
) -> None:
    root = _config(tmp_path)
    assert _run("apply", str(root), "--local", "--auto-approve")[0] == 0
    portal = root / ".syncdsl" / "local-hubspot.json"
    applied = portal.read_bytes()
    with ApplyLock(root) as lock:  # an `apply --local` that runs
        lock.path.unlink()  # "a stale lock": a user deletes it
        code, out = _run("plan", str(root), "--local", "--refresh")
        assert code == 1, out
        assert "the local HubSpot" in out and "is in use by another syncdsl command" in out
        assert portal.read_bytes() == applied
    code, out = _run("plan", str(root), "--local")
    assert code == 0, out


def test_plan_local_reads_the_local_portal_and_never_writes_it(tmp_path: Path) -> None:
    root = _config(tmp_path)
    assert _run("apply", str(root), "--local", "--auto-approve")[0] == 0
    portal = root / ".syncdsl" / "local-hubspot.json"
    applied, inode = portal.read_bytes(), portal.stat().st_ino  # a save renames a new file
    portal.chmod(0o400)  # a plan that saved the portal would fail here (but for root)
    try:
        for args in (["--refresh"], []):
            code, out = _run("plan", str(root), "--local", *args)
            assert code == 0, out
            assert "No changes" in out
        state_code, out = _run("state", str(root), "--local", "--rebuild")
        assert state_code == 0, out
    finally:
        portal.chmod(0o600)
    assert portal.read_bytes() == applied and portal.stat().st_ino == inode


def test_lock_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "syncdsl.lock").mkdir()
    with pytest.raises(StateError, match="cannot read the lock file"):
        read_lock(tmp_path)


def test_lock_entries_are_validated_with_their_line(tmp_path: Path) -> None:
    lock = tmp_path / "syncdsl.lock"
    entry = '[audiences."seg"]\nproperty = "Bad Name!"\nlabel = "A"\ngroup = "g"\n'
    lock.write_text("version = 1\n\n" + entry)
    with pytest.raises(StateError, match=r"syncdsl.lock:4: audience 'seg': 'Bad Name!'"):
        read_lock(tmp_path)
    lock.write_text("version = 2\n")
    with pytest.raises(StateError, match=r"syncdsl.lock:1: lock file version 2"):
        read_lock(tmp_path)


@pytest.mark.parametrize("properties", ["{not json", '["a"]', '{"a": 1}'])
def test_damaged_state_rows_name_the_rebuild(tmp_path: Path, properties: str) -> None:
    with StateStore.open(tmp_path) as store:
        store._db.execute(
            "INSERT INTO contacts (email, hubspot_id, properties, audiences, applied_at) "
            "VALUES ('a@example.com', '1', ?, '{}', 'now')",
            (properties,),
        )
        with pytest.raises(StateError, match=r"syncdsl state --rebuild"):
            list(store.iter_contacts())


@pytest.mark.parametrize("audiences", ["[1, 2]", '{"a": 5}', "{not json"])
def test_state_command_on_a_damaged_row_is_a_clear_error(tmp_path: Path, audiences: str) -> None:
    root = _config(tmp_path)
    with StateStore.open(root) as store:
        store._db.execute(
            "INSERT INTO contacts (email, hubspot_id, properties, audiences, applied_at) "
            "VALUES ('a@example.com', '1', '{}', ?, 'now')",
            (audiences,),
        )
    code, out = _run("state", str(root))
    assert code == 1, out
    assert "damaged row for 'a@example.com'" in out and "syncdsl state --rebuild" in out


def test_disk_full_mid_apply_is_clear_and_a_rerun_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _config(tmp_path)
    original = StateStore.record

    def full(self: StateStore, contacts: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(StateStore, "record", full)
    code, out = _run("apply", str(root), "--local", "--auto-approve")
    assert code == 1, out
    assert "database or disk is full" in out and "free some space" in out
    monkeypatch.setattr(StateStore, "record", original)
    code, out = _run("apply", str(root), "--local", "--auto-approve")
    assert code == 0, out
    code, out = _run("plan", str(root), "--local", "--refresh", "--detailed-exitcode")
    assert code == 0, out


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_unwritable_state_directory_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    root = _config(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(number, "refused", str(root / ".syncdsl" / "state.db"))

    monkeypatch.setattr("syncdsl.state.store.open_durable", refuse)
    code, out = _run("plan", str(root), "--local")
    assert code == 1, out
    assert ".syncdsl/state.db" in out and "internal error" not in out
    assert json.dumps(out)  # printable


def test_a_read_only_state_directory_is_not_called_a_damaged_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a read-only mount (root ignores permissions, so the test stands in for it)."""
    import syncdsl.state.store

    def read_only(path: Path, schema: str) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(syncdsl.state.store, "open_durable", read_only)
    monkeypatch.setattr(syncdsl.state.store.os, "access", lambda path, mode: False)
    with pytest.raises(StateError) as caught:
        StateStore.open(tmp_path)
    assert "is read-only (its file system or its permissions); make it writable" in str(
        caught.value
    )
    assert "move it away" not in str(caught.value)
