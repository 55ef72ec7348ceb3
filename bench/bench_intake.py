"""Benchmark: `syncdsl stream` intake under attack, as a real process, on 127.0.0.1 only.

Phases (each bounded in count and time):
- idle: 3,000 idle connections and 200 slow clients (a header byte every 0.5 s): the server's
  threads and RSS while they are open, and after; a POST meanwhile must get its 202.
- ulimit: the server under `ulimit -n 1024` with 1,018 idle sockets open to it: a POST gets 202.
- flood: 10,000 POSTs at 500 concurrency (keep-alive connections): client time-outs, 202
  latency quantiles, and every acknowledged event counted at the emulator.

The emulator runs in this process; the stream is a subprocess; the load comes from another
subprocess (`bench_intake.py client ...`), so the three do not share one interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

TOKEN = "pat-bench-intake"
SEGMENT = "seg-intake"
CLIENT_TIMEOUT = 10.0
SPEC = f"""\
destination hubspot {{
  token = env("HUBSPOT_TOKEN")
  tier  = "api_add_on"
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


def _body(email: str) -> bytes:
    profile = {
        "email": email,
        "first": "F",
        "segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}},
    }
    return json.dumps(profile).encode()


def _request(host: str, body: bytes) -> bytes:
    return (
        f"POST /v1/profiles HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length")
    )
    await reader.readexactly(length)
    return int(lines[0].split()[1])


# -- the load client (a subprocess) ----------------------------------------------------------------
async def _flood(url: str, total: int, concurrency: int, prefix: str) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    acked: list[str] = []
    counter = iter(range(total))

    async def worker() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for index in counter:
            email = f"{prefix}{index:06d}@example.com"
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), CLIENT_TIMEOUT
                    )
                assert reader is not None
                writer.write(_request(host, _body(email)))
                status = await asyncio.wait_for(_answer(reader), CLIENT_TIMEOUT)
            except TimeoutError:
                statuses["timeout"] += 1
                writer = _drop(writer)
                continue
            except (OSError, asyncio.IncompleteReadError):
                statuses["connection error"] += 1
                writer = _drop(writer)
                continue
            statuses[str(status)] += 1
            if status == 202:
                latencies.append(time.perf_counter() - started)
                acked.append(email)
        _drop(writer)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "statuses": dict(statuses),
        "seconds": round(seconds, 2),
        "p50": _quantile(latencies, 0.5),
        "p99": _quantile(latencies, 0.99),
        "max": latencies[-1] if latencies else math.nan,
        "acked": acked,
    }


