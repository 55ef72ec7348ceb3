"""Secondary emails (hs_additional_emails) and whole-batch 409s, as HubSpot has them (§0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncdsl.apply.executor import execute
from syncdsl.errors import HubSpotConflictError
from syncdsl.hubspot.convert import property_to_api
from syncdsl.plan.definition import PlanOptions
from syncdsl.plan.gather import make_plan, read_current
from syncdsl.state.store import StateStore
from tests.scenario import Workspace, workspace

MEMBERS = [{"email": f"m{i}@example.com", "first": f"M{i}", "seg": "realized"} for i in range(9)]


def test_emulator_merge_makes_a_secondary_email_that_batch_read_resolves(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts(
            [{"email": "win@example.com", "firstname": "W"}, {"email": "lost@example.com"}]
        )
        ws.emulator.merge_contacts("win@example.com", "lost@example.com")
        client = ws.client()
        found = client.batch_read_contacts_by_email(["lost@example.com"], ["firstname"])
        assert found["lost@example.com"].email == "win@example.com"
        assert found["lost@example.com"].additional_emails == ("lost@example.com",)
        with pytest.raises(HubSpotConflictError) as caught:
            client.batch_upsert_contacts_by_email([("lost@example.com", {"firstname": "L"})])
        assert caught.value.body["category"] == "OBJECT_ALREADY_EXISTS"
        assert caught.value.body["errors"][0]["in"] == "email"
        client.close()


def test_a_desired_secondary_email_is_written_to_its_contact_by_id(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts([{"email": "ann@example.com"}, {"email": "ann.old@example.com"}])
        ws.emulator.merge_contacts("ann@example.com", "ann.old@example.com")
        ws.write([{"email": "ann.old@example.com", "first": "Ann", "seg": "realized"}])
        plan, report = ws.apply()
        (change,) = plan.contact_changes
        assert (change.action, change.resolved_via) == ("update", "ann@example.com")
        assert report.rejected == [] and report.updated == 1
        held = ws.emulator.contact_by_email("ann@example.com")
        assert held is not None and (held["firstname"], held["newsletter"]) == ("Ann", "realized")
        assert len(ws.emulator.all_contacts()) == 1  # never created again
        assert ws.plan().contact_changes == ()
        assert ws.plan(refresh=True).contact_changes == ()


def test_two_desired_emails_of_one_contact_are_a_rejection_of_the_later(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts([{"email": "bob@example.com"}, {"email": "bobby@example.com"}])
        ws.emulator.merge_contacts("bob@example.com", "bobby@example.com")
        ws.write(
            [
                {"email": "bob@example.com", "first": "Bob", "seg": "realized"},
                {"email": "bobby@example.com", "first": "Bobby", "seg": "existing"},
            ]
        )
        plan = ws.plan()
        assert [c.email for c in plan.contact_changes] == ["bob@example.com"]
        (rejection,) = plan.rejected
        assert "bobby@example.com and bob@example.com are one HubSpot contact" in rejection.reason
        profiles = next(c for c in plan.inputs if c.source == "profiles")
        assert (profiles.records, profiles.contributed, profiles.rejected) == (2, 1, 1)


def test_a_whole_batch_409_is_isolated_and_the_rest_applied(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(MEMBERS)
        ws.apply()
        # Since then, a person merged the new member's address into another contact.
        ws.emulator.seed_contacts([{"email": "owner@example.com"}, {"email": "new@example.com"}])
        ws.emulator.merge_contacts("owner@example.com", "new@example.com")
        changed = [{**m, "first": f"Changed{i}"} for i, m in enumerate(MEMBERS)]
        ws.write([*changed, {"email": "new@example.com", "first": "New", "seg": "realized"}])
        _, report = ws.apply()
        assert report.updated == len(MEMBERS)
        (rejection,) = report.rejected
        assert "new@example.com already exists" in rejection.reason
        assert "merge the two contacts in HubSpot" in rejection.reason
        assert all(
            (ws.emulator.contact_by_email(m["email"]) or {}).get("firstname") == f"Changed{i}"
            for i, m in enumerate(MEMBERS)
        )


def test_the_merge_endpoint_moves_the_email_to_secondary(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        winner, merged = ws.emulator.seed_contacts(
            [{"email": "keep@example.com"}, {"email": "gone@example.com"}]
        )
        client = ws.client()
        answer = client._request(
            "POST",
            "/crm/v3/objects/contacts/merge",
            operation="merge_contacts",
            json_body={"primaryObjectId": winner, "objectIdToMerge": merged},
        ).body
        assert answer["id"] == winner
        assert ws.emulator.contact_by_email("gone@example.com") is None
        held = ws.emulator.contact_by_email("keep@example.com")
        assert held is not None and held["hs_additional_emails"] == "gone@example.com"
        client.close()


def test_a_property_created_by_another_run_since_the_plan_is_taken_as_it_is(
    tmp_path: Path,
) -> None:
    """Batch create answers an item error (207) for a name that now exists: not a failure."""
    with workspace(tmp_path) as ws:
        ws.write(MEMBERS)
        spec = ws.spec()
        client = ws.client()
        with StateStore.open(spec.root) as store:
            result = make_plan(
                spec, client, store, state_key=ws.emulator.base_url, options=PlanOptions()
            )
            created = [c.definition for c in result.plan.property_changes if c.definition]
            assert created
            # Another run creates the first audience property between plan and apply.
            ws.emulator.create_property(property_to_api(created[0]))
            store.bind(ws.emulator.base_url)
            report = execute(result.plan, client, store)
        result.desired.close()
        client.close()
        assert report.stopped is None and report.created == len(MEMBERS)
        assert all(ws.emulator.get_property(prop.name) for prop in created)


def test_a_refresh_under_search_lag_still_exits_a_member_it_just_wrote(tmp_path: Path) -> None:
    """Search is not read-your-writes: members written moments ago are confirmed by batch read."""
    with workspace(tmp_path, search_lag_ms=60_000) as ws:
        ws.write(MEMBERS)
        ws.apply()
        ws.write(MEMBERS[1:])  # m0 left the segment: 1 of 9, under the guard
        plan = ws.plan(refresh=True)
        assert [(c.action, c.email) for c in plan.contact_changes] == [("exit", "m0@example.com")]


def _merged_far_from_its_secondary_email(
    ws: Workspace,
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """250 members and zed applied; then HubSpot merges zed into aaa, a member whose primary
    email sorts batches before zed's (now its secondary email)."""
    many = [{"email": f"m{i:03d}@example.com", "first": "M", "seg": "realized"} for i in range(250)]
    zed = {"email": "zed@example.com", "first": "Zed", "seg": "realized"}
    ws.write([*many, zed])
    ws.apply()
    ws.emulator.seed_contacts([{"email": "aaa@example.com", "newsletter": "realized"}])
    ws.emulator.merge_contacts("aaa@example.com", "zed@example.com")
    return many, zed


