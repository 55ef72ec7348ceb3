"""`syncdsl worker`: apply or stream many configurations, each under its portal's lease, so that N
workers on N machines serve M portals, each at its own rate ceiling.

Each configuration is applied by a child `syncdsl apply CONFIG --auto-approve --json`, which takes
the portal's lease (a shared store) or the configuration's lock (its files): a configuration
another worker is applying is tried again a moment later. With `--stream`, each configuration
is streamed instead by a child `syncdsl stream CONFIG` on its own port (the first configuration
on `--port`, the next on the port after, ...): a replica that takes intake, and sends while it
holds the portal's lease; a child that exits is started again. A child dies with its worker (a
killed worker's lease expires, and another worker resumes from the journal or the queue).
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from syncdsl.cli.core import boundary
from syncdsl.errors import UsageError

#: This module's command; `syncdsl.cli` adds it to the `syncdsl` app.
app = typer.Typer()
BUSY_RETRY = 1.0  # seconds before trying again a configuration another process holds
RESTART_CAP = 30.0  # seconds at most between two starts of a stream that keeps exiting
STEADY = 60.0  # seconds a stream must run for its restarts to count from zero again
STOP_WAIT = 30.0  # seconds a child has to stop once told (a stream's grace is 10 s)


@dataclass
class _Job:
    """One configuration's turn: when it is due, its running child, how it last ended."""

    path: Path
    due: float = 0.0
    child: subprocess.Popen[str] | None = None
    started: float = 0.0
    applied: int = 0  # applies this worker finished
    failed: str | None = None  # the last failure (kept until an apply succeeds)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGKILL when the worker dies, as if its machine had died."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@app.command()
