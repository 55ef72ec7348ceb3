"""Issue 17: the pull-request workflow as a new user meets it, through the real CLI.

`syncdsl lock`, `--lock-readonly`, the Markdown plan, `--redact`, guards that show the plan first,
`--fail-on-rejects[=N]`, and the mappings that used to write nothing silently.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.scenario import BASE_SPEC, TOKEN, Workspace, workspace

SYNCDSL = [sys.executable, "-m", "syncdsl"]
NEW_AUDIENCE = """
audience "Loyal" {
  source  = profiles
  segment = "seg-2"
}
"""


def run(ws: Workspace, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSPOT_TOKEN": token, "HUBSPOT_API_BASE": ws.emulator.base_url}
    return subprocess.run(
        [*SYNCDSL, *args], cwd=ws.root, env=env, text=True, capture_output=True, timeout=300
    )


def _people(n: int, seg: str = "realized") -> list[dict[str, str]]:
    return [{"email": f"ann{i}@example.com", "first": f"Annabel{i}", "seg": seg} for i in range(n)]


def _applied(ws: Workspace, profiles: list[dict[str, str]], spec: str = BASE_SPEC) -> None:
    ws.write(profiles, [["vip@example.com", "Acme"]], spec=spec)
    result = run(ws, "apply", ".", "--auto-approve")
    assert result.returncode == 0, result.stderr


def test_pull_request_adding_an_audience_lock_then_lock_readonly_plan(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        _applied(ws, _people(2))
        lock_before = (tmp_path / "syncdsl.lock").read_text()
        ws.write(_people(2), [["vip@example.com", "Acme"]], spec=BASE_SPEC + NEW_AUDIENCE)
        stale = run(ws, "plan", ".", "--lock-readonly", "--detailed-exitcode", "--markdown")
        assert stale.returncode == 1
        assert "syncdsl.lock is out of date" in stale.stderr
        assert "run `syncdsl lock .` and commit" in stale.stderr  # the path it was given
        assert "syncdsl.lock is out of date" in stale.stdout  # the PR comment says so too
        assert stale.stdout.startswith("### syncdsl plan") and "The plan failed" in stale.stdout

        locked = run(ws, "lock", ".")
        assert locked.returncode == 0, locked.stderr
        assert "+ segment:seg-2 -> loyal ('Loyal')" in locked.stdout
        lock_text = (tmp_path / "syncdsl.lock").read_text()
        assert lock_text != lock_before and '[audiences."segment:seg-2"]' in lock_text
        assert ws.emulator.get_property("loyal") is None  # HubSpot is not touched
        assert "is up to date" in run(ws, "lock", ".").stdout

        ci = run(ws, "plan", ".", "--lock-readonly", "--detailed-exitcode", "--markdown")
        assert ci.returncode == 2, ci.stderr  # changes present, not an error
        assert "+ property loyal" in ci.stdout and "out of date" not in ci.stdout
        applied = run(ws, "apply", ".", "--auto-approve")
        assert applied.returncode == 0, applied.stderr
        assert (tmp_path / "syncdsl.lock").read_text() == lock_text  # apply agrees with lock
        assert run(ws, "plan", ".", "--lock-readonly", "--detailed-exitcode").returncode == 0


def test_lock_readonly_allows_the_removal_a_plan_decides(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        _applied(ws, _people(1), spec=BASE_SPEC + NEW_AUDIENCE)
        ws.write(_people(1), [["vip@example.com", "Acme"]], spec=BASE_SPEC)
        result = run(ws, "plan", ".", "--lock-readonly", "--forget-removed", "--detailed-exitcode")
        assert result.returncode == 2, result.stderr
        assert "- segment:seg-2 (loyal, 'Loyal')" in result.stdout


def test_markdown_says_what_was_read_no_changes_lock_removed_and_guards(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(2), [["vip@example.com", "Acme"]])
        first = run(ws, "plan", ".", "--markdown")
        assert first.returncode == 0, first.stderr
        assert "**Refreshed**: HubSpot was read" in first.stdout
        assert (
            "**Lock file changes**" in first.stdout and "`+ upload:uploads -> vip" in first.stdout
        )
        assert "- ✓ mass-exit: passed" in first.stdout
        assert "No changes." not in first.stdout
        _applied(ws, _people(2), spec=BASE_SPEC + NEW_AUDIENCE)
        same = run(ws, "plan", ".", "--markdown")
        assert "**No changes.** HubSpot matches the configuration." in same.stdout
        assert "**Incremental**: compared with the state of the last apply" in same.stdout
        ws.write(_people(2), [["vip@example.com", "Acme"]], spec=BASE_SPEC)
        removed = run(ws, "plan", ".", "--markdown")
        assert "**Removed audiences**" in removed.stdout
        assert "| Loyal | `loyal` | 0 | keep |" in removed.stdout


def test_markdown_is_written_with_the_error_when_the_plan_fails(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(1), spec=BASE_SPEC.replace('tier  = "professional"', 'tier  = "gold"'))
        result = run(ws, "plan", ".", "--markdown")
        assert result.returncode == 1
        assert result.stdout.startswith("### syncdsl plan")
        assert "**The plan failed:**" in result.stdout and "main.sync:3:" in result.stdout
        assert "main.sync:3:" in result.stderr
        ws.write(_people(1), spec=BASE_SPEC)
        refused = run(ws, "plan", ".", "--markdown", token="pat-na1-wrong")
        assert refused.returncode == 1 and "401" in refused.stderr
        assert "**The plan failed:**" in refused.stdout and "401" in refused.stdout


def test_json_and_markdown_together_is_an_error(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(1))
        result = run(ws, "plan", ".", "--json", "--markdown")
        assert result.returncode == 1 and "choose one" in result.stderr
        assert result.stdout == ""


def test_redact_masks_emails_and_values_in_text_markdown_and_json(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(
            [
                *_people(3),
                {"email": "bad@example.com", "seg": "maybe"},
                {"email": "jane-no-at-sign", "seg": "realized"},
            ]
        )
        plain = json.loads(run(ws, "plan", ".", "--json").stdout)
        for args in (("--redact",), ("--redact", "--markdown"), ("--redact", "--json")):
            result = run(ws, "plan", ".", *args)
            assert result.returncode == 0, result.stderr
            assert "example.com" in result.stdout and "a•••@example.com" in result.stdout
            assert "ann0@" not in result.stdout and "Annabel" not in result.stdout
            assert "bad@" not in result.stdout and "maybe" not in result.stdout
            assert "jane-no-at-sign" not in result.stdout  # an invalid address is masked too
        document = json.loads(run(ws, "plan", ".", "--json", "--redact").stdout)
        assert document["summary"] == plain["summary"]  # counts unchanged
        change = document["contact_changes"][0]
        assert change["email"] == "a•••@example.com"
        values = {c["property"]: c["after"] for c in change["changes"]}
        assert values == {"firstname": "[string, 8 chars]", "newsletter": "realized"}
        assert document["rejected"][0]["raw"].startswith("[record, ")
        text = run(ws, "plan", ".", "--redact").stdout
        assert "firstname: [string, 8 chars]" in text


def test_mass_exit_guard_shows_the_plan_with_who_exits_then_refuses(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        _applied(ws, _people(4))
        ws.write([], [["vip@example.com", "Acme"]])
        for command in (
            ("plan", ".", "--markdown"),
            ("plan", "."),
            ("apply", ".", "--auto-approve"),
        ):
            result = run(ws, *command)
            assert result.returncode == 1, command
            assert "ann0@example.com" in result.stdout  # who would exit, before the refusal
            assert "mass-exit guard: audience 'Newsletter' would exit 4 of its 4" in result.stderr
            assert "--allow-mass-exit" in result.stderr
        markdown = run(ws, "plan", ".", "--markdown").stdout
        assert "- ✗ mass-exit: refused" in markdown and "The plan failed" in markdown
        members = [c for c in ws.emulator.all_contacts() if c["email"].startswith("ann")]
        assert len(members) == 4 and all(c["newsletter"] == "realized" for c in members)
        assert run(ws, "plan", ".", "--out", "p.plan").returncode != 0
        assert not (tmp_path / "p.plan").exists()  # a refused plan is not saved
        document = json.loads(run(ws, "plan", ".", "--json").stdout)
        assert document["guards"][0]["status"] == "refused"
        assert document["errors"] and "mass-exit guard" in document["errors"][0]
        allowed = run(ws, "plan", ".", "--allow-mass-exit", "--markdown")
        assert allowed.returncode == 0 and "- ! mass-exit: allowed" in allowed.stdout


def test_fail_on_rejects_with_and_without_n(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        bad = [{"email": "not-an-email", "seg": "realized"}, {"email": "x@y", "seg": "realized"}]
        ws.write(_people(1) + bad)
        assert run(ws, "plan", ".").returncode == 0
        bare = run(ws, "plan", ".", "--fail-on-rejects", "--markdown")
        assert bare.returncode == 1
        assert "2 records rejected, more than --fail-on-rejects allows (0)" in bare.stderr
        assert "profiles.jsonl:2" in bare.stdout and "profiles.jsonl:3" in bare.stdout
        assert run(ws, "plan", ".", "--fail-on-rejects=1").returncode == 1
        assert run(ws, "plan", ".", "--fail-on-rejects=2").returncode == 0
        assert run(ws, "plan", ".", "--max-rejects", "2").returncode == 0
        changes = run(ws, "plan", ".", "--fail-on-rejects=5", "--detailed-exitcode")
        assert changes.returncode == 2
        assert run(ws, "plan", ".", "--fail-on-rejects=-1").returncode == 1


def test_help_shows_flags_without_a_bool_value(tmp_path: Path) -> None:
    for args in ((), ("plan",), ("apply",)):
        result = subprocess.run(
            [*SYNCDSL, *args, "--help"], text=True, capture_output=True, timeout=60
        )
        assert result.returncode == 0
        assert "<bool>" not in result.stdout
        assert re.search(r"--(version|full)\s", result.stdout)
    assert (
        "<path>"
        in subprocess.run(
            [*SYNCDSL, "plan", "--help"], text=True, capture_output=True, timeout=60
        ).stdout
    )


CSV_SPEC = BASE_SPEC.replace("company = Company", "company = `COLUMN`")


def test_csv_column_missing_from_the_header_is_a_plan_error(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(
            _people(1), [["vip@example.com", "Acme"]], spec=CSV_SPEC.replace("COLUMN", "Compnay")
        )
        typo = run(ws, "plan", ".")
        assert typo.returncode == 1
        assert "main.sync:19:15: error: map company: column `Compnay` is not in the header" in (
            typo.stderr
        )
        assert "did you mean `Company`?" in typo.stderr and "^~~~~~~~~" in typo.stderr
        ws.write(
            _people(1), [["vip@example.com", "Acme"]], spec=CSV_SPEC.replace("COLUMN", "company")
        )
        case = run(ws, "plan", ".")
        assert case.returncode == 1
        assert "did you mean `Company`? (column names are case-sensitive)" in case.stderr


def test_jsonl_path_never_present_is_a_warning_with_the_record_count(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace("firstname = first", "firstname = frist")
    with workspace(tmp_path) as ws:
        ws.write(_people(3), spec=spec)
        expected = "none of the 3 records read has a value at `frist` (mapped to firstname)"
        assert expected in run(ws, "plan", ".").stdout
        assert expected in run(ws, "plan", ".", "--markdown").stdout
        warnings = json.loads(run(ws, "plan", ".", "--json").stdout)["warnings"]
        assert any(expected in w and w.startswith("main.sync:10:17:") for w in warnings)


def test_did_you_mean_never_suggests_an_audience_property(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace("company = Company", "newsletters = Company")
    with workspace(tmp_path) as ws:
        ws.write(_people(1), [["vip@example.com", "Acme"]], spec=spec)
        result = run(ws, "plan", ".")
        assert result.returncode == 1 and "'newsletters' is not a HubSpot contact" in result.stderr
        assert "'newsletter'" not in result.stderr
        typo = spec.replace("newsletters = Company", "compnay = Company")
        ws.write(_people(1), [["vip@example.com", "Acme"]], spec=typo)
        assert "did you mean 'company' (string)?" in run(ws, "plan", ".").stderr


def test_changing_an_audience_property_warns_how_to_exit_or_forget(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        _applied(ws, _people(2))
        moved = BASE_SPEC.replace('segment = "seg-1"', 'segment = "seg-1"\n  property = "news"')
        ws.write(_people(2), [["vip@example.com", "Acme"]], spec=moved)
        result = run(ws, "plan", ".", "--markdown")
        assert result.returncode == 0, result.stderr
        assert "moves from HubSpot property 'newsletter' to 'news'" in result.stdout
        assert "--exit-removed" in result.stdout and "To forget the old binding" in result.stdout


DATE_SPEC = BASE_SPEC.replace(
    "firstname = first", "firstname = first\n    birthday = born"
).replace("audience", 'property "birthday" {\n  type = "date"\n}\n\naudience', 1)


def test_dates_are_iso_in_text_and_markdown_and_json_keeps_both(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(
            [{"email": "d@example.com", "born": "1985-03-04", "seg": "realized"}], spec=DATE_SPEC
        )
        text = run(ws, "plan", ".").stdout
        assert 'birthday: "1985-03-04"' in text and "478742400000" not in text
        assert 'birthday: "1985-03-04"' in run(ws, "plan", ".", "--markdown").stdout
        document = json.loads(run(ws, "plan", ".", "--json").stdout)
        change = next(
            c for c in document["contact_changes"][0]["changes"] if c["property"] == "birthday"
        )
        assert change["after"] == "478742400000" and change["after_iso"] == "1985-03-04"


def test_unchanged_counts_only_contacts_that_exist(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([{"email": "bare@example.com"}, {"email": "gone@example.com", "seg": "exited"}])
        result = run(ws, "plan", ".")
        assert "0 to create, 0 to update, 0 to exit, 0 unchanged" in result.stdout


def test_stream_input_missing_warns_then_follows_it_when_it_appears(tmp_path: Path) -> None:
    from tests.test_stream_cli import _profiles, stream_process, wait_for

    with workspace(tmp_path) as ws:
        ws.write([])
        with stream_process(ws, "--input", "later.jsonl", "--window-ms", "10") as (process, _):
            assert process.stderr is not None
            warning = process.stderr.readline()
            assert "Warning: --input later.jsonl does not exist (yet): waiting for it" in warning
            # The follower logs that it waits before the file appears (read up to that line).
            seen = [process.stderr.readline()]
            while '"event": "input_missing"' not in seen[-1] and len(seen) < 20 and seen[-1]:
                seen.append(process.stderr.readline())
            assert '"event": "input_missing"' in seen[-1], seen
            lines = "".join(json.dumps(p) + "\n" for p in _profiles("w", 2))
            (tmp_path / "later.jsonl").write_text(lines)
            wait_for(
                lambda: all(
                    ws.emulator.contact_by_email(f"w{i:04d}@example.com") for i in range(2)
                ),
                what="the events of the file that appeared",
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            logged = process.stderr.read()
        assert '"event": "input_appeared"' in logged


def test_rejects_are_fixed_in_the_rejects_file_and_replayed(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        bad = {"email": "late@example.com", "first": "Late", "seg": "sometimes"}
        ws.write([*_people(1), bad], [["vip@example.com", "Acme"], ["not-an-email", "Beta"]])
        first = run(ws, "apply", ".", "--auto-approve")
        assert first.returncode == 0, first.stderr
        rejects = tmp_path / ".syncdsl" / "rejects.jsonl"
        assert f"--rejects-replay {rejects}" in first.stdout and "fix each `record`" in first.stdout
        fixed = []
        for line in rejects.read_text().splitlines():
            entry = json.loads(line)
            entry["record"] = entry["record"].replace("sometimes", "realized")
            entry["record"] = entry["record"].replace("not-an-email", "beta@example.com")
            fixed.append(json.dumps(entry))
        replay = tmp_path / "fixed.jsonl"
        replay.write_text("\n".join(fixed) + "\n")
        preview = run(ws, "plan", ".", "--rejects-replay", "fixed.jsonl")
        assert "replaying 2 record(s) from fixed.jsonl" in preview.stdout
        assert "2 to create" in preview.stdout
        replayed = run(ws, "apply", ".", "--auto-approve", "--rejects-replay", "fixed.jsonl")
        assert replayed.returncode == 0, replayed.stderr
        late = ws.emulator.contact_by_email("late@example.com")
        beta = ws.emulator.contact_by_email("beta@example.com")
        assert late is not None and late["newsletter"] == "realized"
        assert beta is not None and beta["company"] == "Beta" and beta["vip"] == "realized"
        replay.write_text('{"not": "a rejects entry"}\n')
        broken = run(ws, "apply", ".", "--auto-approve", "--rejects-replay", "fixed.jsonl")
        assert broken.returncode == 1 and "fixed.jsonl:1: not a rejects entry" in broken.stderr


def test_a_declared_property_of_another_type_in_hubspot_is_warned_about(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        "source profiles {",
        'property "score" {\n  type = "number"\n}\n\nsource profiles {',
    ).replace("    firstname = first\n", "    firstname = first\n    score     = first\n")
    with workspace(tmp_path) as ws:
        ws.emulator.create_property(
            {
                "name": "score",
                "label": "Score",
                "type": "string",
                "fieldType": "text",
                "groupName": "contactinformation",
            }
        )
        ws.write(_people(2), spec=spec)
        result = run(ws, "plan", ".", "--json")
        assert result.returncode == 0, result.stderr
        (warning,) = [w for w in json.loads(result.stdout)["warnings"] if "'score'" in w]
        assert "declared as number/number, but HubSpot holds it as string/text" in warning