def test_a_merged_member_far_from_its_secondary_email_is_not_exited(tmp_path: Path) -> None:
    # The winner's primary email sorts batches before the desired secondary address: the refresh
    # must still see one contact, written once by id, and never exit it as a departed member.
    with workspace(tmp_path) as ws:
        many, zed = _merged_far_from_its_secondary_email(ws)
        ws.write([*many, {**zed, "first": "Zedd"}])
        plan = ws.plan(refresh=True)
        assert [(c.action, c.email, c.resolved_via) for c in plan.contact_changes] == [
            ("update", "zed@example.com", "aaa@example.com")
        ]
        ws.apply(refresh=True)
        held = ws.emulator.contact_by_email("aaa@example.com")
        assert held is not None and (held["firstname"], held["newsletter"]) == ("Zedd", "realized")
        assert ws.plan(refresh=True).contact_changes == ()


def test_a_refresh_under_search_lag_does_not_exit_twice_a_member_it_just_exited(
    tmp_path: Path,
) -> None:
    """Within the lag search still shows the exited member as realized; the refresh confirms by
    batch read and plans nothing."""
    with workspace(tmp_path) as ws:
        ws.write(MEMBERS)
        ws.apply()
        ws.emulator.store.search_lag = 60.0  # indexed by now; the next writes are not
        ws.write([*MEMBERS[1:], {**MEMBERS[0], "seg": "exited"}])
        _, report = ws.apply()
        assert report.exited == 1
        found = ws.client().search_contacts(
            [{"filters": [{"propertyName": "newsletter", "operator": "EQ", "value": "realized"}]}],
            ["newsletter"],
        )
        assert "m0@example.com" in {c.email for c in found}  # search is stale: still realized
        assert ws.plan(refresh=True).contact_changes == ()
        held = ws.emulator.contact_by_email("m0@example.com")
        assert held is not None and held["newsletter"] == "exited"


XYZ = [{"email": f"{n}@m.com", "first": n.upper(), "seg": "realized"} for n in ("x", "y", "z")]


def test_after_a_write_via_secondary_email_the_former_primary_is_not_exited(
    tmp_path: Path,
) -> None:
    with workspace(tmp_path) as ws:
        ws.write(XYZ)
        ws.apply()
        ws.emulator.merge_contacts("x@m.com", "y@m.com")  # x's contact now holds y
        ws.write([{**XYZ[1], "first": "Ynew"}, XYZ[2]])
        plan, _ = ws.apply(refresh=True)
        assert [(c.email, c.resolved_via) for c in plan.contact_changes] == [("y@m.com", "x@m.com")]
        assert ws.plan().contact_changes == ()  # the state knows x's contact is y's now
        held = ws.emulator.contact_by_email("x@m.com")
        assert held is not None and (held["firstname"], held["newsletter"]) == ("Ynew", "realized")
        with StateStore.open(ws.root) as store:
            assert store.get("x@m.com") is None and store.get("y@m.com") is not None


def test_an_update_of_a_member_merged_into_another_contact_is_rejected_not_dropped(
    tmp_path: Path,
) -> None:
    with workspace(tmp_path) as ws:
        ws.write(XYZ)
        ws.apply()
        ws.emulator.merge_contacts("x@m.com", "y@m.com")
        ws.write([XYZ[0], {**XYZ[1], "first": "Ynew"}, XYZ[2]])
        plan, report = ws.apply()
        assert [c.email for c in plan.contact_changes] == ["y@m.com"]
        assert (report.updated, report.deleted) == (0, [])
        (rejection,) = report.rejected
        assert "secondary email of contact" in rejection.reason and "--refresh" in rejection.reason
        held = ws.emulator.contact_by_email("x@m.com")
        assert held is not None and held["firstname"] == "X"  # nothing overwritten
        with StateStore.open(ws.root) as store:
            assert store.get("y@m.com") is not None  # not forgotten as if deleted


def test_a_state_rebuild_holds_a_merged_member_once_under_its_desired_email(
    tmp_path: Path,
) -> None:
    with workspace(tmp_path) as ws:
        _merged_far_from_its_secondary_email(ws)
        rebuilt = read_current(ws.spec(), ws.client())
        ids = [c.hubspot_id for c in rebuilt]
        assert len(ids) == len(set(ids)) == 251
        held = ws.emulator.contact_by_email("aaa@example.com")
        assert held is not None
        (merged,) = [c for c in rebuilt if c.hubspot_id == held["hs_object_id"]]
        assert merged.email == "zed@example.com"
