"""apply against the emulator: end state, idempotence, bisection, faults, limits, resume, locks."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from syncdsl.apply.executor import ApplyReport, apply_contacts
from syncdsl.errors import PlanError
from syncdsl.plan.definition import ContactChange, CreateContact, ExitContact, ValueChange
from syncdsl.state.locks import ApplyLock
from syncdsl.state.store import StateStore
from tests.scenario import BASE_SPEC, Workspace, workspace

# Each test runs on both storage backends (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("store_backend")

WRITES = (
    "contacts.batch_upsert",
    "properties.create",
    "properties.batch_create",
    "properties.update",
    "groups.create",
)


def _people(n: int, *, first: str = "P", offset: int = 0) -> list[dict[str, str]]:
    return [
        {"email": f"p{i:05d}@example.com", "first": f"{first}{i}", "seg": "realized"}
        for i in range(offset, offset + n)
    ]


def _writes(ws: Workspace) -> int:
    return sum(ws.emulator.count(op) for op in WRITES)


def _contact_reads(ws: Workspace) -> int:
    return sum(
        ws.emulator.count(op)
        for op in ("contacts.batch_read", "contacts.search", "contacts.list", "contacts.get")
    )


def _assert_portal_has(ws: Workspace, people: list[dict[str, str]]) -> None:
    for person in people:
        contact = ws.emulator.contact_by_email(person["email"])
        assert contact is not None, person["email"]
        assert contact.get("firstname") == person["first"]
        assert contact.get("newsletter") == person["seg"]


def test_first_apply_then_idempotent_reapply(tmp_path: Path) -> None:
    people = _people(250)
    with workspace(tmp_path) as ws:
        ws.write(people, [["vip@example.com", "Acme"]])
        _, report = ws.apply()
        assert (report.created, report.updated, report.exited) == (251, 0, 0)
        assert ws.emulator.count("contacts.batch_upsert") == math.ceil(251 / 100)
        _assert_portal_has(ws, people)
        assert ws.emulator.contact_by_email("vip@example.com")["vip"] == "realized"

        ws.emulator.reset_counters()
        plan, report = ws.apply()
        assert not plan.has_changes
        assert _writes(ws) == 0 and _contact_reads(ws) == 0
        assert report.unchanged == 251

        ws.emulator.reset_counters()
        refreshed = ws.plan(refresh=True)
        assert not refreshed.contact_changes and not refreshed.property_changes


def test_update_one_field_and_exits_cost_one_call(tmp_path: Path) -> None:
    people = _people(20)
    with workspace(tmp_path) as ws:
        ws.write(people)
        ws.apply()
        people[3]["first"] = "Changed"
        people[4]["seg"] = "exited"
        ws.write(people)
        ws.emulator.reset_counters()
        _, report = ws.apply()
        assert (report.updated, report.exited, report.created) == (1, 1, 0)
        assert ws.emulator.count("contacts.batch_upsert") == 1
        assert ws.emulator.contact_by_email(people[3]["email"])["firstname"] == "Changed"
        assert ws.emulator.contact_by_email(people[4]["email"])["newsletter"] == "exited"


def _changes(emails: list[str], value: str = "realized") -> list[ContactChange]:
    return [CreateContact(e, (ValueChange("vip", None, value),)) for e in emails]


def test_bisection_isolates_exactly_the_bad_inputs(tmp_path: Path) -> None:
    """HubSpot fails a whole batch for one bad value; only the bad inputs are rejected."""
    with workspace(tmp_path) as ws:
        ws.write([], [["seed@example.com", "Acme"]])
        ws.apply()  # creates the `vip` enumeration property
        emails = [f"b{i:03d}@example.com" for i in range(200)]
        changes = _changes(emails)
        bad = {7, 93, 150}
        changes = [
            CreateContact(c.email, (ValueChange("vip", None, "bogus"),)) if i in bad else c
            for i, c in enumerate(changes)
        ]
        ws.emulator.reset_counters()
        report = ApplyReport()
        client = ws.client()
        with StateStore.open(ws.root) as store:
            apply_contacts(
                client,
                store,
                changes,
                audience_properties=frozenset({"vip"}),
                parallelism=2,
                report=report,
            )
        rejected = sorted(r.raw for r in report.rejected)
        assert rejected == sorted(emails[i] for i in bad)
        assert all("bogus" in r.reason or "INVALID_OPTION" in r.reason for r in report.rejected)
        assert report.created == 197
        for i, email in enumerate(emails):
            assert (ws.emulator.contact_by_email(email) is None) == (i in bad)
        extra = ws.emulator.count("contacts.batch_upsert") - 2
        assert extra <= len(bad) * 2 * math.ceil(math.log2(100))


def test_invalid_emails_named_by_hubspot_are_isolated(tmp_path: Path) -> None:
    """Emails our validator lets through but HubSpot refuses are dropped from the batch."""
    with workspace(tmp_path) as ws:
        ws.write([], [["seed@example.com", "Acme"]])
        ws.apply()
        emails = [f"c{i:03d}@example.com" for i in range(100)]
        emails[10] = "c010@exa_mple.com"
        ws.emulator.reset_counters()
        report = ApplyReport()
        with StateStore.open(ws.root) as store:
            apply_contacts(
                ws.client(),
                store,
                _changes(emails),
                audience_properties=frozenset({"vip"}),
                parallelism=1,
                report=report,
            )
        assert [r.raw for r in report.rejected] == ["c010@exa_mple.com"]
        assert report.created == 99
        assert ws.emulator.count("contacts.batch_upsert") <= 1 + 2 * math.ceil(math.log2(100))


def test_faults_lose_nothing(tmp_path: Path) -> None:
    people = _people(600)
    with workspace(tmp_path, fail_rate=0.05, reset_rate=0.01, seed=11) as ws:
        ws.write(people)
        _, report = ws.apply()
        assert report.created == 600 and not report.rejected
        _assert_portal_has(ws, people)
        assert (
            ws.emulator.count(status=0) + sum(ws.emulator.count(status=s) for s in (500, 502, 503))
            > 0
        ), "the faults must actually have happened"
        assert not ws.plan(refresh=True).contact_changes


def test_429_storm_slows_down_and_finishes(tmp_path: Path) -> None:
    """Two applies share one portal's budget, each believing it has all of it: 429s, then success."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with workspace(tmp_path / "a", rate_limits=True, window_seconds=0.2, window_limit=4) as first:
        second = Workspace(tmp_path / "b", first.emulator)
        first.write(_people(1))
        first.apply()  # the schema exists before the race
        people_a, people_b = _people(1500, offset=0), _people(1500, offset=5000)
        first.write(people_a)
        # Its own audiences: two configurations must not share an audience property.
        second.write(
            people_b,
            spec=BASE_SPEC.replace('"Newsletter"', '"Newsletter B"').replace('"VIP"', '"VIP B"'),
        )
        reports: dict[str, ApplyReport] = {}

        def run(name: str, ws: Workspace) -> None:
            # 1,499 new contacts beside a state of 1: over the default limit, allowed here.
            reports[name] = ws.apply(parallelism=4, allow_new_contacts=True)[1]

        threads = [
            threading.Thread(target=run, args=(n, w)) for n, w in (("a", first), ("b", second))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert reports["a"].created + reports["a"].updated == 1499
        assert reports["b"].created == 1500
        assert first.emulator.count(status=429) > 0
        _assert_portal_has(first, people_a)
        for person in people_b:
            assert first.emulator.contact_by_email(person["email"])["newsletter_b"] == "realized"


def test_daily_limit_stops_then_resume_finishes(tmp_path: Path) -> None:
    people = _people(1000)
    with workspace(tmp_path, rate_limits=True, daily_limit=18) as ws:  # plan 12, apply 6
        ws.write(people)
        _, stopped = ws.apply(parallelism=1)
        assert stopped.stopped is not None and "daily" in stopped.stopped
        assert "resume" in str(stopped.stopped_error())
        with StateStore.open(ws.root) as store:
            saved = store.count()
        assert 0 < saved < 1000
        assert saved == len(ws.emulator.all_contacts())  # the state is the journal
        ws.emulator.limiter.daily_limit = 10_000
        ws.emulator.reset_counters()
        _, report = ws.apply()
        assert report.created + report.updated == 1000 - saved
        assert ws.emulator.count("contacts.batch_upsert") == math.ceil((1000 - saved) / 100)
        _assert_portal_has(ws, people)


def test_concurrent_apply_is_refused(tmp_path: Path) -> None:
    with ApplyLock(tmp_path), pytest.raises(PlanError, match="another syncdsl apply"):
        with ApplyLock(tmp_path):
            pass


def test_resume_of_a_refreshed_apply_refreshes_and_exits_everyone(tmp_path: Path) -> None:
    """Exits found only by reading HubSpot survive an interrupted apply (no state before it)."""
    marker = {"description": "Managed by syncdsl: audience status."}
    with workspace(tmp_path, rate_limits=True, daily_limit=11) as ws:
        ws.emulator.create_property(
            {
                "name": "newsletter",
                "label": "Newsletter",
                "type": "enumeration",
                "fieldType": "select",
                "groupName": "contactinformation",
                **marker,
                "options": [{"label": s, "value": s} for s in ("realized", "existing", "exited")],
            }
        )
        ws.emulator.seed_contacts(
            {"email": f"m{i:03d}@example.com", "newsletter": "realized"} for i in range(250)
        )
        ws.write(_people(300))
        plan, first = ws.apply(parallelism=1, allow_mass_exit=True)
        assert plan.refreshed and plan.count("exit") == 250
        assert first.stopped is not None and first.exited == 200  # exits sort first
        ws.emulator.limiter.daily_limit = 10_000
        resumed, _ = ws.apply(allow_mass_exit=True)
        assert resumed.refreshed, "an interrupted refreshed apply must be resumed by a refresh"
        assert resumed.count("exit") == 50
        for i in range(250):
            assert ws.emulator.contact_by_email(f"m{i:03d}@example.com")["newsletter"] == "exited"
        assert not ws.plan().has_changes


def test_removed_audience_waits_for_a_decision(tmp_path: Path) -> None:
    vip = [["cat@example.com", "Acme"], ["dan@example.com", "Beta"]]
    with workspace(tmp_path) as ws:
        ws.write(_people(3), vip)
        ws.apply()
        without_vip = BASE_SPEC.split('audience "VIP"')[0]
        ws.write(_people(3), vip, spec=without_vip)
        kept, _ = ws.apply()
        assert [r.decision for r in kept.removed_audiences] == ["keep"]
        assert kept.removed_audiences[0].members == 2
        assert "upload:uploads" in (tmp_path / "syncdsl.lock").read_text()
        _, report = ws.apply(exit_removed=True)
        assert report.exited == 2
        assert ws.emulator.contact_by_email("cat@example.com")["vip"] == "exited"
        assert "upload:uploads" not in (tmp_path / "syncdsl.lock").read_text()
        assert not ws.plan().removed_audiences


def test_a_batch_sent_but_never_journaled_is_resent(tmp_path: Path) -> None:
    """kill -9 between HubSpot's acceptance and the journal: the next plan resends, not trusts."""
    people = _people(6)
    with workspace(tmp_path) as ws:
        ws.write(people)
        ws.apply()
        lost = [people[1]["email"], people[2]["email"]]
        with StateStore.open(ws.root) as store:
            store.mark_dirty(lost)  # what apply writes ahead of sending a batch
        client = ws.client()
        client.batch_upsert_contacts_by_email(
            [(email, {"firstname": "In flight", "newsletter": "exited"}) for email in lost]
        )  # ...which HubSpot accepted, and then the process died
        client.close()
        plan = ws.plan()
        assert not plan.refreshed
        assert sorted(c.email for c in plan.contact_changes) == lost
        ws.apply()
        _assert_portal_has(ws, people)
        assert not ws.plan(refresh=True).has_changes
        with StateStore.open(ws.root) as store:
            assert not any(row.dirty for row in store.iter_contacts())


def test_an_exit_never_recreates_a_member_deleted_by_hand(tmp_path: Path) -> None:
    members = [
        {"email": f"m{i}@example.com", "first": f"M{i}", "seg": "realized"} for i in range(8)
    ]
    with workspace(tmp_path) as ws:
        ws.write(members)
        ws.apply()
        ws.emulator.delete_contact("m0@example.com")  # a person deletes it in HubSpot
        ws.write(members[1:])  # m0 left the segment too
        plan, report = ws.apply()
        exit_change = next(c for c in plan.contact_changes if c.email == "m0@example.com")
        assert (exit_change.action, exit_change.hubspot_id is not None) == ("exit", True)
        assert ws.emulator.contact_by_email("m0@example.com") is None  # not recreated
        assert ws.emulator.count("contacts.batch_update") == 1
        assert report.deleted == ["m0@example.com"] and report.to_dict()["deleted_in_hubspot"]
        with StateStore.open(ws.root) as store:
            assert store.get("m0@example.com") is None  # forgotten: HubSpot no longer holds it
        assert ws.plan().contact_changes == ()


def test_an_exit_by_id_updates_the_member_with_its_fields(tmp_path: Path) -> None:
    members = [
        {"email": f"m{i}@example.com", "first": f"M{i}", "seg": "realized"} for i in range(8)
    ]
    with workspace(tmp_path) as ws:
        ws.write(members)
        ws.apply()
        ws.write([{"email": "m0@example.com", "first": "Mo", "seg": "exited"}, *members[1:]])
        _, report = ws.apply()
        assert report.exited == 1 and ws.emulator.count("contacts.batch_update") == 1
        held = ws.emulator.contact_by_email("m0@example.com")
        assert held is not None and (held["newsletter"], held["firstname"]) == ("exited", "Mo")


def test_updates_are_journaled_though_write_replies_echo_only_what_was_written(
    tmp_path: Path,
) -> None:
    """HubSpot's replies to updates carry no `email`: results are matched by objectWriteTraceId."""
    members = [
        {"email": f"m{i}@example.com", "first": f"M{i}", "seg": "realized"} for i in range(6)
    ]
    with workspace(tmp_path) as ws:
        ws.write(members)
        ws.apply()
        ws.write([{**m, "first": f"New{i}"} if i < 3 else m for i, m in enumerate(members)])
        _, report = ws.apply()
        assert (report.updated, report.created) == (3, 0)
        assert ws.plan().contact_changes == ()  # journaled: nothing is sent again


def test_emulator_write_replies_echo_only_the_written_properties(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        client = ws.client()
        created = client._request(
            "POST",
            "/crm/v3/objects/contacts/batch/upsert",
            operation="batch_upsert_contacts",
            json_body={
                "inputs": [
                    {
                        "id": "ann@example.com",
                        "idProperty": "email",
                        "objectWriteTraceId": "t1",
                        "properties": {"firstname": "Ann"},
                    }
                ]
            },
        ).body["results"][0]
        assert created["objectWriteTraceId"] == "t1"
        assert created["properties"]["hs_email_domain"] == "example.com"
        updated = client._request(
            "POST",
            "/crm/v3/objects/contacts/batch/upsert",
            operation="batch_upsert_contacts",
            json_body={
                "inputs": [
                    {
                        "id": "ann@example.com",
                        "idProperty": "email",
                        "objectWriteTraceId": "t2",
                        "properties": {"firstname": "Anna"},
                    }
                ]
            },
        ).body["results"][0]
        assert (
            "email" not in updated["properties"] and "hs_email_domain" not in updated["properties"]
        )
        assert set(updated["properties"]) == {"firstname", "hs_object_id", "lastmodifieddate"}
        client.close()


def test_a_whole_batch_400_on_updates_by_id_rejects_only_the_bad_input(tmp_path: Path) -> None:
    """Exits go by batch update by id; one input HubSpot refuses fails that whole batch (400),
    and it is isolated like an upsert's: the others exit, the bad one is rejected."""
    from syncdsl.apply.executor import write_batch
    from syncdsl.plan.definition import ValueChange

    members = [{"email": f"m{i}@example.com", "first": "M", "seg": "realized"} for i in range(6)]
    with workspace(tmp_path) as ws:
        ws.write(members)
        ws.apply()
        ids = {c["email"]: c["hs_object_id"] for c in ws.emulator.all_contacts()}
        batch = [
            ExitContact(
                member["email"],
                (
                    ValueChange("newsletter", "realized", "exited"),
                    *([ValueChange("no_such_property", None, "x")] if index == 3 else ()),
                ),
                hubspot_id=ids[member["email"]],
            )
            for index, member in enumerate(members)
        ]
        outcome = write_batch(ws.client(), batch)
        assert sorted(outcome.accepted) == sorted(
            m["email"] for i, m in enumerate(members) if i != 3
        )
        ((change, reason),) = outcome.rejected
        assert change.email == "m3@example.com" and "no_such_property" in reason
        statuses = {c["email"]: c["newsletter"] for c in ws.emulator.all_contacts()}
        assert statuses == {
            m["email"]: "realized" if i == 3 else "exited" for i, m in enumerate(members)
        }


@pytest.mark.sqlite_files
def test_a_refreshed_incremental_apply_remembers_the_members_it_keeps(tmp_path: Path) -> None:
    """With no state, an incremental export's refresh adopts the HubSpot members the delta does
    not name, so a later delta's exit of one of them is applied."""
    import shutil

    spec = BASE_SPEC.replace(
        '  jsonl = "profiles.jsonl"\n', '  jsonl  = "profiles.jsonl"\n  export = "incremental"\n'
    )
    people = [{"email": f"{n}@inc.com", "first": n, "seg": "realized"} for n in "abce"]
    with workspace(tmp_path) as ws:
        ws.write(people, spec=spec)
        ws.apply()
        shutil.rmtree(tmp_path / ".syncdsl")  # a new CI runner
        ws.write([{**people[2], "seg": "existing", "first": "C2"}])
        ws.apply()
        with StateStore.open(ws.root) as store:
            assert sorted(row.email for row in store.iter_contacts()) == [
                "a@inc.com",
                "b@inc.com",
                "c@inc.com",
                "e@inc.com",
            ]
        ws.write([{**people[3], "seg": "exited"}])
        plan = ws.plan()
        assert [(c.action, c.email) for c in plan.contact_changes] == [("exit", "e@inc.com")]
