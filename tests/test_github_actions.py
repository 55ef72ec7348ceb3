"""examples/github-actions/plan.yml: its shell steps, run locally against the emulator.

Each job's `run:` steps are run with bash as GitHub runs them (`bash -e`, the workflow's, job's and
step's `env`, `$GITHUB_OUTPUT`), `${{ ... }}` expressions replaced by test values, `gh` replaced by
a stub that keeps the comment, and the install step skipped (syncdsl is installed here).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.scenario import BASE_SPEC, TOKEN, Workspace, workspace

yaml = pytest.importorskip("yaml")

WORKFLOW = Path(__file__).parent.parent / "examples" / "github-actions" / "plan.yml"
EXPRESSIONS = {
    "secrets.HUBSPOT_TOKEN": TOKEN,
    "github.token": "gh-test-token",
    "github.event.pull_request.number": "17",
}
GH_STUB = """#!/bin/sh
# gh pr comment NUMBER --body-file FILE: keep the comment where the test reads it
echo "$@" > "$GH_CALLS"
cp "$5" "$GH_COMMENT"
"""


def _expand(text: str) -> str:
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: EXPRESSIONS[m.group(1)], text)


def run_job(name: str, cwd: Path, ws: Workspace) -> list[tuple[str, int]]:
    """Run job `name`'s shell steps in `cwd`; return (step name, exit code) of each step run."""
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"][name]
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(GH_STUB)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    base_env = {
        **os.environ,
        **workflow.get("env", {}),
        **job.get("env", {}),
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HUBSPOT_API_BASE": ws.emulator.base_url,
        "GITHUB_OUTPUT": str(cwd / "github_output"),
        "GH_CALLS": str(cwd / "gh_calls"),
        "GH_COMMENT": str(cwd / "comment.md"),
    }
    results: list[tuple[str, int]] = []
    failed = False
    for step in job["steps"]:
        if "run" not in step or step["run"].startswith("pip install"):
            continue
        if failed and "always()" not in str(step.get("if", "")):
            continue
        env = {**base_env, **{k: _expand(str(v)) for k, v in step.get("env", {}).items()}}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"])],
            cwd=cwd,
            env=env,
            text=True,
            capture_output=True,
            timeout=300,
        )
        results.append((step.get("name", step["run"]), done.returncode))
        failed = failed or done.returncode != 0
    return results


NEW_AUDIENCE = '\naudience "Loyal" {\n  source  = profiles\n  segment = "seg-2"\n}\n'


def test_the_workflow_plans_comments_and_applies_against_the_emulator(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    with workspace(specs) as ws:
        ws.write([{"email": "ann@example.com", "first": "Ann", "seg": "realized"}])
        lock = subprocess.run(
            [sys.executable, "-m", "syncdsl", "lock", "specs/"], cwd=tmp_path, capture_output=True
        )
        assert lock.returncode == 0  # the pull request commits syncdsl.lock with the audiences
        pull_request = run_job("plan", tmp_path, ws)
        assert [code for _, code in pull_request] == [0, 0, 0, 0], pull_request
        comment = (tmp_path / "comment.md").read_text()
        assert comment.startswith("### syncdsl plan") and "a•••@example.com" in comment
        assert "firstname: [string, 3 chars]" in comment and '"Ann"' not in comment
        assert (tmp_path / "gh_calls").read_text().split()[:3] == ["pr", "comment", "17"]
        assert "exitcode=2" in (tmp_path / "github_output").read_text()
        assert ws.emulator.all_contacts() == []  # a pull request never writes to HubSpot

        merged = run_job("apply", tmp_path, ws)
        assert [code for _, code in merged] == [0, 0], merged
        contact = ws.emulator.contact_by_email("ann@example.com")
        assert contact is not None and contact["newsletter"] == "realized"

        ws.write([{"email": "ann@example.com", "first": "Ann"}], spec=BASE_SPEC + NEW_AUDIENCE)
        stale = run_job("plan", tmp_path, ws)
        assert [code for _, code in stale] == [0, 0, 1, 0], stale  # plan fails, comment posted
        assert "syncdsl.lock is out of date" in (tmp_path / "comment.md").read_text()
