"""Benchmark: API calls of plan + apply against the floor (load, 1% change, no change, refresh)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import (
    CONTACT_READS,
    CONTACT_WRITES,
    SCHEMA_READS,
    SCHEMA_WRITES,
    SEARCHES,
    TOKEN,
    Phase,
    Runner,
    change_first_names,
    desired_end_state,
    end_state_mismatches,
    figure,
    floor_calls,
    heading,
    ratio,
    total,
    write_workspace,
)

from syncdsl.emulator import Emulator

# The emulator still sends rate-limit headers without limits, and the client obeys them: say a lot.
UNLIMITED = 1_000_000
MANUAL_EDIT_EVERY = 200  # --refresh phase: a person edits every 200th contact (0.5%) in HubSpot


def report_phase(name: str, phase: Phase, *, read_floor: int) -> None:
    """Print one phase's calls: contact writes and reads against their floors, the rest apart."""
    ops = phase.plan_ops + phase.apply_ops
    writes = total(ops, CONTACT_WRITES)
    reads = total(ops, CONTACT_READS)
    write_floor = floor_calls(phase.changed)
    heading(f"{name}: {phase.changed:,} contacts to change")
    figure(
        f"{name}.write_calls",
        writes,
        f"floor {write_floor} (ceil(changed/100)), ratio {ratio(writes, write_floor)}",
    )
    figure(f"{name}.read_calls", reads, f"floor {read_floor}, ratio {ratio(reads, read_floor)}")
    figure(f"{name}.schema_reads", total(ops, SCHEMA_READS), "properties + groups lists")
    figure(f"{name}.member_searches", total(ops, SEARCHES), "search pages for audience members")
    figure(f"{name}.schema_writes", total(ops, SCHEMA_WRITES))
    figure(
        f"{name}.all_calls",
        sum(ops.values()),
        f"plan {phase.plan_seconds:.2f} s, apply {phase.apply_seconds:.2f} s",
    )


def run(size: int, *, parallelism: int) -> int:
    """Run the four phases; return the number of figures that missed their floor."""
    misses = 0
    with (
        tempfile.TemporaryDirectory(prefix="syncdsl-bench-calls-") as tmp,
        Emulator(token=TOKEN, rate_limits=False, window_limit=UNLIMITED, seed=7) as emulator,
    ):
        root = Path(tmp)
        write_workspace(root, size)
        runner = Runner(root, emulator, parallelism=parallelism)
        print(
            f"bench_calls: {size:,} profiles (specs/example.sync), emulator without rate limits "
            "or faults"
        )

        load = runner.run()
        # A first plan with no state reads HubSpot by email: one batch read per 100 desired.
        desired = load.changed + load.plan.unchanged
        report_phase("load", load, read_floor=floor_calls(desired))
        misses += _miss(load, floor_calls(desired))

        changed = change_first_names(root)
        change = runner.run()
        report_phase("change_1pct", change, read_floor=0)
        figure("change_1pct.profiles_edited", changed, "first names rewritten in the source")
        misses += _miss(change, 0)

        same = runner.run()
        report_phase("no_change", same, read_floor=0)
        misses += _miss(same, 0)
        contact_calls = total(
            same.plan_ops + same.apply_ops, CONTACT_READS + CONTACT_WRITES + ("contacts.search",)
        )
        figure("no_change.contact_calls", contact_calls, "a re-apply must spend none")
        misses += contact_calls != 0

        edited = _edit_in_portal(emulator, root)
        refresh = runner.run(refresh=True)
        report_phase("refresh", refresh, read_floor=floor_calls(desired))
        figure("refresh.manual_edits", edited, "values changed by hand in HubSpot")
        figure("refresh.drift_repaired", refresh.changed, "contacts put back by the apply")
        misses += _miss(refresh, floor_calls(desired))

        wrong = end_state_mismatches(emulator, desired_end_state(root))
        heading("end state")
        figure("end_state.wrong_contacts", wrong, f"of {desired:,} desired")
        misses += wrong != 0
    return misses


def _miss(phase: Phase, read_floor: int) -> int:
    ops = phase.plan_ops + phase.apply_ops
    return int(
        total(ops, CONTACT_WRITES) > floor_calls(phase.changed)
        or total(ops, CONTACT_READS) > read_floor
    )


def _edit_in_portal(emulator: Emulator, root: Path) -> int:
    """A person edits the first name of every 200th contact in the HubSpot UI."""
    emails = sorted(desired_end_state(root))
    edited = 0
    for email in emails[::MANUAL_EDIT_EVERY]:
        emulator.set_contact_property(email, "firstname", "EditedByHand")
        edited += 1
    return edited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000, help="profiles (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 profiles: a smoke test")
    parser.add_argument("--parallelism", type=int, default=8, help="batches in flight")
    args = parser.parse_args()
    started = time.perf_counter()
    misses = run(1_000 if args.quick else args.size, parallelism=args.parallelism)
    heading("summary")
    figure("calls.floors_missed", misses, "phases whose contact calls exceed the floor")
    print(f"\nbench_calls finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
