"""Plans too long for memory: change records on disk (`syncdsl.plan.spill`), and the `--json`
and saved plans written and read back a line at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncdsl.plan import spill
from syncdsl.plan.definition import (
    ADOPTIONS,
    CHANGES,
    Adoption,
    ContactChange,
    ValueChange,
    contact_change,
)
from syncdsl.plan.spill import Spilled, SpillWriter
from syncdsl.records.outcome import Origin
from tests.scenario import workspace
from tests.test_cli_run import run

AWKWARD = [
    "",
    "plain",
    'quote " and \\ backslash',
    "line\nbreak\r",
    "\u2028sep\u2029",
    "é 中 🙂",
    "\x00\x1f",
]


def _change(number: int, text: str = "x") -> ContactChange:
    return contact_change(
        ("create", "update", "exit")[number % 3],
        f"p{number}@example.com",
        (ValueChange("firstname", None if number % 2 else text, f"{text}{number}"),),
        hubspot_id=None if number % 3 == 0 else str(1000 + number),
        provenance=(Origin(f"data/{text}.jsonl", number + 1),),
        drift=number % 5 == 0,
        settled={"city": text} if number % 4 else {},
        resolved_via=f"alt{number}@example.com" if number % 7 == 0 else None,
        reason="consent withheld" if number % 11 == 0 else None,
        by_id=number % 13 == 0,
    )


def _spilled(records: list[ContactChange], spill_at: int) -> Spilled[ContactChange]:
    writer = SpillWriter(CHANGES, spill_at=spill_at)
    writer.extend(records)
    return writer.close()


@pytest.mark.parametrize("spill_at", [0, 3, 10_000])
def test_spilled_changes_read_back_as_written(spill_at: int) -> None:
    records = [_change(n, AWKWARD[n % len(AWKWARD)]) for n in range(250)]
    log = _spilled(records, spill_at)
    assert log.on_disk == (spill_at < len(records))
    assert list(log) == records
    assert log == records and log == tuple(records) and log != records[:-1]
    assert len(log) == 250 and bool(log)
    assert log[0] == records[0] and log[-1] == records[-1] and log[137] == records[137]
    assert list(log[10:20]) == records[10:20] and list(log[::50]) == records[::50]
    with pytest.raises(IndexError):
        log[250]
    for action in ("create", "update", "exit"):
        of_kind = [r for r in records if r.action == action]
        assert log.kind_count(action) == len(of_kind)
        assert list(log.first_of(action, 5)) == of_kind[:5]
        assert list(log.first_of(action, 200)) == of_kind  # more than HEAD keeps: read on
        assert list(log.first_of(action, None)) == of_kind
    assert list(iter(log)) == records  # a second pass reads the file again


def test_first_of_beyond_the_kept_head_reads_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "HEAD", 2)
    records = [_change(n) for n in range(30)]
    log = _spilled(records, 0)
    creates = [r for r in records if r.action == "create"]
    assert list(log.first_of("create", 2)) == creates[:2]
    assert list(log.first_of("create", 7)) == creates[:7]


def test_map_applies_as_read_and_keeps_the_file() -> None:
    records = [_change(n) for n in range(40)]
    log = _spilled(records, 0)
    upper = log.map(lambda c: contact_change(c.action, c.email.upper(), c.changes))
    assert [c.email for c in upper] == [r.email.upper() for r in records]
    assert upper[5].email == records[5].email.upper()
    assert next(upper.first_of("exit", 1)).email == records[2].email.upper()
    assert list(log) == records  # the original is unchanged


def test_empty_and_in_memory_lists_touch_no_disk() -> None:
    empty = Spilled.of(CHANGES)
    assert not empty and empty == () and list(empty.first_of("create", 5)) == []
    adoptions = Spilled.of(ADOPTIONS, [Adoption("a@example.com", "1", {"city": "X"}, {})])
    assert not adoptions.on_disk and adoptions[0].properties == {"city": "X"}


@given(st.lists(st.tuples(st.text(), st.one_of(st.none(), st.text())), max_size=30))
def test_any_values_survive_the_disk(values: list[tuple[str, str | None]]) -> None:
    records = [
        contact_change("update", f"{n}@example.com", (ValueChange("p", before, after),))
        for n, (after, before) in enumerate(values)
    ]
    assert list(_spilled(records, 0)) == records


def test_a_plan_longer_than_memory_holds_goes_through_the_cli(tmp_path: Path) -> None:
    """More changes than SPILL_AT: `plan --json`, `plan --out` and `apply FILE` read and write
    them a line at a time, and every contact arrives."""
    count = spill.SPILL_AT + 500
    with workspace(tmp_path) as ws:
        ws.write(
            [
                {"email": f"p{n:05d}@example.com", "first": f"P{n}", "seg": "realized"}
                for n in range(count)
            ]
        )
        shown = run(ws, "plan", ".", "--json", check=True)
        document = json.loads(shown.stdout)
        assert document["summary"]["create"] == count == len(document["contact_changes"])
        assert document["contact_changes"][-1]["email"] == f"p{count - 1:05d}@example.com"
        text = run(ws, "plan", ".", check=True).stdout
        assert f"Contacts to create ({count:,}):" in text
        assert f"… and {count - 20:,} more" in text
        run(ws, "plan", ".", "--out", "big.plan", check=True)
        saved = (ws.root / "big.plan").read_text()
        assert saved.count('\n    {"action":') == count  # one change per line
        applied = run(ws, "apply", "big.plan", check=True)
        assert f"{count:,} created" in applied.stdout
        emails = {c["email"] for c in ws.emulator.all_contacts()}
        assert len(emails) == count
        again = json.loads(run(ws, "plan", ".", "--json", check=True).stdout)
        assert again["contact_changes"] == [] and again["summary"]["unchanged"] == count
