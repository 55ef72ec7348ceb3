"""Only audience members reach HubSpot: a 5,000-profile export planned and applied by the CLI.

The expected members are computed here straight from the files (last record per email, the
segment's status, every upload row), independently of syncdsl's own pipeline.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.generate_profiles import SEGMENT, write_profiles
from syncdsl.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "pat-na1-members-only"


def _expected_members(data: Path) -> tuple[set[str], set[str]]:
    """(members, everyone with a valid-looking email), from the files alone."""
    latest: dict[str, str | None] = {}
    for line in (data / "profiles.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        email = record["personalEmail"]["address"].strip().lower()
        if email.endswith("@"):
            continue  # the generator's invalid identities
        entry = record["segmentMembership"]["ups"].get(SEGMENT) or {}
        latest[email] = entry.get("status", "realized")
    members = {email for email, status in latest.items() if status in ("realized", "existing")}
    with (data / "vip_upload.csv").open(encoding="utf-8-sig", newline="") as handle:
        uploads = {row["Email"].strip().lower() for row in csv.DictReader(handle)}
    return members | uploads, set(latest) | uploads


def test_a_5000_profile_export_creates_exactly_the_members(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "specs" / "example.sync", tmp_path / "main.sync")
    write_profiles(5_000, tmp_path / "data")
    members, everyone = _expected_members(tmp_path / "data")
    assert len(everyone) > len(members) > 0  # the export holds non-members to leave out
    with Emulator(token=TOKEN, rate_limits=False) as hubspot:
        env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": hubspot.base_url}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "syncdsl", *args],
                cwd=tmp_path,
                env=env,
                text=True,
                capture_output=True,
                timeout=300,
                check=False,
            )

        planned = cli("plan", ".", "--json")
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        creates = {c["email"] for c in plan["contact_changes"] if c["action"] == "create"}
        assert creates == members
        inputs = {counts["source"]: counts for counts in plan["inputs"]}
        for counts in inputs.values():
            assert counts["records"] == (
                counts["contributed"] + counts["merged"] + counts["rejected"] + counts["not_member"]
            )
        assert inputs["profiles"]["not_member"] > 0
        applied = cli("apply", ".", "--auto-approve", "--json")
        assert applied.returncode == 0, applied.stderr
        held = {(c.get("email") or "").lower() for c in hubspot.all_contacts()}
        assert held == members  # nobody outside the audiences left the platform
