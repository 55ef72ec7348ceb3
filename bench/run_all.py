"""Run every benchmark (each in its own process, one after another) and print all figures together."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
FIGURE = re.compile(r"^  (\S+\.\S+)\s+(\S+)(?:\s+(.*))?$")
SKIP = "SKIP:"


@dataclass(frozen=True)
class Bench:
    """One benchmark script; `default` and `quick` are its arguments for each mode."""

    name: str
    script: str
    default: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)


BENCHES = (
    Bench("calls", "bench_calls.py"),
    Bench("rate", "bench_rate.py"),
    Bench("local", "bench_local.py"),
    Bench("first_plan", "bench_first_plan.py"),
    Bench("peer", "peers/hubspot_peer.py"),
    # Owned by other engineers; run when present.
    Bench("sources", "bench_sources.py"),
    Bench("stream", "bench_stream.py"),
    Bench("intake", "bench_intake.py"),
    Bench("fmt", "bench_fmt.py"),
)


def run(bench: Bench, *, quick: bool) -> tuple[int, str, float]:
    script = BENCH_DIR / bench.script
    args = bench.quick if quick else bench.default
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False
    )
    output = result.stdout + (result.stderr if result.returncode else "")
    return result.returncode, output, time.perf_counter() - started


def figures(output: str) -> list[tuple[str, str, str]]:
    found = []
    for line in output.splitlines():
        match = FIGURE.match(line)
        if match:
            found.append((match.group(1), match.group(2), match.group(3) or ""))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every benchmark in --quick mode")
    parser.add_argument(
        "--only",
        action="append",
        help="run only these (calls, rate, local, peer, sources, stream, intake, fmt); repeatable",
    )
    args = parser.parse_args()
    chosen = [
        b
        for b in BENCHES
        if (args.only is None or b.name in args.only) and (BENCH_DIR / b.script).exists()
    ]
    results: dict[str, tuple[int, str, float]] = {}
    for bench in chosen:
        mode = bench.quick if args.quick else bench.default
        print(f"\n######## {bench.name}: {bench.script} {' '.join(mode)}", flush=True)
        results[bench.name] = run(bench, quick=args.quick)
        code, output, seconds = results[bench.name]
        print(output.rstrip())
        print(f"(exit {code}, {seconds:.1f} s)", flush=True)
    print("\n######## every figure, side by side")
    failed = []
    for name, (code, output, seconds) in results.items():
        status = "failed" if code else ("skipped" if output.lstrip().startswith(SKIP) else "ok")
        print(f"\n[{name}] {status}, {seconds:.0f} s")
        if code:
            failed.append(name)
        found = figures(output)
        for key, value, detail in found:
            print(f"  {key:<38} {value:>12}  {detail}".rstrip())
        if not found:  # a benchmark with its own layout: its lines as they are
            for line in output.strip().splitlines():
                print(f"  {line}")
    if failed:
        raise SystemExit(f"run_all: {', '.join(failed)} failed")


if __name__ == "__main__":
    main()