@boundary
def worker(
    configurations: Annotated[
        list[Path],
        typer.Argument(help="Configuration directories (or .sync files) to serve."),
    ],
    once: Annotated[
        bool,
        typer.Option("--once", help="Apply every configuration once, then exit."),
    ] = False,
    every: Annotated[
        float,
        typer.Option("--every", help="Seconds between two applies of one configuration."),
    ] = 300.0,
    jobs: Annotated[
        int,
        typer.Option("--jobs", help="Configurations applied at the same time by this worker."),
    ] = 4,
    parallelism: Annotated[
        int, typer.Option("--parallelism", help="Batches in flight per configuration.")
    ] = 8,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Stream every configuration (a `syncdsl stream` replica each) instead of "
            "applying them.",
        ),
    ] = False,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="With --stream: the first configuration's intake port; the next ones follow.",
        ),
    ] = 8787,
    host: Annotated[
        str, typer.Option("--host", help="With --stream: the address intake listens on.")
    ] = "127.0.0.1",
) -> None:
    """Apply (or, with --stream, stream) many configurations, each under its portal's lease
    (see README: Many portals)."""
    missing = [p for p in configurations if not p.exists()]
    if missing:
        raise UsageError(f"{missing[0]}: no such configuration directory or .sync file")
    if jobs < 1 or every <= 0 or parallelism < 1:
        raise UsageError("--jobs and --parallelism take 1 or more, --every more than 0 seconds")
    if stream and once:
        raise UsageError("--once applies each configuration once; a stream runs until stopped")
    if stream and port + len(configurations) - 1 > 65535:
        raise UsageError(f"--port {port}: {len(configurations)} configurations need as many ports")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    schedule = [_Job(path) for path in configurations]
    streams = _streams(configurations, host, port, parallelism) if stream else []
    failed = False
    try:
        if stream:
            _serve_streams(streams, stop)
        else:
            failed = _serve(
                schedule, once=once, every=every, jobs=jobs, parallelism=parallelism, stop=stop
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
        children: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = [
            job.child for job in schedule if job.child is not None
        ]
        children += [replica.child for replica in streams if replica.child is not None]
        for child in children:  # a stream drains its batches in flight (its --grace-seconds)
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:  # drains an apply's pipes as it waits
                child.communicate(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                _say(f"a child (pid {child.pid}) did not stop in {STOP_WAIT:.0f} s: killed")
                child.kill()
                child.communicate()
    if failed:
        raise typer.Exit(1)


@dataclass
class _Stream:
    """One configuration's stream replica: its command, its running child, its restarts."""

    path: Path
    port: int
    command: list[str]
    child: subprocess.Popen[bytes] | None = None
    due: float = 0.0
    started: float = 0.0
    restarts: int = 0  # exits in a row, each after less than STEADY seconds

    def poll(self, now: float) -> None:
        """Start the child when it is due; note it when it exited, and when to start it again."""
        if self.child is None:
            if self.due <= now:
                self.child = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
                )  # its log lines go to the worker's stderr
                self.started = now
            return
        code = self.child.poll()
        if code is None:
            return
        self.child = None
        self.restarts = 0 if now - self.started >= STEADY else self.restarts + 1
        delay = min(RESTART_CAP, BUSY_RETRY * 2 ** min(max(self.restarts - 1, 0), 5))
        self.due = now + delay
        _say(f"{self.path}: stream exited (code {code}); starting it again in {delay:.0f} s")


def _streams(configurations: list[Path], host: str, port: int, parallelism: int) -> list[_Stream]:
    streams = []
    for n, path in enumerate(configurations):
        command = [sys.executable, "-m", "syncdsl", "stream", str(path), "--host", host]
        command += ["--port", str(port + n), "--parallelism", str(min(parallelism, 32))]
        streams.append(_Stream(path, port + n, command))
    return streams


def _serve_streams(streams: list[_Stream], stop: threading.Event) -> None:
    """Keep one stream replica running per configuration until stopped: one that exits is
    started again, a second later, then less and less often while it keeps exiting."""
    for replica in streams:
        _say(f"{replica.path}: streaming on port {replica.port}")
    while not stop.is_set():
        now = time.monotonic()
        for replica in streams:
            replica.poll(now)
        stop.wait(0.1)


def _serve(
    schedule: list[_Job],
    *,
    once: bool,
    every: float,
    jobs: int,
    parallelism: int,
    stop: threading.Event,
) -> bool:
    """Run the schedule until stopped (or, with `once`, until each configuration was applied
    or failed); True when a configuration's last apply failed."""
    while not stop.is_set():
        now = time.monotonic()
        running = sum(1 for job in schedule if job.child is not None)
        for job in schedule:
            if job.child is None and job.due <= now and running < jobs and not _finished(job, once):
                job.child = _start(job.path, parallelism)
                job.started = now
                running += 1
        for job in schedule:
            if job.child is not None and job.child.poll() is not None:
                _settle(job, every)
        if once and all(_finished(job, once) for job in schedule):
            break
        stop.wait(0.1)
    return any(job.failed is not None for job in schedule)


def _finished(job: _Job, once: bool) -> bool:
    return once and job.child is None and (job.applied > 0 or job.failed is not None)


def _start(path: Path, parallelism: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "syncdsl", "apply", str(path), "--auto-approve", "--json"]
    return subprocess.Popen(
        [*command, "--parallelism", str(parallelism)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=_die_with_parent,
    )


def _settle(job: _Job, every: float) -> None:
    """A child ended: note what it did, and when the configuration is due again."""
    assert job.child is not None
    out, err = job.child.communicate()
    code, job.child = job.child.returncode, None
    seconds = time.monotonic() - job.started
    try:
        document = json.loads(out) if out.strip() else {}
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    if code == 0:
        job.applied += 1
        job.failed = None
        job.due = time.monotonic() + every
        counts = ", ".join(
            f"{document.get(kind, 0):,} {kind}" for kind in ("created", "updated", "exited")
        )
        _say(f"{job.path}: applied in {seconds:.1f} s ({counts})")
        return
    if isinstance(error, dict) and error.get("type") == "LockHeldError":
        job.due = time.monotonic() + BUSY_RETRY  # another process is applying or streaming it
        return
    message = error.get("message") if isinstance(error, dict) else None
    job.failed = str(message or (err.strip().splitlines() or [f"exit code {code}"])[-1])
    job.due = time.monotonic() + every
    _say(f"{job.path}: apply failed (exit code {code}): {job.failed}")


def _say(line: str) -> None:
    typer.echo(line, err=True)
