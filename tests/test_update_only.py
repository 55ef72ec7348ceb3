"""`mode = "update_only"`: syncdsl never creates a contact; it updates by HubSpot id the ones
HubSpot has (known from the state, or from a batch read of the emails it never saw) and
reports the others as not in HubSpot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncdsl.apply.executor import write_batch
from syncdsl.plan.definition import UpdateContact, ValueChange
from tests.scenario import BASE_SPEC, workspace
from tests.test_cli_run import run

# Each test runs on both storage backends (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("store_backend")

UPDATE_ONLY = BASE_SPEC.replace(
    'tier  = "professional"', 'tier  = "professional"\n  mode  = "update_only"'
)
WRITES = ("contacts.batch_upsert", "contacts.batch_create", "contacts.batch_update")


def _profile(email: str, first: str) -> dict[str, str]:
    return {"email": email, "first": first, "seg": "realized"}


def test_known_unknown_existing_and_absent_emails(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([_profile("known@example.com", "Kim")])
        ws.apply()  # upsert mode: the state knows this one
        ws.emulator.seed_contacts([{"email": "sales@example.com", "firstname": "Sal"}])
        profiles = [
            _profile("known@example.com", "Kimberly"),  # known: an update by id
            _profile("sales@example.com", "Sally"),  # unknown to the state, in HubSpot
            _profile("absent@example.com", "Abe"),  # in neither: never created
        ]
        ws.write(profiles, spec=UPDATE_ONLY)
        reads = ws.emulator.count("contacts.batch_read")
        plan = ws.plan()
        # 2 schema reads, then one batch read for the 2 emails the state never saw.
        assert ws.emulator.count("contacts.batch_read") - reads == 1
        assert plan.estimate.read_calls == 3
        assert [(c.action, c.email, c.by_id) for c in plan.contact_changes] == [
            ("update", "known@example.com", True),
            ("update", "sales@example.com", True),
        ]
        assert [s.email for s in plan.not_in_hubspot] == ["absent@example.com"]
        assert all(v.guard != "new-contacts" or "0 contact(s)" in v.detail for v in plan.guards)
        before = {op: ws.emulator.count(op) for op in WRITES}
        _, report = ws.apply()
        after = {op: ws.emulator.count(op) for op in WRITES}
        assert after["contacts.batch_update"] - before["contacts.batch_update"] == 1
        assert after["contacts.batch_upsert"] == before["contacts.batch_upsert"]
        assert after["contacts.batch_create"] == before["contacts.batch_create"]
        assert ws.emulator.contact_by_email("absent@example.com") is None
        assert ws.emulator.contact_by_email("sales@example.com")["firstname"] == "Sally"
        assert ws.emulator.contact_by_email("known@example.com")["firstname"] == "Kimberly"
        assert report.created == 0
        # Recorded in the state: the next plan has nothing to do, and reads only the absent one.
        reads = ws.emulator.count("contacts.batch_read")
        again = ws.plan()
        assert not again.contact_changes and [s.email for s in again.not_in_hubspot] == [
            "absent@example.com"
        ]
        assert ws.emulator.count("contacts.batch_read") - reads == 1


def test_a_contact_deleted_after_the_plan_is_not_recreated(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts([{"email": "gone@example.com", "firstname": "G"}])
        ws.write([_profile("gone@example.com", "Gone")], spec=UPDATE_ONLY)
        saved = run(ws, "plan", ".", "--out", "update.plan")
        assert saved.returncode == 0, saved.stderr
        ws.emulator.delete_contact("gone@example.com")  # between the plan and its apply
        refused = run(ws, "apply", "update.plan", "--json")  # the staleness check sees it
        assert refused.returncode == 1 and "no longer exists in HubSpot" in refused.stdout
        assert ws.emulator.contact_by_email("gone@example.com") is None
        # Deleted while the apply runs: the write by id is refused, nothing is created.
        client = ws.client()
        change = UpdateContact(
            "gone@example.com", (ValueChange("firstname", None, "Gone"),), "1234567", by_id=True
        )
        outcome = write_batch(client, [change])
        client.close()
        assert not outcome.accepted and "no longer has contact 1234567" in outcome.rejected[0][1]
        assert ws.emulator.all_contacts() == []


def test_the_cli_reports_not_in_hubspot(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([_profile("absent@example.com", "Abe")], spec=UPDATE_ONLY)
        shown = run(ws, "plan", ".")
        assert shown.returncode == 0, shown.stderr
        assert "Not in HubSpot (mode update_only: skipped, never created) (1)" in shown.stdout
        assert "1 not in HubSpot (skipped)" in shown.stdout
        document = json.loads(run(ws, "plan", ".", "--json").stdout)
        assert document["summary"]["not_in_hubspot"] == 1
        assert document["not_in_hubspot"][0]["email"] == "absent@example.com"
        markdown = run(ws, "plan", ".", "--markdown", "--redact").stdout
        assert "Not in HubSpot (mode update_only: skipped, never created) (1)" in markdown
        assert "absent@example.com" not in markdown  # --redact masks it
        assert run(ws, "apply", ".", "--auto-approve").returncode == 0
        assert ws.emulator.all_contacts() == []


def test_a_secondary_email_and_its_primary_are_written_once(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([_profile("bob@example.com", "Bob")])
        ws.apply()  # the state knows bob@ and his contact id
        ws.emulator.seed_contacts([{"email": "bobby@example.com"}])
        ws.emulator.merge_contacts("bob@example.com", "bobby@example.com")  # bobby@: secondary
        ws.write(
            [_profile("bob@example.com", "Robert"), _profile("bobby@example.com", "Bobby")],
            spec=UPDATE_ONLY,
        )
        plan = ws.plan()
        assert [(c.email, c.by_id) for c in plan.contact_changes] == [("bob@example.com", True)]
        (rejection,) = [r for r in plan.rejected if r.source == "hubspot"]
        assert rejection.raw == "bobby@example.com" and "one HubSpot contact" in rejection.reason
        ws.apply()
        assert ws.emulator.contact_by_email("bob@example.com")["firstname"] == "Robert"
