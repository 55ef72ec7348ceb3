"""Issue 13, security: files syncdsl writes are never written through a symlink, private ones are
0600, and a saved plan edited after `syncdsl plan` wrote it is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from syncdsl.emulator import Emulator
from syncdsl.errors import UnsafeFileError
from syncdsl.safefile import open_text, write_atomic
from syncdsl.state.lockfile import LockFile, write_lock
from syncdsl.state.locks import ApplyLock
from syncdsl.state.store import StateStore, state_dir
from syncdsl.stream.queue import EventQueue
from tests.scenario import TOKEN, Workspace, workspace
from tests.test_cli_run import run

VICTIM = "precious contents\n"


def _people(n: int) -> list[dict[str, str]]:
    return [{"email": f"p{i}@example.com", "first": f"P{i}", "seg": "realized"} for i in range(n)]


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path.parent / f"{tmp_path.name}-victim.txt"
    victim.write_text(VICTIM)
    return victim


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _refused(result: object, path: str) -> None:
    assert getattr(result, "returncode", None) == 1, result
    stderr = str(getattr(result, "stderr", ""))
    assert f"{path} is a symlink" in stderr and "does not write through symlinks" in stderr
    assert "Traceback" not in stderr and "internal error" not in stderr


# -- symlinks are refused, the file they point to is left alone -------------------------------


def test_symlinked_rejects_file_is_refused_before_hubspot_is_written(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with workspace(tmp_path) as ws:
        ws.write([*_people(2), {"email": "not-an-email", "seg": "realized"}])
        state_dir(ws.root)
        (ws.root / ".syncdsl" / "rejects.jsonl").symlink_to(victim)
        result = run(ws, "apply", ".", "--auto-approve")
        _refused(result, "rejects.jsonl")
        assert victim.read_text() == VICTIM
        assert ws.emulator.all_contacts() == []
        other = ws.root / "mine.jsonl"
        other.symlink_to(victim)
        _refused(run(ws, "apply", ".", "--auto-approve", "--rejects", "mine.jsonl"), "mine.jsonl")
        assert victim.read_text() == VICTIM


def test_rejects_file_is_private_and_an_old_one_is_tightened(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([*_people(1), {"email": "not-an-email", "seg": "realized"}])
        rejects = state_dir(ws.root) / "rejects.jsonl"
        rejects.write_text("old\n")
        rejects.chmod(0o644)
        run(ws, "apply", ".", "--auto-approve", check=True)
        assert "not-an-email" in rejects.read_text()
        assert _mode(rejects) == 0o600
        assert _mode(ws.root / ".syncdsl") == 0o700
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            if (ws.root / ".syncdsl" / name).exists():
                assert _mode(ws.root / ".syncdsl" / name) == 0o600, name


def test_symlinked_apply_lock_is_refused_and_keeps_no_pid(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (state_dir(tmp_path) / "apply.lock").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"apply\.lock is a symlink"):
        ApplyLock(tmp_path).__enter__()
    assert victim.read_text() == VICTIM
    (tmp_path / ".syncdsl" / "apply.lock").unlink()
    with ApplyLock(tmp_path):  # the directory lock was released with the refusal
        assert (tmp_path / ".syncdsl" / "apply.lock").read_text().startswith(f"pid {os.getpid()}: ")


@pytest.mark.parametrize("name", ["state.db", "state.db-wal", "state.db-shm"])
def test_symlinked_state_store_is_refused(tmp_path: Path, name: str) -> None:
    victim = _victim(tmp_path)
    (state_dir(tmp_path) / name).symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=rf"{name} is a symlink"):
        StateStore.open(tmp_path)
    assert victim.read_text() == VICTIM


def test_state_store_and_stream_queue_are_created_private(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.mark_applied()
    queue = EventQueue(state_dir(tmp_path) / "stream-queue.db")
    queue.close()
    for name in ("state.db", "stream-queue.db"):
        assert _mode(tmp_path / ".syncdsl" / name) == 0o600, name
    victim = _victim(tmp_path)
    (tmp_path / ".syncdsl" / "other-queue.db").symlink_to(victim)
    with pytest.raises(UnsafeFileError):
        EventQueue(tmp_path / ".syncdsl" / "other-queue.db")
    assert victim.read_text() == VICTIM


def test_symlinked_saved_plan_is_refused_and_a_saved_plan_is_private(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        (ws.root / "changes.plan").symlink_to(victim)
        _refused(run(ws, "plan", ".", "--out", "changes.plan"), "changes.plan")
        assert victim.read_text() == VICTIM
        run(ws, "plan", ".", "--out", "fresh.plan", check=True)
        assert _mode(ws.root / "fresh.plan") == 0o600
        assert [p.name for p in ws.root.iterdir() if p.name.endswith(".tmp")] == []


def test_symlinked_local_portal_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        (state_dir(ws.root) / "local-hubspot.json").symlink_to(victim)
        for command in (["plan"], ["apply", "--auto-approve"]):
            _refused(run(ws, *command, ".", "--local"), "local-hubspot.json")
        assert victim.read_text() == VICTIM
        (ws.root / ".syncdsl" / "local-hubspot.json").unlink()
        run(ws, "apply", ".", "--local", "--auto-approve", check=True)
        assert _mode(ws.root / ".syncdsl" / "local-hubspot.json") == 0o600


def test_emulator_state_file_symlink_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    link = tmp_path / "portal.json"
    link.symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"portal\.json is a symlink"):
        Emulator(token=TOKEN, state_file=link)
    assert victim.read_text() == VICTIM


def test_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "syncdsl.lock").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"syncdsl\.lock is a symlink"):
        write_lock(tmp_path, LockFile({}))
    assert victim.read_text() == VICTIM
    (tmp_path / "syncdsl.lock").unlink()
    write_lock(tmp_path, LockFile({}))
    assert _mode(tmp_path / "syncdsl.lock") == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_state_directory_linking_outside_the_configuration_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "config"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / ".syncdsl").symlink_to(outside)
    with pytest.raises(UnsafeFileError, match=r"\.syncdsl is a symlink to .*elsewhere, outside"):
        StateStore.open(root)
    assert list(outside.iterdir()) == []
    (root / ".syncdsl").unlink()
    (root / "kept").mkdir()
    (root / ".syncdsl").symlink_to(root / "kept")  # inside the configuration: allowed
    StateStore.open(root).close()
    assert (root / "kept" / "state.db").exists()


def test_helpers_refuse_fifos_and_leave_no_temporary_files(tmp_path: Path) -> None:
    fifo = tmp_path / "rejects.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError, match="is not a regular file"):
        open_text(fifo)
    target = tmp_path / "plan.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two" and _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "rejects.jsonl"]


# -- an edited saved plan is refused ----------------------------------------------------------


def _saved(ws: Workspace) -> tuple[Path, str]:
    path = ws.root / "changes.plan"
    run(ws, "plan", ".", "--out", "changes.plan", check=True)
    return path, path.read_text()


def _edit_value(document: dict[str, object]) -> None:
    changes = document["contact_changes"]
    assert isinstance(changes, list)
    value = next(v for v in changes[0]["changes"] if v["property"] == "firstname")
    value["after"] = "Mallory"


def _add_contact(document: dict[str, object]) -> None:
    changes = document["contact_changes"]
    assert isinstance(changes, list)
    extra = json.loads(json.dumps(changes[0]))
    extra["email"] = "intruder@example.com"
    changes.append(extra)


def _drop_digest(document: dict[str, object]) -> None:
    del document["digest"]


@pytest.mark.parametrize("tamper", [_edit_value, _add_contact, _drop_digest])
def test_edited_saved_plan_is_refused_and_writes_nothing(tmp_path: Path, tamper: object) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(3))
        path, original = _saved(ws)
        document = json.loads(original)
        assert callable(tamper)
        tamper(document)
        path.write_text(json.dumps(document, indent=2, sort_keys=True))
        refused = run(ws, "apply", "changes.plan")
        assert refused.returncode == 1, refused.stderr
        assert "the saved plan was edited after `syncdsl plan` wrote it" in refused.stderr
        assert "run plan again" in refused.stderr
        assert ws.emulator.all_contacts() == []
        assert ws.emulator.get_property("newsletter") is None
        path.write_text(original)
        applied = run(ws, "apply", "changes.plan", check=True)
        assert "3 created" in applied.stdout
        assert "Mallory" not in json.dumps(ws.emulator.all_contacts())


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_null_turned_into_a_number_json_cannot_hold_is_refused(
    tmp_path: Path, constant: str
) -> None:
    """The digest signs canonical JSON, in which such a number would read as null: it must not
    be read at all, in an entry of the streamed list or in the rest of the document."""
    with workspace(tmp_path) as ws:
        ws.write(_people(3))
        path, original = _saved(ws)
        for null in ('"hubspot_id":null', '"limit": null'):
            assert null in original
            path.write_text(original.replace(null, null.replace("null", constant), 1))
            refused = run(ws, "apply", "changes.plan")
            assert refused.returncode == 1, refused.stderr
            assert "not a readable saved plan" in refused.stderr
            assert ws.emulator.all_contacts() == []


def test_a_saved_plan_naming_another_configuration_reads_nothing_there(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:SECRET-LINE:0:0\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.sync").write_text("source SECRET-SPEC {\n")  # would be shown if parsed
    (tmp_path / "ws").mkdir()
    with workspace(tmp_path / "ws") as ws:
        ws.write(_people(2))
        path, original = _saved(ws)
        for configuration, says in (
            (secret, "which is not a directory or a .sync file"),
            (other, "which has no syncdsl state"),
        ):
            document = json.loads(original)
            document["configuration"] = str(configuration)
            path.write_text(json.dumps(document))
            refused = run(ws, "apply", "changes.plan")
            assert refused.returncode == 1, refused.stderr
            assert says in refused.stderr and "SECRET" not in refused.stderr
        with StateStore.open(other):  # a state there: the plan's digest does not match its key
            pass
        refused = run(ws, "apply", "changes.plan")
        assert "the saved plan was made for another state" in refused.stderr
        assert "SECRET" not in refused.stderr
        assert ws.emulator.all_contacts() == []


def test_reformatted_saved_plan_still_applies(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        path, original = _saved(ws)
        path.write_text(json.dumps(json.loads(original)))  # same content, other whitespace
        assert "2 created" in run(ws, "apply", "changes.plan", check=True).stdout


def test_plan_key_belongs_to_the_state(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "a") as first:
        key = first.plan_key()
        first._db.execute("DELETE FROM meta WHERE key = 'plan_secret'")  # a state from before
        renewed = first.plan_key()
    with StateStore.open(tmp_path / "a") as again:
        assert again.plan_key() == renewed != key
    with StateStore.open(tmp_path / "b") as other:
        assert other.plan_key() != renewed
