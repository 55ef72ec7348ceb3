"""The new-contact guard: a plan that would create more contacts than its limit is shown, then
refused, unless `--allow-new-contacts`; every plan says how many it creates and that HubSpot may
bill them as marketing contacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncdsl.errors import PlanError
from syncdsl.state.store import ContactState, StateStore
from tests.scenario import BASE_SPEC, workspace
from tests.test_cli_run import run


def _people(n: int, prefix: str = "p") -> list[dict[str, str]]:
    return [{"email": f"{prefix}{i:05d}@example.com", "seg": "realized"} for i in range(n)]


def _verdict(plan: object) -> tuple[str, str, int | None]:
    (verdict,) = [v for v in plan.guards if v.guard == "new-contacts"]  # type: ignore[attr-defined]
    return verdict.status, verdict.detail, verdict.limit


def test_a_first_apply_into_an_empty_state_has_no_limit_and_says_so(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(1_200))
        status, detail, limit = _verdict(ws.plan())
    assert (status, limit) == ("passed", None)
    assert detail.startswith("1,200 contact(s) would be created (no limit on a first apply")
    assert "marketing contacts" in detail


def test_the_default_limit_is_a_tenth_of_the_state_with_a_floor(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write(_people(5, "known"))
        ws.apply()
        known = _people(5, "known")
        ws.write(known + _people(1_000))  # at the floor: 1,000 of 5 tracked
        assert _verdict(ws.plan())[::2] == ("passed", 1_000)
        ws.write(known + _people(1_001))  # above it: shown, then refused
        with pytest.raises(PlanError, match=r"new-contact guard: 1,001 contact\(s\) would be"):
            ws.plan()
        status, detail, _ = _verdict(ws.plan(allow_new_contacts=True))
        assert status == "allowed" and "--allow-new-contacts" in detail


def test_max_new_contacts_sets_the_limit_below_at_and_above(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        'tier  = "professional"', 'tier  = "professional"\n  max_new_contacts = 2'
    )
    with workspace(tmp_path) as ws:
        for count, status in ((1, "passed"), (2, "passed")):
            ws.write(_people(count), spec=spec)
            assert _verdict(ws.plan())[:1] == (status,)
        ws.write(_people(3), spec=spec)  # even on a first apply, a limit written is kept
        with pytest.raises(PlanError, match="max_new_contacts"):
            ws.plan()


def test_the_cli_shows_the_plan_then_refuses_and_the_flag_allows(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        'tier  = "professional"', 'tier  = "professional"\n  max_new_contacts = 1'
    )
    with workspace(tmp_path) as ws:
        ws.write(_people(2), spec=spec)
        refused = run(ws, "plan", ".")
        assert refused.returncode == 1
        assert "Contacts to create (2)" in refused.stdout  # the plan first, then the refusal
        assert "--allow-new-contacts" in refused.stderr
        document = json.loads(run(ws, "plan", ".", "--json").stdout)
        assert document["new_contacts"]["count"] == 2 and document["new_contacts"]["limit"] == 1
        assert "marketing contacts" in document["new_contacts"]["note"]
        assert run(ws, "apply", ".", "--auto-approve").returncode == 1
        assert ws.emulator.all_contacts() == []
        allowed = run(ws, "apply", ".", "--auto-approve", "--allow-new-contacts")
        assert allowed.returncode == 0, allowed.stderr
        assert len(ws.emulator.all_contacts()) == 2


def test_resuming_an_interrupted_first_apply_keeps_it_a_first_apply(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        people = _people(1_500)
        ws.write(people)
        with StateStore.open(ws.root) as store:
            store.bind(ws.emulator.base_url)
            store.begin_apply(refreshed=True)  # then a crash, after 200 contacts were recorded
            store.record(
                ContactState(p["email"], str(n + 1), {}, {}) for n, p in enumerate(people[:200])
            )
        status, detail, limit = _verdict(ws.plan())
        assert (status, limit) == ("passed", None) and "first apply" in detail
        with StateStore.open(ws.root) as store:
            store.mark_applied()  # finished: from now on the state's size sets the limit
        with pytest.raises(PlanError, match="limit 1,000: the default"):
            ws.plan()
