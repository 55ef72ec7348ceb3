"""Benchmark: `syncdsl stream` latency at half the rate ceiling, and calls saved by coalescing.

Runs against the emulator with a shortened rate window (19 requests per 1 s, the client's budget
matched), so a minute of HubSpot fits in seconds. Latency is measured by the service itself, from
receipt of each event (stored durably) to HubSpot's acceptance of its contact.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import requests

from syncdsl.emulator import Emulator
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.target import Target
from syncdsl.lang.load import load_spec
from syncdsl.plan.definition import BATCH_SIZE
from syncdsl.stream import StreamOptions, StreamService
from syncdsl.stream.logs import EventLog

TOKEN = "pat-bench-stream"
SEGMENT = "seg-bench"
WINDOW_SECONDS = 1.0
WINDOW_LIMIT = 19
TARGET_P99 = 1.0
SPEC = f"""\
destination hubspot {{
  token = env("HUBSPOT_TOKEN")
}}

source profiles {{
  jsonl = "profiles.jsonl"
  identity email = email
  map {{
    firstname = first
  }}
}}

audience "Bench" {{
  source  = profiles
  segment = "{SEGMENT}"
}}
"""


@dataclass(frozen=True)
class Run:
    """What one phase measured."""

    events: int
    seconds: float
    upserts: int
    rate_limited: int
    p50: float
    p95: float
    p99: float
    correct: bool
    offered_rate: float = 0.0


def _profile(email: str, first: str, status: str) -> dict[str, object]:
    return {
        "email": email,
        "first": first,
        "segmentMembership": {"ups": {SEGMENT: {"status": status}}},
    }


class Bench:
    """One emulator (short rate window) and one stream service over a fresh configuration."""

    def __init__(self, root: Path, *, window_ms: int, parallelism: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "main.sync").write_text(SPEC)
        (root / "profiles.jsonl").write_text("")
        self.emulator = Emulator(
            token=TOKEN,
            rate_limits=True,
            window_seconds=WINDOW_SECONDS,
            window_limit=WINDOW_LIMIT,
            latency=0.01,
        )
        base_url = self.emulator.start()
        budget = RateBudget(limit=WINDOW_LIMIT, window_seconds=WINDOW_SECONDS)
        self.client = HubSpotClient(base_url, TOKEN, budget=budget, pool_size=parallelism + 4)
        target = Target(self.client, base_url, base_url, False)
        options = StreamOptions(
            port=0, window_seconds=window_ms / 1000.0, parallelism=parallelism, max_queue=10_000_000
        )
        self.service = StreamService(load_spec([root]), target, options, log=EventLog(quiet=True))
        self.url = self.service.start() + "/v1/profiles"
        self.session = requests.Session()
        time.sleep(WINDOW_SECONDS)  # let the schema bootstrap's calls leave the rate window

    def close(self) -> None:
        self.service.stop(grace_seconds=30)
        self.client.close()
        self.emulator.stop()

    def post(self, profiles: list[dict[str, object]]) -> None:
        answer = self.session.post(
            self.url,
            data=json.dumps(profiles),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        if answer.status_code != 202:
            raise SystemExit(f"intake answered {answer.status_code}: {answer.text}")

    def wait_drained(self, events: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        metrics = self.service.metrics
        while metrics.get("events_applied") + metrics.get("events_rejected") < events:
            if time.monotonic() > deadline:
                raise SystemExit("the stream did not drain in time")
            time.sleep(0.02)

    def run(self, events: int, started: float, expected: dict[str, str]) -> Run:
        self.wait_drained(events)
        seconds = time.monotonic() - started
        quantiles = self.service.metrics.latency_quantiles()
        correct = all(
            (self.emulator.contact_by_email(email) or {}).get("firstname") == first
            for email, first in expected.items()
        )
        return Run(
            events,
            seconds,
            self.emulator.count("contacts.batch_upsert"),
            self.client.stats.rate_limited,
            quantiles[0.5],
            quantiles[0.95],
            quantiles[0.99],
            correct,
        )


def steady(root: Path, *, seconds: float, rate: float) -> Run:
    """Distinct emails at `rate` events/s, posted in small arrays every 20 ms."""
    bench = Bench(root, window_ms=250, parallelism=4)
    try:
        tick = 0.02
        per_tick = max(1, round(rate * tick))
        ticks = int(seconds / tick)
        expected: dict[str, str] = {}
        started = time.monotonic()
        for index in range(ticks):
            chunk = [
                _profile(f"s{index:06d}-{j}@example.com", f"S{index}", "realized")
                for j in range(per_tick)
            ]
            expected.update((str(p["email"]), str(p["first"])) for p in chunk)
            bench.post(chunk)
            pause = started + (index + 1) * tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        sent_for = time.monotonic() - started
        run = bench.run(ticks * per_tick, started, expected)
        return replace(run, offered_rate=run.events / sent_for)
    finally:
        bench.close()


def bursty(root: Path, *, emails: int, updates: int, group: int = 20) -> Run:
    """Bursts: `group` emails at a time each get `updates` changes in quick succession."""
    bench = Bench(root, window_ms=250, parallelism=4)
    try:
        events = [
            _profile(f"b{e:05d}@example.com", f"B{e}-{u}", "realized" if u % 2 else "existing")
            for first in range(0, emails, group)
            for u in range(updates)
            for e in range(first, min(first + group, emails))
        ]
        expected = {str(p["email"]): str(p["first"]) for p in events}  # the last one wins
        started = time.monotonic()
        _post_all(bench, events)  # one sender, in order: the last update must win
        return bench.run(len(events), started, expected)
    finally:
        bench.close()


def _post_all(bench: Bench, events: list[dict[str, object]]) -> None:
    for start in range(0, len(events), 200):
        bench.post(events[start : start + 200])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    ceiling = WINDOW_LIMIT / WINDOW_SECONDS * BATCH_SIZE  # contacts/s if every call is full
    rate = ceiling / 2
    seconds, emails, updates = (3.0, 200, 20) if args.quick else (20.0, 2000, 25)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        first = steady(Path(tmp) / "steady", seconds=seconds, rate=rate)
        second = bursty(Path(tmp) / "bursty", emails=emails, updates=updates)
    print(
        f"rate ceiling        {WINDOW_LIMIT} calls / {WINDOW_SECONDS:g} s "
        f"= {ceiling:,.0f} contacts/s (100 per call)"
    )
    print(
        f"steady input        {first.events:,} distinct events at {first.offered_rate:,.0f}/s "
        f"({first.offered_rate / ceiling:.2f} x ceiling) for {seconds:g} s"
    )
    print(f"  latency p50       {first.p50:.3f} s")
    print(f"  latency p95       {first.p95:.3f} s")
    print(
        f"  latency p99       {first.p99:.3f} s  ({first.p99 / TARGET_P99:.2f} x the 1 s target)"
        f"  {'OK' if first.p99 <= TARGET_P99 else 'MISSED'}"
    )
    calls_per_second = first.upserts / first.seconds
    print(
        f"  upserts           {first.upserts:,} in {first.seconds:.1f} s "
        f"({first.events / max(first.upserts, 1):.1f} events per call; "
        f"{calls_per_second / (WINDOW_LIMIT / WINDOW_SECONDS):.2f} x the call ceiling); "
        f"429s {first.rate_limited}"
    )
    print(f"  all delivered     {first.correct}")
    without = -(-second.events // BATCH_SIZE)
    print(
        f"bursty input        {second.events:,} events = {emails:,} emails x {updates} updates"
        " (20 emails at a time)"
    )
    print(
        f"  upserts           {second.upserts:,} vs {without:,} without coalescing "
        f"(events/100): {second.upserts / without:.3f} x the calls, "
        f"{1 - second.upserts / without:.1%} saved"
    )
    print(
        f"  latency p50/p99   {second.p50:.3f} s / {second.p99:.3f} s; 429s {second.rate_limited}"
    )
    print(f"  last value wins   {second.correct}")
    if not (first.correct and second.correct):
        sys.exit(1)


if __name__ == "__main__":
    main()
