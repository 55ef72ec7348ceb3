"""Benchmark: `syncdsl stream` replicas on a PostgreSQL store (issue 18's figures).

- intake: N events posted at once (bench_intake's flood client, one client process per replica),
  1 replica against 3: events/s acknowledged and the p99 of the 202s;
- delivery: with 3 replicas, events posted at half the portal's ceiling (professional: 190 calls
  per 10 s of 100 contacts, so 950 events/s) for a while: the p99 of receipt-to-HubSpot latency,
  from the lease holder's /status;
- failover: the holder kill -9ed; seconds until a standby reports `"sending": true`.

A throwaway PostgreSQL server (tests/pgserver.py) and the emulator run beside; the replicas and
the load clients are subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_intake import SPEC, TOKEN, _body, stream_process  # noqa: E402

from syncdsl.emulator import Emulator  # noqa: E402
from tests.pgserver import PASSWORD, running_server  # noqa: E402

LEASE_SECONDS = "5"


@contextmanager
def replica(root: Path, base_url: str, store: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """One `syncdsl stream` replica on the shared store."""
    shared = {
        "SYNCDSL_STORE": store,
        "PGPASSWORD": PASSWORD,
        "SYNCDSL_LEASE_SECONDS": LEASE_SECONDS,
    }
    with stream_process(root, base_url, "--window-ms", "50", env_extra=shared) as running:
        yield running


def _status(url: str) -> dict[str, Any]:
    try:
        return dict(requests.get(f"{url}/status", timeout=5).json())
    except requests.RequestException:
        return {}


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.02)


def intake(root: Path, emulator: Emulator, store: str, replicas: int, total: int) -> dict[str, Any]:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(replica(root, emulator.base_url, store))[1] for _ in range(replicas)
        ]
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "bench_intake.py"),
                    "client",
                    "flood",
                    url,
                    "--total",
                    str(total // replicas),
                    "--concurrency",
                    "100",
                    "--prefix",
                    f"i{replicas}-{n}-",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n, url in enumerate(urls)
        ]
        results = [
            json.loads(c.communicate(timeout=600)[0].strip().splitlines()[-1]) for c in clients
        ]
        acked = sum(len(r["acked"]) for r in results)
        seconds = max(r["seconds"] for r in results)
        _wait(lambda: _status(urls[0]).get("queue_depth") == 0, 600, "the queue to empty")
    return {
        "replicas": replicas,
        "acked": acked,
        "events_per_second": round(acked / seconds),
        "p99_ack_ms": round(max(r["p99"] for r in results) * 1000, 1),
    }


def delivery_and_failover(
    root: Path, emulator: Emulator, store: str, seconds: float
) -> dict[str, Any]:
    rate = 950  # events/s: half the professional ceiling of 1,900 contacts/s
    with ExitStack() as stack:
        running = [stack.enter_context(replica(root, emulator.base_url, store)) for _ in range(3)]
        urls = [url for _, url in running]
        _wait(lambda: any(_status(u).get("sending") for u in urls), 60, "a lease holder")
        session = requests.Session()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                chunk = [json.loads(_body(f"d{sent + k:07d}@example.com")) for k in range(50)]
                session.post(f"{urls[sent // 50 % 3]}/v1/profiles", json=chunk, timeout=30)
                sent += 50
            time.sleep(0.005)
        holder = next(u for u in urls if _status(u).get("sending"))
        _wait(lambda: _status(holder).get("queue_depth") == 0, 300, "the queue to empty")
        latency = _status(holder)["metrics"]["latency_seconds"]
        process = next(p for p, u in running if u == holder)
        process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        process.wait()
        alive = [u for u in urls if u != holder]
        _wait(lambda: any(_status(u).get("sending") for u in alive), 60, "a new holder")
        failover = time.monotonic() - killed
    return {
        "events": sent,
        "rate": rate,
        "delivery_p50_ms": round(latency["p50"] * 1000, 1),
        "delivery_p99_ms": round(latency["p99"] * 1000, 1),
        "failover_seconds": round(failover, 2),
        "lease_seconds": float(LEASE_SECONDS),
        "rate_limited": emulator.count(status=429),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--events", type=int, default=30_000, help="events posted in the intake runs"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the delivery run")
    args = parser.parse_args()
    with running_server() as server, tempfile.TemporaryDirectory() as top:
        store = server.url()
        os.environ["PGPASSWORD"] = PASSWORD
        for n, run in enumerate(("intake-1", "intake-3", "delivery")):
            root = Path(top) / run
            root.mkdir()
            (root / "main.sync").write_text(SPEC.replace("api_add_on", "professional"))
            (root / "profiles.jsonl").write_text("")
            with Emulator(token=TOKEN, tier="professional", seed=n) as emulator:
                if run == "delivery":
                    figures = delivery_and_failover(root, emulator, store, args.seconds)
                else:
                    figures = intake(root, emulator, store, int(run[-1]), args.events)
            print(json.dumps({"run": run, **figures}), flush=True)


if __name__ == "__main__":
    main()
