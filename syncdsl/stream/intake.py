"""Intake: what `POST /v1/profiles` accepts (parsing, admission) and the `--input` follower.

The HTTP server itself is `stream.server` (uvicorn) with the ASGI app in `stream.http`.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from syncdsl.stream.logs import EventLog, RejectsFile
from syncdsl.stream.metrics import StreamMetrics
from syncdsl.stream.queue import EventQueue, InputOffset

PROFILES_PATH = "/v1/profiles"
FOLLOW_POLL = 0.1  # seconds between looks at a followed file that has no new line
FULL_QUEUE_RETRY_AFTER = 5
SHUTDOWN_RETRY_AFTER = 5
UNHEALTHY_RETRY_AFTER = 30
_LINES_PER_COMMIT = 1000


class IntakeRefused(Exception):
    """A request the intake refuses; `status` and `message` go back to the sender."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively (repeated headers joined by ", ")."""

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self._values[key] = f"{self._values[key]}, {text}" if key in self._values else text

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


#: One hook per intake request, called with its headers before the body is read; it raises
#: IntakeRefused to refuse the request (content-type and Origin checks live there).
RequestCheck = Callable[[Mapping[str, str]], None]


def accept_any(headers: Mapping[str, str]) -> None:
    """The default request check: every request passes."""


@dataclass(frozen=True)
class IntakeConfig:
    """What the intake checks before storing events."""

    sources: tuple[str, ...]  # the configuration's source names
    default_source: str | None  # the only jsonl source (None when ambiguous)
    max_queue: int
    max_body: int
    ingest_token: str | None
    check_request: RequestCheck = accept_any


def resolve_source(
    config: IntakeConfig, profile: dict[str, Any], query: str | None, index: int | None
) -> str:
    """The source a profile names (`"source"` field, else `?source=`, else the default)."""
    where = "" if index is None else f" (entry {index})"
    named = profile.get("source") if isinstance(profile.get("source"), str) else None
    name = named or query or config.default_source
    if name is None:
        raise IntakeRefused(
            400,
            "this configuration has several sources: name one with "
            f'?source=NAME or a "source" field{where} '
            f"(one of: {', '.join(config.sources)})",
        )
    if name not in config.sources:
        raise IntakeRefused(
            400,
            f"unknown source {name!r}{where}; this configuration has: {', '.join(config.sources)}",
        )
    return name


