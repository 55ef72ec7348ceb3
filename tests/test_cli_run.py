"""The plan/apply/state CLI as a user runs it: real subprocesses against an emulator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncdsl.emulator import Emulator
from syncdsl.state.locks import ApplyLock
from tests.scenario import TOKEN, Workspace, workspace

SYNCDSL = [sys.executable, "-m", "syncdsl"]


def run(
    ws: Workspace, *args: str, token: str = TOKEN, check: bool = False, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSPOT_TOKEN": token, "HUBSPOT_API_BASE": ws.emulator.base_url}
    result = subprocess.run(
        [*SYNCDSL, *args],
        cwd=ws.root,
        env=env,
        text=True,
        capture_output=True,
        input=stdin if stdin is not None else "",
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _people(n: int) -> list[dict[str, str]]:
    return [
        {"email": f"k{i:05d}@example.com", "first": f"K{i}", "seg": "realized"} for i in range(n)
    ]


def test_plan_apply_plan_cycle_and_exit_codes(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(5), [["vip@example.com", "Acme"]])
        first = run(ws, "plan", ".", "--detailed-exitcode")
        assert first.returncode == 2, first.stderr
        assert "Plan: 3 schema changes, 6 to create" in first.stdout
        refused = run(ws, "apply", ".")
        assert refused.returncode == 1
        assert "--auto-approve" in refused.stderr
        assert ws.emulator.all_contacts() == []
        applied = run(ws, "apply", ".", "--auto-approve", "--json", check=True)
        assert json.loads(applied.stdout)["created"] == 6
        assert run(ws, "plan", ".", "--detailed-exitcode").returncode == 0
        assert run(ws, "plan", ".", "--refresh", "--detailed-exitcode").returncode == 0
        assert (tmp_path / "syncdsl.lock").exists()
        assert run(ws, "plan", ".", "--lock-readonly").returncode == 0
        state = run(ws, "state", ".", check=True)
        assert "Contacts:       6" in state.stdout


def test_saved_plan_is_applied_exactly_then_refused_as_stale(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(3))
        run(ws, "plan", ".", "--out", "changes.plan", check=True)
        ws.emulator.seed_contacts([{"email": "outsider@example.com"}])
        applied = run(ws, "apply", "changes.plan", check=True)
        assert "3 created" in applied.stdout
        stale = run(ws, "apply", "changes.plan")
        assert stale.returncode == 1 and "state moved on" in stale.stderr


def test_plan_json_and_markdown(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        document = json.loads(run(ws, "plan", ".", "--json", check=True).stdout)
        assert document["format_version"] == 1
        assert document["summary"]["create"] == 2
        assert list(document) == sorted(document)
        change = document["contact_changes"][0]
        assert change["changes"][0] == {"after": "K0", "before": None, "property": "firstname"}
        markdown = run(ws, "plan", ".", "--markdown", check=True).stdout
        assert markdown.startswith("### syncdsl plan") and "| create | 2 |" in markdown


def test_token_never_appears_anywhere(tmp_path: Path) -> None:
    secret = "pat-na1-" + "9" * 32
    with Emulator(token=secret, rate_limits=False) as emulator:
        ws = Workspace(tmp_path, emulator)
        ws.write(_people(3), [["x@example.com", "Acme"]])
        outputs = [
            run(ws, "plan", ".", token=secret),
            run(ws, "apply", ".", "--auto-approve", token=secret),
            run(ws, "plan", ".", "--json", "--refresh", token=secret),
            run(ws, "state", ".", token=secret),
            run(ws, "apply", ".", "--auto-approve", token="pat-na1-wrong-" + "8" * 24),
            run(ws, "apply", ".", "--auto-approve", "--debug", token="pat-na1-wrong-" + "7" * 24),
        ]
        assert outputs[1].returncode == 0, outputs[1].stderr
        assert outputs[4].returncode == 1 and "401" in outputs[4].stderr
        for result in outputs:
            for text in (result.stdout, result.stderr):
                assert secret not in text and "8" * 24 not in text and "7" * 24 not in text
        for path in tmp_path.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret.encode() not in data, path
                assert b"Bearer" not in data, path


def test_missing_token_variable_is_explained(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(1))
        result = run(ws, "plan", ".", token="")
        assert result.returncode == 1
        assert "HUBSPOT_TOKEN is not set" in result.stderr
        assert "Traceback" not in result.stderr


def test_concurrent_apply_is_refused_by_the_cli(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(1))
        with ApplyLock(tmp_path):
            result = run(ws, "apply", ".", "--auto-approve")
        assert result.returncode == 1
        assert "another syncdsl apply (or stream) is running" in result.stderr


def _state_count(root: Path) -> int:
    path = root / ".syncdsl" / "state.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_apply_then_resume_loses_nothing(tmp_path: Path) -> None:
    people = _people(3000)
    with workspace(tmp_path, latency=0.05) as ws:
        ws.write(people)
        env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": ws.emulator.base_url}
        process = subprocess.Popen(
            [*SYNCDSL, "apply", ".", "--auto-approve", "--parallelism", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while _state_count(tmp_path) < 600 and process.poll() is None:
            assert time.monotonic() < deadline, "apply made no progress"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        journaled = _state_count(tmp_path)
        assert 0 < journaled < 3000, "the kill must land mid-apply"
        first_run_batches = ws.emulator.count("contacts.batch_upsert")

        resumed = run(ws, "apply", ".", "--auto-approve", "--json", check=True)
        report = json.loads(resumed.stdout)
        # The resume refreshes (the first run's plan was a refresh): batches that reached HubSpot
        # but not the journal before the kill are found up to date, not sent again.
        sent_again = report["created"] + report["updated"]
        assert 3000 - journaled - 2 * 100 <= sent_again <= 3000 - journaled
        total_batches = ws.emulator.count("contacts.batch_upsert")
        # Everything journaled is skipped; only batches in flight at the kill are sent twice.
        assert total_batches - 30 <= 2
        assert first_run_batches >= journaled // 100
        contacts = {c["email"]: c for c in ws.emulator.all_contacts()}
        for person in people:
            assert contacts[person["email"]]["firstname"] == person["first"]
        assert run(ws, "plan", ".", "--refresh", "--detailed-exitcode").returncode == 0


@pytest.mark.parametrize("args", [["plan", "--help"], ["apply", "--help"], ["state", "--help"]])
def test_help(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run([*SYNCDSL, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage" in result.stdout


def test_state_rebuild_from_hubspot(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(7), [["vip@example.com", "Acme"]])
        run(ws, "apply", ".", "--auto-approve", check=True)
        (tmp_path / ".syncdsl" / "state.db").unlink()
        ws.emulator.set_contact_property("k00001@example.com", "firstname", "Edited")
        rebuilt = run(ws, "state", ".", "--rebuild", check=True)
        assert "8 contacts tracked" in rebuilt.stdout
        assert "Contacts:       8" in rebuilt.stdout
        ws.emulator.reset_counters()
        # The rebuilt state holds what HubSpot has, so the incremental plan re-asserts the edit
        # without reading a single contact.
        plan = json.loads(run(ws, "plan", ".", "--json", check=True).stdout)
        assert plan["refreshed"] is False
        assert [(c["email"], c["changes"]) for c in plan["contact_changes"]] == [
            ("k00001@example.com", [{"after": "K1", "before": "Edited", "property": "firstname"}])
        ]
        assert ws.emulator.count("contacts.batch_read") == 0


def test_saved_local_plan_applies_locally_and_a_new_target_refreshes(tmp_path: Path) -> None:
    """`--local` plans remember their target; switching HubSpot makes plans refresh."""
    specs = Path(__file__).parents[1] / "specs"
    (tmp_path / "data").mkdir()
    for name in ("example.sync", "data/profiles.jsonl", "data/vip_upload.csv"):
        (tmp_path / name).write_bytes((specs / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("HUBSPOT_TOKEN", "HUBSPOT_API_BASE")}

    def cli(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SYNCDSL, *args],
            cwd=tmp_path,
            env={**env, **(extra or {})},
            text=True,
            capture_output=True,
            timeout=300,
            check=False,
        )

    saved = cli("plan", ".", "--local", "--out", "p.plan")
    assert "syncdsl apply p.plan --local" in saved.stdout
    applied = cli("apply", "p.plan")
    assert applied.returncode == 0, applied.stderr
    assert "12 created" in applied.stdout
    with Emulator(token=TOKEN, rate_limits=False) as other:
        target = {"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": other.base_url}
        first = cli("apply", ".", "--auto-approve", "--json", extra=target)
        assert json.loads(first.stdout)["created"] == 12
        back = cli("plan", ".", "--local", "--json")
        assert json.loads(back.stdout)["refreshed"] is True  # the state tracked the other HubSpot
        assert json.loads(back.stdout)["summary"]["unchanged"] == 12


def test_json_errors_are_error_reports_on_stdout(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        refused = run(ws, "plan", ".", "--json", token="pat-na1-wrong-token-0000")
        assert refused.returncode == 1
        error = json.loads(refused.stdout)["error"]
        assert error["type"] == "HubSpotAuthError" and error["exit_code"] == 1
        assert error["details"]["status"] == 401
        assert "wrong-token" not in refused.stdout + refused.stderr
        assert "Error:" in refused.stderr  # people still read it on stderr
        (tmp_path / "main.sync").write_text(
            (tmp_path / "main.sync").read_text().replace("tier  =", "tierr =")
        )
        for args in (["plan"], ["apply", "--auto-approve"]):
            spec = run(ws, *args, ".", "--json")
            (diagnostic,) = json.loads(spec.stdout)["error"]["details"]["diagnostics"]
            assert (diagnostic["file"].endswith("main.sync"), diagnostic["line"]) == (True, 3)
            assert json.loads(spec.stdout)["error"]["type"] == "SpecError"


def test_a_json_plan_that_fails_after_it_is_shown_prints_one_document(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(2))
        run(ws, "apply", ".", "--auto-approve", check=True)
        ws.write([])  # every member leaves: the mass-exit guard refuses, after the plan
        refused = run(ws, "plan", ".", "--json")
        assert refused.returncode == 1
        document = json.loads(refused.stdout)  # one document: the plan, with its errors
        assert "error" not in document and document["errors"]
