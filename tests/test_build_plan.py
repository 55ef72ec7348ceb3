"""The plan is a pure function of its inputs: fixtures `{desired, current} -> {changes, ...}`.

Each `tests/plans/*.json` gives the desired contacts (as the files make them) and what is known of
HubSpot (`current`: the state, or a refresh; any `CurrentContact` field), optionally the `spec`
(default `tests/scenario.py`'s) and the `protected` emails (a rejected record); `build_plan` makes
the plan with no client, no state store and no I/O, and every key of `expected` is asserted:
`changes` (with `drift` when a fixture gives it), `unchanged`, `adoptions`, `guards`, `exported`,
and `not_member` / `rejected` when given.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from syncdsl.emulator.seed import standard_properties
from syncdsl.hubspot.convert import property_from_api
from syncdsl.lang.load import load_spec
from syncdsl.plan import build
from syncdsl.plan.build import PlanInputs, build_plan
from syncdsl.plan.definition import CurrentContact, Plan, PlanOptions
from syncdsl.plan.schemadiff import diff_schema
from syncdsl.records.outcome import DesiredContact, SourceCounts
from syncdsl.state.lockfile import LockFile, desired_lock
from tests.scenario import BASE_SPEC

FIXTURES = sorted((Path(__file__).parent / "plans").glob("*.json"))


def _inputs(tmp_path: Path, case: dict[str, Any]) -> PlanInputs:
    (tmp_path / "main.sync").write_text(case.get("spec", BASE_SPEC))
    (tmp_path / "profiles.jsonl").write_text("")
    (tmp_path / "vip.csv").write_text("Email,Company\n")
    spec = load_spec([tmp_path])
    empty = LockFile({})
    schema = diff_schema(
        spec,
        properties=[property_from_api(p) for p in standard_properties().values()],
        groups=[],
        current_lock=empty,
        desired_lock=desired_lock(spec, empty),
        removed_decision="keep",
    )
    desired = [
        DesiredContact(d["email"], d["properties"], d["audiences"], sources=tuple(d["sources"]))
        for d in case["desired"]
    ]
    current = [CurrentContact(**c) for c in case["current"]]
    records = {name: sum(name in d.sources for d in desired) for name in ("profiles", "uploads")}
    return PlanInputs(
        spec=spec,
        options=PlanOptions(refresh=case["refreshed"]),
        schema=schema,
        desired=desired,
        current=current,
        refreshed=case["refreshed"],
        rejected=(),
        protected=frozenset(case.get("protected", ())),
        counts=tuple(SourceCounts(name, n, n, 0, 0) for name, n in records.items()),
    )


def _outcome(plan: Plan, expected: dict[str, Any]) -> dict[str, Any]:
    """The plan in the fixture's terms, with exactly the keys the fixture expects."""
    counts = {c.source: c for c in plan.inputs}
    views: dict[str, Any] = {
        "changes": [
            {
                "action": c.action,
                "email": c.email,
                "hubspot_id": c.hubspot_id,
                "values": [[v.property, v.before, v.after] for v in c.changes],
                **({"drift": c.drift} if c.drift else {}),
            }
            for c in plan.contact_changes
        ],
        "rejected": [r.reason for r in plan.rejected],
        "unchanged": plan.unchanged,
        "adoptions": [a.email for a in plan.adoptions],
        "guards": {g.guard: g.status for g in plan.guards},
        "exported": {s: c.contributed for s, c in counts.items() if c.contributed},
        "not_member": {s: c.not_member for s, c in counts.items() if c.not_member},
    }
    return {key: views[key] for key in expected}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: path.stem)
def test_the_plan_of_each_fixture(tmp_path: Path, fixture: Path) -> None:
    case = json.loads(fixture.read_text())
    assert {"description", "refreshed", "desired", "current", "expected"} <= set(case)
    assert set(case) <= {
        "description",
        "refreshed",
        "desired",
        "current",
        "expected",
        "spec",
        "protected",
    }
    plan = build_plan(_inputs(tmp_path, case))
    assert _outcome(plan, case["expected"]) == case["expected"]
    assert {"changes", "unchanged", "adoptions", "guards", "exported"} <= set(case["expected"])


def test_the_same_inputs_make_the_same_plan(tmp_path: Path) -> None:
    case = json.loads(FIXTURES[0].read_text())
    assert build_plan(_inputs(tmp_path, case)) == build_plan(_inputs(tmp_path, case))


def test_build_imports_nothing_that_reads_or_writes() -> None:
    """`build` may not reach HubSpot, the state, the files or the clock."""
    tree = ast.parse(Path(build.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    forbidden = ("syncdsl.hubspot.client", "syncdsl.state", "syncdsl.session", "requests", "os")
    assert not {m for m in imported if m and m.startswith(forbidden)}, imported
    assert not {"sqlite3", "time", "pathlib", "datetime"} & imported
