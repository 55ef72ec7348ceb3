"""Benchmark: local read + map + merge + diff speed (profiles/s wall) and peak RSS of an
incremental plan, beside a bare DuckDB scan of the same files in the same process.

Each size runs in two fresh subprocesses: a setup (generate profiles with bench/generate_profiles.py
and an upload row for every 5th profile, create the schema in a local HubSpot, record every
contact in the state store as applied, then edit 1% of the profiles) and the measured run
(`make_plan` against that state: 2 schema reads, then read + map every record, then diff every
contact against the state; then the bare scan). RSS is the measured process's own.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    TOKEN,
    change_first_names,
    duckdb_scan,
    figure,
    heading,
    write_workspace,
)

from syncdsl.apply.executor import apply_schema
from syncdsl.emulator import Emulator
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.lang.load import load_spec
from syncdsl.plan.definition import PlanOptions
from syncdsl.plan.gather import make_plan
from syncdsl.records.desired import build_desired
from syncdsl.state.lockfile import desired_lock, read_lock, write_lock
from syncdsl.state.store import ContactState, StateStore

#: Issue 15's targets: profiles per second of wall time, within 3x of a bare DuckDB scan, 1 GB.
TARGET_RATE = 150_000
TARGET_SCAN_RATIO = 3.0
TARGET_RSS_MB = 1024
UPLOAD_EVERY = 5
STATE_KEY = "bench:local"
PORTAL = "portal.json"
_DUMMY = "dummy@bench.invalid"


def _client(emulator: Emulator) -> HubSpotClient:
    budget = RateBudget(limit=1_000_000, window_seconds=1.0, search_per_second=1_000_000)
    return HubSpotClient(emulator.base_url, TOKEN, budget=budget)


def setup(root: Path, size: int) -> None:
    """Generate the data, create the schema, and record every desired contact as applied."""
    write_workspace(root, size, upload_every=UPLOAD_EVERY)
    spec = load_spec([root])
    with (
        Emulator(
            token=TOKEN, rate_limits=False, window_limit=1_000_000, state_file=root / PORTAL
        ) as emulator,
        StateStore.open(root) as store,
    ):
        client = _client(emulator)
        store.bind(STATE_KEY)
        # A known, non-empty state: make_plan diffs against it instead of reading HubSpot.
        store.record([ContactState(_DUMMY, None, {}, {})])
        result = make_plan(spec, client, store, state_key=STATE_KEY, options=PlanOptions())
        apply_schema(client, store, result.plan.property_changes)
        write_lock(spec.root, desired_lock(spec, read_lock(spec.root)))
        audiences = set(result.plan.audience_properties)
        states = []
        for number, change in enumerate(result.plan.contact_changes):
            values = {**change.settled, **change.properties}
            states.append(
                ContactState(
                    change.email,
                    str(number + 1),
                    {k: v for k, v in values.items() if k not in audiences},
                    {k: v for k, v in values.items() if k in audiences and v != "exited"},
                )
            )
        store.record(states)
        store.forget([_DUMMY])
        store.mark_applied()
        result.desired.close()
        client.close()
    change_first_names(root)


#: Stages for --breakdown: what each measured subprocess runs instead of the whole plan.
STAGES = {
    "plan": "make_plan as syncdsl runs it",
    "read_map": "build_desired and one pass over the desired contacts (no state, no diff)",
    "state": "one pass over the state store (no sources, no diff)",
}


def measure_stage(root: Path, stage: str) -> dict[str, float]:
    """CPU seconds and peak RSS of one part of the plan, for the --breakdown table."""
    spec = load_spec([root])  # parsing the configuration is not part of any stage
    cpu = time.process_time()
    if stage == "read_map":
        with build_desired(spec) as desired:
            count = sum(1 for _ in desired)
    else:
        with StateStore.open(root) as store:
            count = sum(1 for _ in store.iter_contacts())
    return {
        "count": count,
        "cpu": time.process_time() - cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(root: Path, profile_out: Path | None) -> dict[str, float]:
    """Plan against the state; return counts, CPU and wall seconds, and peak RSS."""
    spec = load_spec([root])
    with (
        Emulator(token=TOKEN, rate_limits=False, state_file=root / PORTAL) as emulator,
        StateStore.open(root) as store,
    ):
        client = _client(emulator)
        baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        profiler = cProfile.Profile() if profile_out else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        result = make_plan(spec, client, store, state_key=STATE_KEY, options=PlanOptions())
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        plan = result.plan
        figures = {
            "desired": len(result.desired),
            "changes": len(plan.contact_changes),
            "unchanged": plan.unchanged,
            "adoptions": len(plan.adoptions),
            "read_calls": plan.estimate.read_calls,
            "cpu": cpu,
            "wall": wall,
            "baseline_mb": baseline_mb,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        result.desired.close()
        client.close()
    figures["scan"] = duckdb_scan(root / "data")  # after the plan: its RSS is the plan's
    if profiler and profile_out:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        profile_out.write_text(text.getvalue())
    return figures


def _records(root: Path) -> tuple[int, int]:
    """Source records read: profile lines, and upload rows (the header is not a record)."""
    data = root / "data"
    with (data / "profiles.jsonl").open("rb") as handle:
        lines = sum(1 for _ in handle)
    with (data / "vip_upload.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    return lines, rows


def breakdown(root: Path, size: int, records: int) -> None:
    heading(f"{size:,} profiles: where the time and memory go (one subprocess per stage)")
    for stage, describe in STAGES.items():
        figures = json.loads(_self(["--measure", str(root), "--stage", stage]).splitlines()[-1])
        label = f"local_{_short(size)}.{stage}"
        figure(
            f"{label}.cpu_seconds",
            f"{figures['cpu']:.2f}",
            f"{records / figures['cpu']:,.0f} records/s; {describe}",
        )
        figure(f"{label}.peak_rss_mb", f"{figures['peak_mb']:.0f}")


def run_size(size: int, *, profile: bool, stages: bool) -> bool:
    """Set up and measure one size in subprocesses; print its figures; True if every target is met."""
    with tempfile.TemporaryDirectory(prefix="syncdsl-bench-local-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        _self(["--setup", str(root), str(size)])
        setup_seconds = time.perf_counter() - started
        profile_out = root / "profile.txt"
        args = ["--measure", str(root)] + (["--profile-out", str(profile_out)] if profile else [])
        figures = json.loads(_self(args).splitlines()[-1])
        profiles, rows = _records(root)
        records = profiles + rows
        rate = profiles / figures["wall"]
        ratio = figures["wall"] / figures["scan"]
        label = f"local_{_short(size)}"
        heading(
            f"{size:,} profiles: incremental plan against a state of every contact "
            f"(setup {setup_seconds:.0f} s, not measured)"
        )
        figure(
            f"{label}.records", f"{records:,}", f"{profiles:,} profile lines + {rows:,} upload rows"
        )
        figure(
            f"{label}.desired_contacts",
            f"{int(figures['desired']):,}",
            f"{int(figures['changes']):,} to change, {int(figures['unchanged']):,} unchanged, "
            f"{int(figures['adoptions']):,} adoptions",
        )
        figure(
            f"{label}.plan_wall_seconds",
            f"{figures['wall']:.2f}",
            f"cpu {figures['cpu']:.2f} s, {int(figures['read_calls'])} HubSpot calls",
        )
        figure(f"{label}.profiles_per_s", f"{rate:,.0f}", f"wall; target >= {TARGET_RATE:,}")
        figure(
            f"{label}.duckdb_scan_seconds",
            f"{figures['scan']:.2f}",
            "bare DuckDB scan of the same files, same process, after the plan",
        )
        figure(f"{label}.plan_vs_scan", f"{ratio:.2f}", f"target <= {TARGET_SCAN_RATIO:g}")
        figure(
            f"{label}.peak_rss_mb",
            f"{figures['peak_mb']:.0f}",
            f"target <= {TARGET_RSS_MB} (before planning: {figures['baseline_mb']:.0f} MB)",
        )
        if profile:
            heading(f"{size:,} profiles: cProfile, top entries by own time")
            print(profile_out.read_text())
        if stages:
            breakdown(root, size, records)
        return (
            rate >= TARGET_RATE
            and ratio <= TARGET_SCAN_RATIO
            and figures["peak_mb"] <= TARGET_RSS_MB
        )


def _short(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"


def _self(args: list[str]) -> str:
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"bench_local: subprocess {args[0]} failed")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated profile counts")
    parser.add_argument("--quick", action="store_true", help="20,000 profiles: a smoke test")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time reading+mapping, the state pass and a plan without "
        "adoptions, each in its own process",
    )
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=2, metavar=("DIR", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup(Path(args.setup[0]), int(args.setup[1]))
        return
    if args.measure:
        root = Path(args.measure)
        if args.stage and args.stage != "plan":
            print(json.dumps(measure_stage(root, args.stage)))
        else:
            print(json.dumps(measure(root, args.profile_out)))
        return
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(f"bench_local: read + map + diff, sizes {', '.join(f'{s:,}' for s in sizes)}")
    started = time.perf_counter()
    met = [run_size(size, profile=args.profile, stages=args.breakdown) for size in sizes]
    heading("summary")
    figure("local.targets_met", f"{sum(met)}/{len(met)}", "sizes meeting every target")
    print(f"\nbench_local finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