def _drop(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return round(ordered[max(1, math.ceil(q * len(ordered))) - 1], 4)


async def _hold(url: str, idle: int, slow: int, seconds: float) -> dict[str, Any]:
    """Open `idle` silent connections and `slow` slow ones; hold them; report how they ended."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    refused = 0
    for _ in range(idle + slow):
        try:
            opened.append(await asyncio.open_connection(host, port))
        except OSError:
            refused += 1
    print(json.dumps({"ready": len(opened), "refused": refused}), flush=True)
    answers: Counter[str] = Counter()

    async def slow_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A header byte every 0.5 s until the server answers (or the hold ends)."""
        request = b"POST /v1/profiles HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
        reading = asyncio.ensure_future(reader.read(4096))
        for index in range(min(len(request), int(seconds / 0.5))):
            if reading.done():
                break
            writer.write(request[index : index + 1])
            await asyncio.sleep(0.5)
        try:
            data = await asyncio.wait_for(reading, 1.0)
        except (TimeoutError, OSError):
            answers["no answer"] += 1
            return
        answers[data.split()[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"] += 1

    async def idle_one(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(4096), seconds + 1.0) == b""
        except (TimeoutError, OSError):
            return False

    idle_ends = asyncio.gather(*(idle_one(reader) for reader, _ in opened[:idle]))
    await asyncio.gather(*(slow_one(reader, writer) for reader, writer in opened[idle:]))
    closed_by_server = sum(await idle_ends)
    for _reader, writer in opened:
        writer.close()
    return {"opened": len(opened), "closed_by_server": closed_by_server, "answers": dict(answers)}


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_intake.py client")
    parser.add_argument("mode", choices=["flood", "hold"])
    parser.add_argument("url")
    parser.add_argument("--total", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--idle", type=int, default=3000)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--prefix", default="f")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[::-1])
    if args.mode == "flood":
        result = asyncio.run(_flood(args.url, args.total, args.concurrency, args.prefix))
    else:
        result = asyncio.run(_hold(args.url, args.idle, args.slow, args.seconds))
    print(json.dumps(result), flush=True)


# -- the conductor -------------------------------------------------------------------------------
def _proc(pid: int) -> tuple[int, float]:
    """(threads, RSS MiB) of a process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


@contextmanager
def stream_process(
    root: Path,
    base_url: str,
    *args: str,
    nofile: int | None = None,
    env_extra: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": base_url, **(env_extra or {})}

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [sys.executable, "-m", "syncdsl", "stream", ".", "--port", "0", *args],
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first.startswith("Listening on "):
            raise SystemExit(f"the stream did not start: {first!r}")
        yield process, first.split()[2]
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "client", *args], stdout=subprocess.PIPE, text=True
    )


def _timed_post(url: str, email: str) -> tuple[int, float]:
    started = time.perf_counter()
    answer = requests.post(
        f"{url}/v1/profiles",
        data=_body(email),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    return answer.status_code, time.perf_counter() - started


def idle_phase(root: Path, base_url: str, idle: int, slow: int) -> dict[str, Any]:
    # A read timeout shorter than the 8 s hold, so the slow clients' 408s are seen.
    with stream_process(root, base_url, "--read-timeout", "5") as (process, url):
        before = _proc(process.pid)
        client = _client("hold", url, "--idle", str(idle), "--slow", str(slow), "--seconds", "8")
        assert client.stdout is not None
        ready = json.loads(client.stdout.readline())
        during = _proc(process.pid)
        status, seconds = _timed_post(url, "idle-probe@example.com")
        peak = max(during, _proc(process.pid))
        result = json.loads(client.stdout.readline())
        client.wait(timeout=60)
        after = _proc(process.pid)
    return {
        "ready": ready,
        "before": before,
        "during": peak,
        "after": after,
        "probe": (status, round(seconds, 3)),
        **result,
    }


def ulimit_phase(root: Path, base_url: str, sockets: int) -> dict[str, Any]:
    with stream_process(root, base_url, "--idle-timeout", "60", nofile=1024) as (process, url):
        client = _client("hold", url, "--idle", str(sockets), "--slow", "0", "--seconds", "4")
        assert client.stdout is not None
        ready = json.loads(client.stdout.readline())
        status, seconds = _timed_post(url, "ulimit-probe@example.com")
        result = json.loads(client.stdout.readline())
        client.wait(timeout=60)
        threads, _rss = _proc(process.pid)
    return {"ready": ready, "probe": (status, round(seconds, 3)), "threads": threads, **result}


def flood_phase(root: Path, emulator: Any, total: int, concurrency: int) -> dict[str, Any]:
    with stream_process(root, emulator.base_url) as (process, url):
        client = _client("flood", url, "--total", str(total), "--concurrency", str(concurrency))
        output, _ = client.communicate(timeout=600)
        result = json.loads(output.strip().splitlines()[-1])
        peak = _proc(process.pid)
        acked = result.pop("acked")
        deadline = time.monotonic() + 300
        missing = acked
        while missing and time.monotonic() < deadline:
            missing = [e for e in missing if emulator.contact_by_email(e) is None]
            time.sleep(0.5)
    return {**result, "acked": len(acked), "arrived": len(acked) - len(missing), "proc": peak}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run of a few seconds")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from syncdsl.emulator import Emulator

    idle, slow, sockets, total, concurrency = (
        (300, 20, 1018, 1000, 100) if args.quick else (3000, 200, 1018, 10_000, 500)
    )
    emulator = Emulator(token=TOKEN, rate_limits=False)
    base_url = emulator.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
            root = Path(tmp)
            (root / "main.sync").write_text(SPEC)
            (root / "profiles.jsonl").write_text("")
            held = idle_phase(root, base_url, idle, slow)
            print(
                f"idle               {idle:,} idle + {slow} slow connections ({held['ready']}; "
                "idle timeout 5 s, read timeout 5 s, held 8 s)"
            )
            print(
                f"  server threads   {held['before'][0]} before, {held['during'][0]} while "
                f"held, {held['after'][0]} after"
            )
            print(
                f"  server RSS       {held['before'][1]:.0f} MiB before, "
                f"{held['during'][1]:.0f} MiB while held, {held['after'][1]:.0f} MiB after"
            )
            print(f"  POST meanwhile   {held['probe'][0]} in {held['probe'][1]:.3f} s")
            print(
                f"  idle closed      {held['closed_by_server']:,} of {idle:,} by the server; "
                f"answers {held['answers']}"
            )
            limited = ulimit_phase(root, base_url, sockets)
            print(
                f"ulimit -n 1024     {limited['ready']['ready']:,} idle sockets open "
                f"(refused {limited['ready']['refused']})"
            )
            print(
                f"  POST             {limited['probe'][0]} in {limited['probe'][1]:.3f} s; "
                f"server threads {limited['threads']}"
            )
            flood = flood_phase(root, emulator, total, concurrency)
            print(
                f"flood              {total:,} POSTs at {concurrency} concurrency in "
                f"{flood['seconds']} s: {flood['statuses']}"
            )
            print(
                f"  202 latency      p50 {flood['p50']:.3f} s, p99 {flood['p99']:.3f} s, "
                f"max {flood['max']:.3f} s"
            )
            print(
                f"  delivered        {flood['arrived']:,} of {flood['acked']:,} acknowledged "
                f"arrived at the emulator; server threads {flood['proc'][0]}, "
                f"RSS {flood['proc'][1]:.0f} MiB"
            )
            ok = (
                held["probe"][0] == 202
                and limited["probe"][0] == 202
                and flood["statuses"].get("timeout", 0) == 0
                and flood["arrived"] == flood["acked"]
            )
    finally:
        emulator.stop()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
