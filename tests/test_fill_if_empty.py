"""`prop = fill_if_empty(EXPR)`: written only when HubSpot holds no value; a value HubSpot holds
is kept (a no-op with its reason), and the state remembers it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scenario import BASE_SPEC, workspace
from tests.test_cli_run import run

FILL = BASE_SPEC.replace(
    'city      = "{{ city | title }}"', 'city      = fill_if_empty("{{ city | title }}")'
)
NO_CITY = BASE_SPEC.replace('    city      = "{{ city | title }}"\n', "")


def _profile(email: str) -> dict[str, str]:
    return {"email": email, "first": email.split("@")[0].title(), "city": "oslo", "seg": "realized"}


def test_empty_equal_and_different_hubspot_values(tmp_path: Path) -> None:
    assert FILL != BASE_SPEC
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts(
            [
                {"email": "empty@example.com"},
                {"email": "equal@example.com", "city": "Oslo"},
                {"email": "different@example.com", "city": "Bergen"},
            ]
        )
        emails = ["empty@example.com", "equal@example.com", "different@example.com"]
        ws.write([_profile(e) for e in [*emails, "new@example.com"]], spec=FILL)
        plan = ws.plan()  # no state: a refresh reads HubSpot's values
        cities = {
            c.email: c.properties.get("city") for c in plan.contact_changes if c.action != "exit"
        }
        assert cities == {
            "empty@example.com": "Oslo",
            "equal@example.com": None,
            "different@example.com": None,
            "new@example.com": "Oslo",
        }
        assert [(k.email, k.property, k.hubspot, k.wanted) for k in plan.kept] == [
            ("different@example.com", "city", "Bergen", "Oslo")
        ]
        ws.apply()
        held = {e: ws.emulator.contact_by_email(e)["city"] for e in [*emails, "new@example.com"]}
        assert held == {
            "empty@example.com": "Oslo",
            "equal@example.com": "Oslo",
            "different@example.com": "Bergen",
            "new@example.com": "Oslo",
        }
        # The state remembers Bergen: the next plan is settled in bulk, the value kept and said.
        again = ws.plan()
        assert not again.contact_changes and again.kept_settled == {"city": 1}
        ws.emulator.set_contact_property("empty@example.com", "city", "Trondheim")  # by hand
        assert not ws.plan(refresh=True).contact_changes  # a filled value is HubSpot's now


def test_incremental_plans_read_hubspot_only_where_the_state_does_not_know(
    tmp_path: Path,
) -> None:
    with workspace(tmp_path) as ws:
        ws.write([_profile("known@example.com")], spec=NO_CITY)
        ws.apply()  # the state knows the contact, not its city
        ws.emulator.set_contact_property("known@example.com", "city", "Bergen")
        ws.write([_profile("known@example.com"), _profile("new@example.com")], spec=FILL)
        reads = ws.emulator.count("contacts.batch_read")
        plan = ws.plan()
        assert ws.emulator.count("contacts.batch_read") - reads == 1  # both emails, one call
        assert [(c.action, c.email) for c in plan.contact_changes] == [
            ("create", "new@example.com")
        ]
        assert [k.email for k in plan.kept] == ["known@example.com"]
        assert [a.email for a in plan.adoptions] == ["known@example.com"]  # remembered
        ws.apply()
        assert ws.emulator.contact_by_email("known@example.com")["city"] == "Bergen"
        reads = ws.emulator.count("contacts.batch_read")
        again = ws.plan()
        assert ws.emulator.count("contacts.batch_read") == reads  # the state knows it all now
        assert not again.contact_changes and again.kept_settled == {"city": 1}


def test_the_plan_shows_kept_values_with_their_reason(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.emulator.seed_contacts([{"email": "different@example.com", "city": "Bergen"}])
        ws.write([_profile("different@example.com")], spec=FILL)
        shown = run(ws, "plan", ".")
        assert shown.returncode == 0, shown.stderr
        assert "Kept: HubSpot already has a value (fill_if_empty) (1):" in shown.stdout
        assert '= different@example.com  city: "Bergen" kept, "Oslo" not sent' in shown.stdout
        document = json.loads(run(ws, "plan", ".", "--json").stdout)
        assert document["kept"] == [
            {
                "email": "different@example.com",
                "property": "city",
                "hubspot": "Bergen",
                "wanted": "Oslo",
            }
        ]
        assert document["summary"]["kept"] == 1
        markdown = run(ws, "plan", ".", "--markdown").stdout
        assert "Kept: HubSpot already has a value (fill_if_empty)" in markdown
        assert '"Bergen" kept' in markdown
