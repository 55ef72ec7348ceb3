"""Each benchmark runs in --quick mode, exits 0 and prints its figure lines (timings not checked)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def _figures(output: str) -> dict[str, str]:
    """The figure lines: two spaces, a dotted key, a value."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^  (\S+\.\S+)\s+(\S+)", output, flags=re.MULTILINE)
    }


def test_calls_quick_meets_every_floor() -> None:
    figures = _figures(_run("bench_calls.py", "--quick"))
    for phase in ("load", "change_1pct", "no_change", "refresh"):
        for kind in ("write_calls", "read_calls", "schema_reads", "member_searches"):
            assert f"{phase}.{kind}" in figures
    # Call counts are deterministic (no rate limits, no faults): these are real checks.
    assert figures["no_change.contact_calls"] == "0"
    assert figures["change_1pct.read_calls"] == "0"
    assert figures["end_state.wrong_contacts"] == "0"
    assert figures["calls.floors_missed"] == "0"


def test_rate_quick_prints_ratios_and_stays_correct() -> None:
    figures = _figures(_run("bench_rate.py", "--quick"))
    for variant in ("matched", "too_high_blind"):
        for kind in (
            "apply_calls",
            "ratio_ideal",
            "ratio_tightest",
            "responses_429",
            "wrong_contacts",
        ):
            assert f"{variant}.{kind}" in figures
        assert figures[f"{variant}.wrong_contacts"] == "0"
    assert float(figures["matched.ratio_ideal"]) > 0
    assert figures["rate.wrong_end_states"] == "0"


def test_local_quick_prints_speed_and_memory() -> None:
    figures = _figures(_run("bench_local.py", "--quick"))
    assert float(figures["local_20k.profiles_per_s"].replace(",", "")) > 0
    assert float(figures["local_20k.peak_rss_mb"]) > 0
    assert figures["local_20k.desired_contacts"] == "19,800"
    assert "local.targets_met" in figures


def test_fmt_quick_times_validate_and_fmt_on_generated_specs() -> None:
    output = _run("bench_fmt.py", "--quick")
    figures = _figures(output)
    for size in (250, 500):
        assert float(figures[f"fmt_{size}.validate_s"]) > 0
        assert float(figures[f"fmt_{size}.fmt_s"]) > 0
    assert "fmt_250_500.fmt_growth" in figures
    # The generated spec is valid and deliberately untidy: validate passes, fmt --check finds work.
    assert "exit 0, 1,441 lines" in output and "exit 1 (1: would reformat)" in output


def test_run_all_collects_figures() -> None:
    output = _run("run_all.py", "--quick", "--only", "calls")
    assert "every figure, side by side" in output
    assert "[calls] ok" in output
    assert "calls.floors_missed" in output


def test_peer_quick_side_by_side() -> None:
    if importlib.util.find_spec("hubspot") is None:
        output = _run("peers/hubspot_peer.py", "--quick")
        assert output.startswith("SKIP: hubspot-api-client is not installed")
        pytest.skip("hubspot-api-client is not installed (benchmark-only dependency)")
    output = _run("peers/hubspot_peer.py", "--quick", "--conditions", "clean")
    figures = _figures(output)
    for phase in ("load", "change_1pct", "no_change"):
        assert f"peer_clean.{phase}.calls_ratio" in figures
    # Without limits or faults both reach the desired state; the peer re-reads everything.
    assert figures["peer_clean.no_change.wrong"] == "0/0"
    assert "syncdsl" in output and "peer+README retry" in output


def test_first_plan_quick_runs_every_way_and_applies() -> None:
    figures = _figures(_run("bench_first_plan.py", "--quick"))
    for kind in ("text", "json", "saved", "apply"):
        assert f"first_plan_6k.{kind}.peak_rss_mb" in figures
    assert figures["first_plan.targets_met"] == "1/1"
