"""Intake: `POST /v1/profiles` over HTTP (plus /status, /metrics) and the `--input` follower."""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from syncdsl.stream.logs import EventLog, RejectsFile
from syncdsl.stream.metrics import StreamMetrics
from syncdsl.stream.queue import EventQueue, InputOffset

PROFILES_PATH = "/v1/profiles"
FOLLOW_POLL = 0.1  # seconds between looks at a followed file that has no new line
FULL_QUEUE_RETRY_AFTER = 5
_LINES_PER_COMMIT = 1000


class IntakeRefused(Exception):
    """A request the intake refuses; `status` and `message` go back to the sender."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


@dataclass(frozen=True)
class IntakeConfig:
    """What the intake checks before storing events."""

    sources: tuple[str, ...]  # the configuration's source names
    default_source: str | None  # the only jsonl source (None when ambiguous)
    max_queue: int
    max_body: int
    ingest_token: str | None


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
        source = resolve_source(config, profile, query, index if indexed else None)
        events.append((source, json.dumps(profile, ensure_ascii=False, separators=(",", ":"))))
    return events


class IntakeServer(ThreadingHTTPServer):
    """The HTTP intake; handlers reach the service's parts through the server."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        config: IntakeConfig,
        events: EventQueue,
        metrics: StreamMetrics,
        log: EventLog,
        on_stored: Callable[[], None],
        status: Callable[[], dict[str, object]],
        prometheus: Callable[[], str],
    ) -> None:
        self.config = config
        self.events = events
        self.metrics = metrics
        self.log = log
        self.on_stored = on_stored
        self.status = status
        self.prometheus = prometheus
        self.accepting = True
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: IntakeServer
    protocol_version = "HTTP/1.1"
    server_version = "syncdsl-stream"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without NODELAY, Nagle's algorithm and the
        # client's delayed ACK hold every answer on a kept-alive connection for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are counted in metrics; failures are logged as structured lines

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/status":
            self._reply(
                200,
                json.dumps(self.server.status(), indent=2, sort_keys=True) + "\n",
                "application/json",
            )
        elif path == "/metrics":
            self._reply(200, self.server.prometheus(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == PROFILES_PATH:
            self._error(IntakeRefused(405, "use POST to send profiles", {"Allow": "POST"}))
        else:
            self._error(
                IntakeRefused(
                    404,
                    f"no such endpoint {path}; try POST {PROFILES_PATH}, "
                    "GET /status or GET /metrics",
                )
            )

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != PROFILES_PATH:
            self._error(IntakeRefused(404, f"no such endpoint {url.path}; POST to {PROFILES_PATH}"))
            return
        try:
            stored = self._store(url.query)
        except IntakeRefused as refused:
            self.server.metrics.add("intake_refused")
            self._error(refused)
            return
        self.server.metrics.add("events_received", stored)
        self.server.on_stored()
        body = {"accepted": stored, "queue_depth": self.server.events.depth}
        self._reply(202, json.dumps(body) + "\n", "application/json")

    def _store(self, query_string: str) -> int:
        server = self.server
        config = server.config
        if config.ingest_token is not None and not self._authorized(config.ingest_token):
            raise IntakeRefused(
                401,
                "missing or wrong bearer token: send `Authorization: Bearer <secret>`",
                {"WWW-Authenticate": 'Bearer realm="syncdsl-stream"'},
            )
        if not server.accepting:
            raise IntakeRefused(
                503,
                "the stream is shutting down; retry against the next start",
                {"Retry-After": "5"},
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.strip().isdigit():
            raise IntakeRefused(
                411, "send a Content-Length header (chunked bodies are not supported)"
            )
        length = int(length_header)
        if length > config.max_body:
            raise IntakeRefused(
                413,
                f"the body is {length:,} bytes; the limit is "
                f"{config.max_body:,} (--max-body): send smaller arrays",
            )
        if server.events.depth > config.max_queue:
            raise IntakeRefused(
                429,
                f"the queue holds {server.events.depth:,} events, more than "
                f"--max-queue {config.max_queue:,}: HubSpot is behind; retry "
                "later",
                {"Retry-After": str(FULL_QUEUE_RETRY_AFTER)},
            )
        body = self.rfile.read(length)
        query = parse_qs(query_string).get("source", [None])[0]
        events = parse_profiles(body, config, query)
        return server.events.append(events) if events else 0

    def _authorized(self, secret: str) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), secret.encode()
        )

    def _error(self, refused: IntakeRefused) -> None:
        # An unread body would be parsed as the next request: close the connection instead.
        self.close_connection = True
        body = json.dumps({"error": refused.message, "status": refused.status}) + "\n"
        self._reply(
            refused.status, body, "application/json", {**refused.headers, "Connection": "close"}
        )

    def _reply(
        self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


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
