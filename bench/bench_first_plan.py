"""Benchmark: peak RSS and wall time of a first plan into an empty portal, as users run it.

A first plan has no state, so it reads every desired contact from HubSpot (a batch read per 100)
and every member is a change: the plan holds the most change records it ever will. Each size
runs `syncdsl plan DIR` three ways in fresh subprocesses, against a local HubSpot served from its
own process (so its memory is not the client's):
- the text plan (what a terminal shows),
- `--json` to a file,
- `--out plan.json` (a saved plan), then `syncdsl apply plan.json` (which reads it back and
  writes every contact to the local HubSpot).
The rate budget of the declared tier is lifted in the measured process (HubSpot's ceiling would
make a 1M first plan read for ~9 minutes, which says nothing of syncdsl's memory). RSS is the
measured process's own (wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import TOKEN, RemoteEmulator, figure, heading, write_workspace

TARGET_RSS_MB = 1024


def run_cli(args: list[str]) -> None:
    """Run the syncdsl CLI in this process with the tiers' rate budgets lifted."""
    from syncdsl.cli import main as cli_main
    from syncdsl.hubspot import tiers

    for name in list(tiers.TIERS):
        tiers.TIERS[name] = tiers.TierLimits(name, 1_000_000, 10**12)
    sys.argv = ["syncdsl", *args]
    cli_main()


def measured(args: list[str], env: dict[str, str], stdout: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB, exit code) of one CLI run in a fresh subprocess."""
    started = time.perf_counter()
    with stdout.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(errors.decode(errors="replace"))
        raise SystemExit(f"bench_first_plan: syncdsl {' '.join(args)} exited {code}")
    return wall, usage.ru_maxrss / 1024


def run_size(size: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="syncdsl-bench-first-") as tmp:
        root = Path(tmp) / "config"
        write_workspace(root, size, upload_every=5)
        with RemoteEmulator(token=TOKEN, rate_limits=False, window_limit=1_000_000) as emulator:
            env = {
                **os.environ,
                "HUBSPOT_API_BASE": emulator.base_url,
                "HUBSPOT_TOKEN": TOKEN,
            }
            heading(f"{size:,} profiles: first plan into an empty portal")
            saved = Path(tmp) / "plan.json"
            runs = {
                "text": (["plan", str(root)], Path(tmp) / "plan.txt"),
                "json": (["plan", str(root), "--json"], Path(tmp) / "plan-json.json"),
                "saved": (["plan", str(root), "--out", str(saved)], Path(tmp) / "out.txt"),
                "apply": (["apply", str(saved)], Path(tmp) / "apply.txt"),
            }
            label = f"first_plan_{size // 1000}k"
            met = True
            for kind, (args, stdout) in runs.items():
                wall, peak = measured(args, env, stdout)
                size_mb = stdout.stat().st_size / 1e6
                if kind == "saved":
                    size_mb = saved.stat().st_size / 1e6
                figure(f"{label}.{kind}.wall_seconds", f"{wall:.1f}", f"syncdsl {args[0]}")
                figure(
                    f"{label}.{kind}.peak_rss_mb",
                    f"{peak:.0f}",
                    f"target <= {TARGET_RSS_MB}; output {size_mb:,.1f} MB",
                )
                met = met and peak <= TARGET_RSS_MB
            done = next(
                (line for line in runs["apply"][1].read_text().splitlines() if "created" in line),
                "no apply summary",
            )
            figure(f"{label}.apply.summary", done.split(":")[0], done.split(":", 1)[-1].strip())
            return met


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--cli":
        run_cli(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000", help="comma-separated profile counts")
    parser.add_argument("--quick", action="store_true", help="6,000 profiles: a smoke test")
    args = parser.parse_args()
    sizes = [6_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(f"bench_first_plan: sizes {', '.join(f'{s:,}' for s in sizes)}")
    met = [run_size(size) for size in sizes]
    heading("summary")
    figure("first_plan.targets_met", f"{sum(met)}/{len(met)}", "sizes within the RSS target")


if __name__ == "__main__":
    main()
