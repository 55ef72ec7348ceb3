"""Rejected records leave the process only as the rejects file and JSON keep them: plan text and
Markdown show file:line and the reason, never the raw record; nothing shows the HubSpot token."""

from __future__ import annotations

import json
from pathlib import Path

from syncdsl.scrub import MASK, clip_quoted, shown_reason
from tests.scenario import BASE_SPEC, SEGMENT, TOKEN, workspace
from tests.test_cli_run import run

SPEC = (
    BASE_SPEC.replace("    firstname = first\n", "    firstname = first\n    score     = score\n")
    + 'property "score" {\n  type = "number"\n}\n'
)
LONG = "n" * 500


def _lines() -> list[str]:
    member = {"segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}}}
    return [
        json.dumps({"email": "ok@example.com", "first": "Ok", **member}),
        json.dumps({"email": TOKEN, "first": "Leak", **member}),  # the token as an identity
        json.dumps({"email": "long@example.com", "score": LONG, **member}),
        '{"email": "' + TOKEN + '", broken',  # not JSON: the reason cannot quote a value
    ]


def test_rejected_records_and_the_token_stay_out_of_plans_and_reports(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([], spec=SPEC)
        lines = _lines()
        (ws.root / "profiles.jsonl").write_text("".join(line + "\n" for line in lines))
        text = run(ws, "plan", ".", check=True).stdout
        markdown = run(ws, "plan", ".", "--markdown", check=True).stdout
        document = run(ws, "plan", ".", "--json", check=True).stdout
        run(ws, "plan", ".", "--out", "plan.json", check=True)
        saved = (ws.root / "plan.json").read_text()
        report = run(ws, "apply", ".", "--auto-approve", "--json", check=True).stdout
        rejects = (ws.root / ".syncdsl" / "rejects.jsonl").read_text()

        for shown in (text, markdown, document, saved, report, rejects):
            assert TOKEN not in shown
        for shown in (text, markdown):
            assert LONG[:201] not in shown  # the long value is clipped in the reason
            assert "profiles.jsonl:2" in shown and "profiles.jsonl:4" in shown
            assert "profiles.jsonl:3" in shown and "…" in shown
            for line in lines[1:]:
                assert line not in shown and line.replace(TOKEN, MASK) not in shown

        for rejected in (
            json.loads(document)["rejected"],
            json.loads(saved)["rejected"],
            json.loads(report)["rejected"],
            [json.loads(line) for line in rejects.splitlines()],
        ):
            assert all(LONG[:201] not in r["reason"] for r in rejected)
            raws = {r["line"]: r.get("raw", r.get("record")) for r in rejected}
            assert raws == {
                2: lines[1].replace(TOKEN, MASK),
                3: lines[2],  # no secret in it: kept whole, to be fixed and replayed
                4: lines[3].replace(TOKEN, MASK),
            }


def test_reasons_keep_at_most_200_characters_of_a_quoted_value() -> None:
    reason = f"property 'score': expected a number, got {'x' * 300!r}"
    clipped = clip_quoted(reason)
    assert clipped == f"property 'score': expected a number, got '{'x' * 200}…'"
    assert clip_quoted("short 'value' kept") == "short 'value' kept"
    assert len(clip_quoted("y" * 5000)) == 1000
    assert len(shown_reason(f"got {'z' * 50_000!r} and {'w' * 50_000!r}")) < 500
