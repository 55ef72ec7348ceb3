"""Golden plan scenarios: {configuration, HubSpot state} -> {changes, no-ops}, one JSON file each.

Fixture keys (tests/fixtures/plans/*.json):
  spec            full .sync text (default: tests/scenario.py BASE_SPEC)
  hubspot         {"contacts": [...], "properties": [...]} seeded before anything else
  bulk_members    {"count": N, "property": P, "status": S} seeded contacts m<i>@bulk.example
  before          {"profiles", "vip", "spec"}: applied first, so a state exists
  second_apply    {"profiles", "vip", "spec"}: applied after `before`
  edits           {"set": [{"email", "properties"}], "delete": [emails], "delete_properties": [...]}
                  made in HubSpot after `before` (manual edits in the portal)
  forget_state    drop the state after `before` (a CI machine without it)
  profiles, vip   the data the plan is made from
  options         PlanOptions (refresh, allow_mass_exit, exit_removed)
  saved_plan_then save the plan, then change "config" | "data" | "hubspot" | "state"
  expect          {"summary", "contacts", "properties", "refreshed", "warnings", "notes",
                  "inputs"} (every one required and asserted; warnings and notes are texts
                  each found in one of the plan's, as many as it has), "read_calls"; or
                  {"error"} for a plan that fails. SYNCDSL_UPDATE_PLANS=1 fills in missing keys.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from syncdsl.errors import PlanError
from syncdsl.plan import spill
from syncdsl.plan.gather import configuration_hash
from syncdsl.plan.planfile import inputs_document, load_plan, save_plan
from syncdsl.plan.staleness import check_fresh
from syncdsl.state.store import StateStore, state_dir
from tests.scenario import Workspace, contact_changes, workspace

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
CASES = sorted(FIXTURES.glob("*.json"))


def _seed(ws: Workspace, case: dict[str, Any]) -> None:
    hubspot = case.get("hubspot", {})
    for definition in hubspot.get("properties", []):
        ws.emulator.create_property(definition)
    if hubspot.get("contacts"):
        ws.emulator.seed_contacts(hubspot["contacts"])
    bulk = case.get("bulk_members")
    if bulk:
        ws.emulator.seed_contacts(
            {"email": f"m{i}@bulk.example", bulk["property"]: bulk["status"]}
            for i in range(bulk["count"])
        )


def _edit(ws: Workspace, edits: dict[str, Any]) -> None:
    for edit in edits.get("set", []):
        for name, value in edit["properties"].items():
            ws.emulator.set_contact_property(edit["email"], name, value)
    for email in edits.get("delete", []):
        ws.emulator.delete_contact(email)
    for name in edits.get("delete_properties", []):
        ws.emulator.delete_property(name)


def _run(ws: Workspace, case: dict[str, Any]) -> Any:
    _seed(ws, case)
    before = case.get("before")
    if before is not None:
        ws.write(
            before.get("profiles", []),
            before.get("vip", []),
            spec=before.get("spec", case.get("spec")),
        )
        ws.apply(**before.get("options", {}))
    second = case.get("second_apply")
    if second is not None:
        ws.write(second.get("profiles", []), second.get("vip", []), spec=second.get("spec"))
        ws.apply(**second.get("options", {}))
    _edit(ws, case.get("edits", {}))
    if case.get("forget_state"):
        shutil.rmtree(state_dir(ws.root))
    ws.write(case.get("profiles", []), case.get("vip", []), spec=case.get("spec"))
    return ws.plan(**case.get("options", {}))


def _stale(ws: Workspace, case: dict[str, Any], plan: Any) -> None:
    saved = ws.root / "saved.plan.json"
    with StateStore.open(ws.root) as store:
        save_plan(plan, saved, configuration=str(ws.root), key=store.plan_key())
    change = case["saved_plan_then"]
    if change == "config":
        ws.write(
            case.get("profiles", []),
            case.get("vip", []),
            spec=ws.spec_text.replace('tier  = "professional"', 'tier  = "enterprise"'),
        )
    elif change == "data":
        with (ws.root / "vip.csv").open("a") as handle:
            handle.write("late@example.com,Late Inc\n")
    elif change == "hubspot":
        first = plan.contact_changes[0]
        ws.emulator.set_contact_property(first.email, first.changes[0].property, "edited by hand")
    elif change == "state":
        ws.apply()
    loaded = load_plan(saved).plan
    spec = ws.spec()
    client = ws.client()
    with StateStore.open(spec.root) as store:
        check_fresh(
            loaded,
            spec=spec,
            store=store,
            target=ws.target(client),
            configuration_hash=configuration_hash(spec),
        )
    client.close()


@pytest.mark.parametrize("held", ["memory", "disk"])
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_scenario(
    path: Path, held: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if held == "disk":  # every change record and adoption on disk, nothing kept per kind
        monkeypatch.setattr(spill, "SPILL_AT", 0)
        monkeypatch.setattr(spill, "HEAD", 0)
    case = json.loads(path.read_text())
    expect = case["expect"]
    with workspace(tmp_path) as ws:
        if "saved_plan_then" in case:
            plan = _run(ws, case)
            with pytest.raises(PlanError) as caught:
                _stale(ws, case, plan)
            assert expect["error"] in str(caught.value)
            return
        if "error" in expect:
            with pytest.raises(PlanError) as caught:
                _run(ws, case)
            assert expect["error"] in str(caught.value)
            return
        plan = _run(ws, case)
    actual = _outcome(plan, root=str(ws.root) + "/")
    required = STRICT_KEYS - ({"contacts"} if "bulk_members" in case else set())
    if UPDATE:  # fill in what a fixture does not say yet (then review the diff)
        case["expect"] = {**{k: v for k, v in actual.items() if k in required}, **expect}
        path.write_text(json.dumps(case, indent=2) + "\n")
        expect = case["expect"]
    assert set(expect) >= required, f"{path.name} leaves unsaid: {required - set(expect)}"
    if "read_calls" in expect:
        assert plan.estimate.read_calls == expect["read_calls"]
    for key in ("summary", "contacts", "properties", "refreshed", "inputs"):
        if key in expect:
            assert actual[key] == expect[key], key
    for key in ("warnings", "notes"):  # each expected text is in one of them, and no others
        shown = actual[key]
        assert len(shown) == len(expect[key]), (key, shown)
        for fragment in expect[key]:
            assert any(fragment in text for text in shown), (key, fragment, shown)
    for counts in plan.inputs:
        assert counts.records == (
            counts.contributed
            + counts.merged
            + counts.rejected
            + counts.not_member
            + counts.no_consent
        ), counts


#: What every scenario that makes a plan must say (all of it is asserted); a `bulk_members`
#: scenario's thousands of contacts are counted by its summary instead of listed.
STRICT_KEYS = {"summary", "contacts", "properties", "refreshed", "warnings", "notes", "inputs"}
UPDATE = os.environ.get("SYNCDSL_UPDATE_PLANS") == "1"


def _outcome(plan: Any, *, root: str) -> dict[str, Any]:
    """The plan in the fixtures' terms; paths in messages relative to the workspace."""
    return {
        "summary": {
            "create": plan.count("create"),
            "update": plan.count("update"),
            "exit": plan.count("exit"),
            "unchanged": plan.unchanged,
            "rejected": len(plan.rejected),
        },
        "contacts": contact_changes(plan),
        "properties": [[c.action, c.name] for c in plan.property_changes],
        "refreshed": plan.refreshed,
        "warnings": [text.replace(root, "") for text in plan.warnings],
        "notes": [text.replace(root, "") for text in plan.notes],
        "inputs": [inputs_document(counts) for counts in plan.inputs],
    }


def test_there_are_at_least_thirty_scenarios() -> None:
    assert len(CASES) >= 30