def parse_profiles(body: bytes, config: IntakeConfig, query: str | None) -> list[tuple[str, str]]:
    """One profile object or a JSON array of them -> (source, compact JSON) pairs; 400 if bad."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise IntakeRefused(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise IntakeRefused(
            400, f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise IntakeRefused(
            400, "the JSON is nested too deeply (a profile needs a few levels, not hundreds)"
        ) from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise IntakeRefused(400, f"malformed JSON: {error}") from None
    if isinstance(document, dict):
        profiles, indexed = [document], False
    elif isinstance(document, list):
        profiles, indexed = document, True
    else:
        raise IntakeRefused(
            400,
            "expected a profile object or an array of profile objects, got "
            f"{type(document).__name__}",
        )
    events = []
    for index, profile in enumerate(profiles):
        if not isinstance(profile, dict):
            raise IntakeRefused(
                400,
                f"entry {index} is {type(profile).__name__}, not a profile "
                "object; nothing was stored",
            )
        where = f"entry {index}" if indexed else "the profile"
        source = resolve_source(config, profile, query, index if indexed else None)
        events.append((source, _compact(profile, where)))
    return events


def _compact(profile: dict[str, Any], where: str) -> str:
    """The profile as compact JSON text; refused when it is not valid Unicode text."""
    try:
        text = json.dumps(profile, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise IntakeRefused(
            400,
            f"{where} holds a lone surrogate (a \\ud800-\\udfff escape without its pair), "
            "which is not Unicode text; nothing was stored",
        ) from None
    except RecursionError:
        raise IntakeRefused(400, f"{where} is nested too deeply; nothing was stored") from None
    return text


@dataclass(frozen=True)
class IntakeState:
    """What admission needs to know about the service right now."""

    queue_depth: int
    draining: bool
    unhealthy: str | None  # why the sender cannot send (None: it can)


def admit(config: IntakeConfig, headers: Mapping[str, str], state: IntakeState) -> int:
    """Check a POST before its body is read; -> the declared body length, or IntakeRefused."""
    if config.ingest_token is not None and not _authorized(headers, config.ingest_token):
        raise IntakeRefused(
            401,
            "missing or wrong bearer token: send `Authorization: Bearer <secret>`",
            {"WWW-Authenticate": 'Bearer realm="syncdsl-stream"'},
        )
    config.check_request(headers)
    if state.draining:
        raise IntakeRefused(
            503,
            "the stream is shutting down; retry against the next start",
            {"Retry-After": str(SHUTDOWN_RETRY_AFTER)},
        )
    if state.unhealthy is not None:
        raise IntakeRefused(
            503,
            f"not accepting events: {state.unhealthy}",
            {"Retry-After": str(UNHEALTHY_RETRY_AFTER)},
        )
    length_header = headers.get("content-length")
    if length_header is None or not length_header.strip().isdigit():
        raise IntakeRefused(411, "send a Content-Length header (chunked bodies are not supported)")
    length = int(length_header)
    if length > config.max_body:
        raise IntakeRefused(
            413,
            f"the body is {length:,} bytes; the limit is "
            f"{config.max_body:,} (--max-body): send smaller arrays",
        )
    if state.queue_depth > config.max_queue:
        raise IntakeRefused(
            429,
            f"the queue holds {state.queue_depth:,} events, more than "
            f"--max-queue {config.max_queue:,}: HubSpot is behind; retry later",
            {"Retry-After": str(FULL_QUEUE_RETRY_AFTER)},
        )
    return length


def _authorized(headers: Mapping[str, str], secret: str) -> bool:
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), secret.encode()
    )


class InputFollower:
    """Newline-delimited JSON from a file followed like `tail -f` (offset kept), or stdin to EOF."""

    def __init__(
        self,
        spec: str,
        *,
        config: IntakeConfig,
        events: EventQueue,
        metrics: StreamMetrics,
        rejects: RejectsFile,
        log: EventLog,
        on_stored: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.config = config
        self.events = events
        self.metrics = metrics
        self.rejects = rejects
        self.log = log
        self.on_stored = on_stored
        self.stop_event = threading.Event()
        self.eof = threading.Event()  # stdin ended
        self._thread = threading.Thread(target=self._run, name="stream-input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            if self.spec == "-":
                self._read_stdin(sys.stdin.buffer)
            else:
                self._follow(Path(self.spec).resolve())
        except Exception as error:  # noqa: BLE001 - intake stops; HTTP and sending go on
            self.log(
                "input_failed",
                level="error",
                input=self.spec,
                error=f"{type(error).__name__}: {error}",
            )

    def _read_stdin(self, stream: IO[bytes]) -> None:
        for line in stream:
            if self.stop_event.is_set():
                return
            self._wait_for_room()
            self._store([line], None)
        self.eof.set()
        self.log("input_eof", input="-")

    def _follow(self, path: Path) -> None:
        name = str(path)
        position = self.events.offset(name)
        self.log("input_follow", input=name, offset=position)
        handle: IO[bytes] | None = None
        identity: tuple[int, int] | None = None
        waiting = False
        while not self.stop_event.is_set():
            if handle is None:
                handle, identity, position = self._open(path, position)
                if handle is None:
                    if not waiting:  # said once: the file may be created later (tail -F)
                        self.log("input_missing", level="warning", input=name)
                        waiting = True
                    self.stop_event.wait(FOLLOW_POLL)
                    continue
                if waiting:
                    self.log("input_appeared", input=name)
                    waiting = False
            lines, consumed = _complete_lines(handle, position)
            if lines:
                self._wait_for_room()
                position += consumed
                self._store(lines, InputOffset(name, position))
                continue
            if self._replaced(path, identity, position):
                handle.close()
                handle, position = None, 0  # rotated or truncated: start the new file over
                continue
            self.stop_event.wait(FOLLOW_POLL)
        if handle is not None:
            handle.close()

    def _open(
        self, path: Path, position: int
    ) -> tuple[IO[bytes] | None, tuple[int, int] | None, int]:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None, None, position
        stat = os.fstat(handle.fileno())
        if stat.st_size < position:
            self.log("input_truncated", level="warning", input=str(path), offset=position)
            position = 0
        handle.seek(position)
        return handle, (stat.st_dev, stat.st_ino), position

    @staticmethod
    def _replaced(path: Path, identity: tuple[int, int] | None, position: int) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False  # keep the open file until a new one appears
        return (stat.st_dev, stat.st_ino) != identity or stat.st_size < position

    def _wait_for_room(self) -> None:
        """Backpressure: a followed input simply waits while the queue is over its bound."""
        while self.events.depth > self.config.max_queue and not self.stop_event.is_set():
            self.stop_event.wait(FOLLOW_POLL)

    def _store(self, lines: Sequence[bytes], offset: InputOffset | None) -> None:
        events: list[tuple[str, str]] = []
        for line in lines:
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                events.extend(parse_profiles(text.encode(), self.config, None))
            except IntakeRefused as refused:
                self.rejects.write(
                    stage="input",
                    source=self.config.default_source or "",
                    reason=refused.message,
                    record=text,
                )
                self.metrics.add("events_rejected")
        self.events.append(events, offset=offset)
        if events:
            self.metrics.add("events_received", len(events))
            self.on_stored()


def _complete_lines(handle: IO[bytes], position: int) -> tuple[list[bytes], int]:
    """Whole lines from `position` (a partial last line waits for its newline)."""
    handle.seek(position)
    lines: list[bytes] = []
    consumed = 0
    while len(lines) < _LINES_PER_COMMIT:
        line = handle.readline()
        if not line.endswith(b"\n"):
            break
        lines.append(line)
        consumed += len(line)
    return lines, consumed
