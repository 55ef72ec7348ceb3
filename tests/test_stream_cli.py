"""`syncdsl stream` as a real process: kill -9 and restart lose nothing; SIGTERM drains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.scenario import SEGMENT, TOKEN, Workspace, workspace

SYNCDSL = [sys.executable, "-m", "syncdsl"]


def wait_for(condition: Callable[[], object], *, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@contextmanager
def stream_process(
    ws: Workspace, *args: str, stdin: int | None = None, env_extra: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `syncdsl stream . --port 0 ARGS`; yield it and its URL (read from its first line)."""
    env = {
        **os.environ,
        "HUBSPOT_TOKEN": TOKEN,
        "HUBSPOT_API_BASE": ws.emulator.base_url,
        **(env_extra or {}),
    }
    process = subprocess.Popen(
        [*SYNCDSL, "stream", ".", "--port", "0", *args],
        cwd=ws.root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=stdin,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Listening on http://127.0.0.1:"), first + (
            process.stderr.read() if process.stderr else ""
        )
        yield process, first.split()[2]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _profiles(prefix: str, count: int, status: str = "realized") -> list[dict[str, object]]:
    return [
        {
            "email": f"{prefix}{i:04d}@example.com",
            "first": f"{prefix}{i}",
            "segmentMembership": {"ups": {SEGMENT: {"status": status}}},
        }
        for i in range(count)
    ]


def test_kill_9_then_restart_loses_nothing_acknowledged(tmp_path: Path) -> None:
    # Each HubSpot call takes 0.2 s: the 6 batches cannot all be sent before the kill.
    with workspace(tmp_path, latency=0.2) as ws:
        ws.write([])
        acknowledged: list[str] = []
        with stream_process(ws, "--parallelism", "2", "--window-ms", "20") as (process, url):
            for start in range(0, 600, 50):
                chunk = _profiles("k", 600)[start : start + 50]
                answer = requests.post(f"{url}/v1/profiles", json=chunk, timeout=10)
                assert answer.status_code == 202 and answer.json()["accepted"] == 50
                acknowledged += [str(p["email"]) for p in chunk]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        sent_before_restart = sum(1 for e in acknowledged if ws.emulator.contact_by_email(e))
        assert sent_before_restart < len(acknowledged), "the kill must land before the end"
        with stream_process(ws, "--window-ms", "20") as (process, url):
            wait_for(
                lambda: all(ws.emulator.contact_by_email(e) for e in acknowledged),
                what="every acknowledged event in HubSpot",
            )
            status = requests.get(f"{url}/status", timeout=5).json()
            wait_for(
                lambda: requests.get(f"{url}/status", timeout=5).json()["queue_depth"] == 0,
                what="an empty queue",
            )
            assert status["status"] == "running"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        for index, email in enumerate(acknowledged):
            got = ws.emulator.contact_by_email(email) or {}
            assert got.get("firstname") == f"k{index}" and got.get("newsletter") == "realized"


def test_sigterm_stops_intake_drains_and_exits_0(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        # A window far longer than the test: only the drain can send these events.
        with stream_process(ws, "--window-ms", "60000", "--grace-seconds", "20") as (process, url):
            answer = requests.post(f"{url}/v1/profiles", json=_profiles("d", 30), timeout=10)
            assert answer.status_code == 202
            assert ws.emulator.count("contacts.batch_upsert") == 0
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert process.stderr is not None
            errors = process.stderr.read()
        assert all(ws.emulator.contact_by_email(f"d{i:04d}@example.com") for i in range(30))
        logged = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
        stopped = [line for line in logged if line["event"] == "stream_stopped"]
        assert stopped and stopped[0]["drained"] is True and stopped[0]["left_queued"] == 0
        assert "Traceback" not in errors


def test_events_that_cannot_be_sent_in_the_grace_period_stay_queued(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with stream_process(ws, "--window-ms", "10", "--grace-seconds", "0.5") as (process, url):
            ws.emulator.faults.fail_rate = 1.0
            assert (
                requests.post(f"{url}/v1/profiles", json=_profiles("g", 5), timeout=10).status_code
                == 202
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        ws.emulator.faults.fail_rate = 0.0
        with stream_process(ws, "--window-ms", "10") as (process, url):
            wait_for(
                lambda: all(
                    ws.emulator.contact_by_email(f"g{i:04d}@example.com") for i in range(5)
                ),
                what="the queued events after restart",
            )


def test_stdin_input_and_token_secrecy(tmp_path: Path) -> None:
    lines = "".join(json.dumps(p) + "\n" for p in _profiles("s", 3))
    with workspace(tmp_path) as ws:
        ws.write([])
        with stream_process(
            ws,
            "--input",
            "-",
            "--ingest-token-env",
            "INTAKE_SECRET",
            "--window-ms",
            "10",
            stdin=subprocess.PIPE,
            env_extra={"INTAKE_SECRET": "intake-xyz"},
        ) as (process, url):
            assert process.stdin is not None
            process.stdin.write(lines)
            process.stdin.close()
            wait_for(
                lambda: all(
                    ws.emulator.contact_by_email(f"s{i:04d}@example.com") for i in range(3)
                ),
                what="stdin events",
            )
            assert (
                requests.post(
                    f"{url}/v1/profiles", json={"email": "x@example.com"}, timeout=5
                ).status_code
                == 401
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert process.stdout is not None and process.stderr is not None
            output, errors = process.stdout.read(), process.stderr.read()
        for text in (output, errors):
            assert TOKEN not in text and "intake-xyz" not in text
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_missing_intake_secret_and_help(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": ws.emulator.base_url}
        env.pop("NOT_SET_ANYWHERE", None)
        result = subprocess.run(
            [*SYNCDSL, "stream", ".", "--ingest-token-env", "NOT_SET_ANYWHERE"],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 1 and "NOT_SET_ANYWHERE" in result.stderr
        assert "Traceback" not in result.stderr
    usage = subprocess.run(
        [*SYNCDSL, "stream", "--help"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 0 and "--max-queue" in usage.stdout
