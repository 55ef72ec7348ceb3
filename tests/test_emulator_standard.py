"""The emulator knows HubSpot's standard contact properties, so mapping to one works locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from syncdsl.emulator.seed import standard_properties
from tests.scenario import BASE_SPEC, workspace
from tests.test_cli_pr import run

RECORDED = (
    Path(__file__).parent.parent.parent
    / "shared"
    / "hubspot-recorded"
    / "crm-v3-properties-contacts-get-200.json"
)
COMMON = (
    "hs_language",
    "lifecyclestage",
    "hs_lead_status",
    "jobtitle",
    "date_of_birth",
    "country",
    "state",
    "zip",
    "website",
    "industry",
    "mobilephone",
    "hs_buying_role",
    "total_revenue",
    "closedate",
)


def test_the_common_standard_properties_are_there_with_types_and_options() -> None:
    properties = standard_properties()
    assert set(COMMON) <= set(properties)
    language = properties["hs_language"]
    assert (language["type"], language["fieldType"]) == ("enumeration", "select")
    assert {"en", "fr", "de", "pt-br"} <= {o["value"] for o in language["options"]}
    assert properties["closedate"]["type"] == "datetime"
    assert properties["total_revenue"]["modificationMetadata"]["readOnlyValue"] is True


@pytest.mark.skipif(not RECORDED.exists(), reason="../shared/hubspot-recorded is absent")
def test_standard_properties_agree_with_a_recorded_portal() -> None:
    recorded = {p["name"]: p for p in json.loads(RECORDED.read_text())["results"]}
    for name, prop in standard_properties().items():
        assert name in recorded, name
        real = recorded[name]
        assert (prop["type"], prop["fieldType"]) == (real["type"], real["fieldType"]), name
        ours = {o["value"] for o in prop["options"]}
        assert ours <= {o["value"] for o in real["options"]}, name
        read_only = bool(real.get("modificationMetadata", {}).get("readOnlyValue"))
        assert prop["modificationMetadata"]["readOnlyValue"] is read_only, name


def test_mapping_to_standard_properties_plans_and_applies_locally(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        "firstname = first",
        "firstname = first\n    hs_language = lang\n    lifecyclestage = stage\n    jobtitle = job",
    )
    with workspace(tmp_path) as ws:
        profile = {"email": "a@example.com", "lang": "fr", "stage": "lead", "job": "Chef"}
        ws.write([{**profile, "seg": "realized"}], spec=spec)
        applied = run(ws, "apply", ".", "--auto-approve")
        assert applied.returncode == 0, applied.stderr
        contact = ws.emulator.contact_by_email("a@example.com")
        assert contact is not None
        assert (contact["hs_language"], contact["lifecyclestage"]) == ("fr", "lead")
        ws.write([{**profile, "lang": "klingon", "seg": "realized"}], spec=spec)
        rejected = run(ws, "plan", ".")
        assert "'klingon' is not one of the options" in rejected.stdout


def test_emulator_command_prints_how_to_edit_and_delete_a_contact_by_hand() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "syncdsl", "emulator", "--port", "0", "--token", "pat-local"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        base = lines[0].split()[-1]
        assert "/crm/v3/objects/contacts/ann@example.com?idProperty=email" in text
        assert 'curl -X PATCH -H "Authorization: Bearer $HUBSPOT_TOKEN"' in text
        assert f'curl -X DELETE -H "Authorization: Bearer $HUBSPOT_TOKEN" \'{base}/crm/v3/' in text
        assert "pat-local" not in "\n".join(lines[3:])  # the curl lines use $HUBSPOT_TOKEN
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
