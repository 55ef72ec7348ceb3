"""Faults campaign: kill -9 an apply at random points, resume, and compare with a clean apply.

    python tests/fuzz/kill_apply.py [--kills 10] [--people 3000] [--seed 1]

`syncdsl apply` runs as a subprocess against a `syncdsl emulator` subprocess answering 5% of
requests with 5xx and dropping 1% of connections; each apply is killed (SIGKILL) after a random
delay, then resumed. After the last resume, the portal must equal a clean apply's: every contact
once (0 duplicates), none missing (0 lost), the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.scenario import BASE_SPEC, TOKEN, profile_line, vip_csv  # noqa: E402

SYNCDSL = [sys.executable, "-m", "syncdsl"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulator(portal: Path, faults: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [*SYNCDSL, "emulator", "--port", str(port), "--token", TOKEN, "--no-rate-limits"]
    args += ["--state", str(portal), "--latency", "0.03", "--seed", "13"]
    if faults:
        args += ["--fail-rate", "0.05", "--reset-rate", "0.01"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the emulator did not start")


def _workspace(root: Path, people: int, version: int) -> None:
    """The configuration at `version`: each version changes every contact's first name, so each
    apply has `people` updates to make (and to be killed in the middle of)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.sync").write_text(BASE_SPEC)
    status = ("realized", "existing")
    profiles = [
        {
            "email": f"f{i:05d}@example.com",
            "first": f"F{i}-v{version}",
            "city": "paris",
            "seg": status[(i + version) % 2],
        }
        for i in range(people)
    ]
    (root / "profiles.jsonl").write_text("".join(profile_line(p) + "\n" for p in profiles))
    (root / "vip.csv").write_text(vip_csv([[f"f{i:05d}@example.com", "Acme"] for i in range(50)]))


def _apply(root: Path, base_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": base_url}
    return subprocess.Popen(
        [*SYNCDSL, "apply", ".", "--auto-approve", "--parallelism", "2"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _portal(process: subprocess.Popen[bytes], portal: Path) -> list[dict[str, Any]]:
    process.send_signal(signal.SIGTERM)  # the emulator saves its portal on SIGTERM
    process.wait(timeout=60)
    contacts: list[dict[str, Any]] = json.loads(portal.read_text())["contacts"]
    return contacts


def _view(contacts: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    volatile = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"}
    return {c["email"]: {k: v for k, v in c.items() if k not in volatile} for c in contacts}


def run(kills: int, people: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="syncdsl-kill-") as tmp:
        base = Path(tmp)
        clean_root, faulty_root = base / "clean", base / "faulty"
        _workspace(clean_root, people, 0)
        emulator, url = _emulator(base / "clean.json", faults=False)
        assert _apply(clean_root, url).wait(timeout=600) == 0, "the clean apply failed"
        clean = _portal(emulator, base / "clean.json")

        emulator, url = _emulator(base / "faulty.json", faults=True)
        landed = attempts = 0
        while landed < kills and attempts < 5 * kills:  # an apply may finish before its kill
            attempts += 1
            _workspace(faulty_root, people, attempts)
            process = _apply(faulty_root, url)
            time.sleep(rng.uniform(0.3, 2.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                landed += 1
            process.wait()
        _workspace(faulty_root, people, 0)  # the clean apply's data, applied over the wreck
        final = _apply(faulty_root, url)
        _, stderr = final.communicate(timeout=900)
        assert final.returncode == 0, stderr.decode()
        faulty = _portal(emulator, base / "faulty.json")
    emails = [c["email"] for c in faulty]
    expected, got = _view(clean), _view(faulty)
    return {
        "kills": landed,
        "attempts": attempts,
        "contacts": len(got),
        "duplicates": len(emails) - len(set(emails)),
        "lost": len(set(expected) - set(got)),
        "extra": len(set(got) - set(expected)),
        "wrong": sum(1 for email in expected if email in got and got[email] != expected[email]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    figures = run(options.kills, options.people, options.seed)
    print(json.dumps(figures))
    bad = figures["duplicates"] or figures["lost"] or figures["extra"] or figures["wrong"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
