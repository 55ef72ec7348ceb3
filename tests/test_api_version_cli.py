"""Issue 12: every command, as a user runs it, on each API version; and 2026-09 validation rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncdsl.hubspot.client import ApiPaths
from tests.scenario import BASE_SPEC, workspace
from tests.test_cli_run import run

VERSIONS = ("v3", "2026-03", "2026-09")


def _spec(version: str) -> str:
    return BASE_SPEC.replace(
        '  tier  = "professional"\n', f'  tier  = "professional"\n  api_version = "{version}"\n'
    )


def _people(n: int, *, seg: str = "realized", first: str = "P") -> list[dict[str, str]]:
    return [
        {"email": f"p{i:03d}@example.com", "first": f"{first}{i}", "city": "oslo", "seg": seg}
        for i in range(n)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_command_speaks_the_declared_api_version(tmp_path: Path, version: str) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(30), [["vip@example.com", "Acme"]], spec=_spec(version))
        run(ws, "validate", ".", check=True)
        first = run(ws, "plan", ".", "--detailed-exitcode")
        assert first.returncode == 2, first.stderr
        applied = json.loads(run(ws, "apply", ".", "--auto-approve", "--json", check=True).stdout)
        assert applied["created"] == 31
        # Updates (echoing no email) and exits are journaled: the next plans are empty.
        people = _people(30)
        for person in people[:7]:
            person["first"] += "x"
        for person in people[7:10]:
            person["seg"] = "exited"
        ws.write(people, [["vip@example.com", "Acme"]])
        second = json.loads(run(ws, "apply", ".", "--auto-approve", "--json", check=True).stdout)
        assert (second["created"], second["updated"], second["exited"]) == (0, 7, 3)
        assert run(ws, "plan", ".", "--detailed-exitcode").returncode == 0
        assert run(ws, "plan", ".", "--refresh", "--detailed-exitcode").returncode == 0
        run(ws, "state", ".", "--rebuild", check=True)
        assert run(ws, "plan", ".", "--detailed-exitcode").returncode == 0
        run(ws, "lock", ".", check=True)

        contact = ws.emulator.contact_by_email("p003@example.com")
        assert contact is not None and contact["firstname"] == "P3x"
        assert contact["newsletter"] == "realized"
        exited = ws.emulator.contact_by_email("p008@example.com")
        assert exited is not None and exited["newsletter"] == "exited"
        # Every request went to the declared version's paths, none to another version's.
        paths = ApiPaths.of(version)
        assert ws.emulator.requests
        assert all(
            r.path.startswith((paths.contacts, paths.properties)) for r in ws.emulator.requests
        ), {r.path for r in ws.emulator.requests}


@pytest.mark.parametrize("version", ["v3", "2026-09"])
def test_a_validation_rule_400_rejects_that_contact_only(tmp_path: Path, version: str) -> None:
    spec = _spec(version).replace(
        "    firstname = first\n", "    firstname = first\n    lastname  = last\n"
    )
    people = _people(40)
    for index, person in enumerate(people):
        if index not in (5, 27):
            person["last"] = f"L{index}"
    with workspace(tmp_path, required_on_create=["lastname"]) as ws:
        ws.write(people, spec=spec)
        result = run(ws, "apply", ".", "--auto-approve", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["created"] == 38
        rejected = {r["raw"]: r["reason"] for r in report["rejected"] if r["source"] == "hubspot"}
        assert set(rejected) == {"p005@example.com", "p027@example.com"}
        assert all("lastname is required" in reason for reason in rejected.values()), rejected
        assert ws.emulator.contact_by_email("p005@example.com") is None
        assert ws.emulator.contact_by_email("p006@example.com") is not None
        # In text, the refusals are said to be HubSpot's: there is no record to replay.
        text = run(ws, "apply", ".", "--auto-approve")
        assert (
            "HubSpot's refusals written to" in text.stdout and "--rejects-replay" not in text.stdout
        )
        # Once the data gives a last name, the next apply creates the contact.
        people[5]["last"] = "Five"
        ws.write(people, spec=spec)
        again = json.loads(run(ws, "apply", ".", "--auto-approve", "--json", check=True).stdout)
        assert again["created"] == 1
        assert [r["raw"] for r in again["rejected"]] == ["p027@example.com"]


@pytest.mark.parametrize("version", ["v3", "2026-09"])
def test_the_stream_speaks_the_declared_api_version(tmp_path: Path, version: str) -> None:
    from tests.test_stream import contact, post, profile, streaming, wait_for

    with workspace(tmp_path) as ws:
        ws.write([], spec=_spec(version))
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("ann@example.com", first="Ann", seg="realized"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "realized")
            post(service, profile("ann@example.com", first="Ann", seg="exited"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "exited")
        paths = ApiPaths.of(version)
        assert all(
            r.path.startswith((paths.contacts, paths.properties)) for r in ws.emulator.requests
        ), {r.path for r in ws.emulator.requests}
        assert ws.emulator.count("contacts.batch_update") == 1  # the exit went by id
