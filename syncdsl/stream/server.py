"""The intake's HTTP server: uvicorn (httptools) on one event loop thread, with its limits.

uvicorn serves keep-alive HTTP/1.1 on asyncio, so connections cost no thread. Around it, the
protocol below adds what uvicorn leaves out: an idle timeout from the moment a connection opens
(uvicorn arms it only after a first answer), a deadline for receiving a whole request (headers
and body: slow clients), a cap on header bytes, and a connection cap kept below the process's
file-descriptor limit (at the cap, the connection idle the longest is closed, as nginx reuses
keep-alive connections; when none is idle, the new one gets a 503). Every answer the protocol
writes itself carries a JSON error body, like the app's.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from syncdsl.stream.http import IntakeApp, error_body
from syncdsl.stream.logs import EventLog

BACKLOG = 2048  # pending connections the kernel holds (capped by net.core.somaxconn)
FD_RESERVE = 128  # descriptors kept for the queue, the state, the HubSpot connections, logs
MAX_HEADER_BYTES = 64 * 1024
STOP_GRACE = 2.0  # seconds uvicorn waits for answers in progress when intake stops
_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
_REASONS[503] = "Service Unavailable"


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout: float  # a connection with no request in progress is closed after this
    read_timeout: float  # a request must arrive whole (headers and body) within this
    max_connections: int


def connection_cap(wanted: int | None) -> int:
    """The connection cap: `wanted` (default 10,000), never above the descriptor limit allows."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - FD_RESERVE if soft != resource.RLIM_INFINITY else 1_000_000
    return max(16, min(wanted or 10_000, room))


class _Abandon(Exception):
    """Raised from a parser callback to stop parsing a request already answered."""


class IntakeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (set on a subclass per server)."""

    limits: ClassVar[ConnectionLimits]
    _read_timer: asyncio.TimerHandle | None = None
    _idle_since = 0.0
    _header_bytes = 0  # the current request's header lines, as parsed
    _head_bytes = 0  # bytes received while its headers are unfinished
    _in_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport_socket = transport.get_extra_info("socket")
        if transport_socket is not None:
            transport_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            self._answer(503, "too many connections; retry shortly", {"retry-after": "1"})
            return
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.limits.read_timeout, self._read_too_slow)
            self._in_headers, self._head_bytes = True, 0
        if self._in_headers:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._head_bytes > MAX_HEADER_BYTES:  # headers still unfinished
            self._answer(431, f"the request's headers exceed {MAX_HEADER_BYTES:,} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._header_bytes > MAX_HEADER_BYTES:
            self._answer(431, f"the request's headers exceed {MAX_HEADER_BYTES:,} bytes")
            raise _Abandon  # stops the parser: the request is never run
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_read_timer()
        self._header_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive (idle) timer
        self._idle_since = time.monotonic()

    def send_400_response(self, msg: str) -> None:
        self._answer(400, f"not an HTTP/1.1 request ({msg.rstrip('.')})")

    # -- helpers --------------------------------------------------------------------------------
    def _arm_idle(self) -> None:
        self._idle_since = time.monotonic()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _idle(self) -> bool:
        return self.timeout_keep_alive_task is not None and not self.transport.is_closing()

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest to make room; False when none is idle."""
        idle = [c for c in self.connections if isinstance(c, IntakeProtocol) and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest.transport.close()
        self.connections.discard(oldest)
        return True

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_too_slow(self) -> None:
        self._read_timer = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._answer(408, f"the request did not arrive within {self.limits.read_timeout:g} s")

    def _answer(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Write an error answer outside any ASGI cycle, then close the connection."""
        if self.transport.is_closing():
            return
        body = error_body(status, message)
        lines = [f"HTTP/1.1 {status} {_REASONS[status]}", "content-type: application/json"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines += [f"content-length: {len(body)}", "connection: close", "", ""]
        self.transport.write("\r\n".join(lines).encode("latin-1") + body)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.response_started = self.cycle.response_complete = True
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


class _ToEventLog(logging.Handler):
    """uvicorn's own warnings and errors become structured log lines."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.WARNING)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        self._log("http_server", level=level, message=record.getMessage())


class IntakeServer:
    """Binds at construction (so a busy port is an error at once); serves in its own thread."""

    def __init__(
        self, host: str, port: int, app: IntakeApp, limits: ConnectionLimits, log: EventLog
    ) -> None:
        self._socket = _listen(host, port)
        protocol = type("BoundIntakeProtocol", (IntakeProtocol,), {"limits": limits})
        config = uvicorn.Config(
            app,
            http=protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]
            timeout_graceful_shutdown=round(STOP_GRACE),
            backlog=BACKLOG,
        )
        self._server = uvicorn.Server(config)
        self._logger = logging.getLogger("uvicorn")
        self._handler = _ToEventLog(log)
        self._thread = threading.Thread(target=self._serve, name="stream-http", daemon=True)
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> None:
        self._logger.addHandler(self._handler)
        self._logger.propagate = False
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError(f"the HTTP server did not start ({self.failure or 'timed out'})")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_GRACE + 5.0)
        self._socket.close()
        self._logger.removeHandler(self._handler)
        self._logger.propagate = True

    def connections(self) -> dict[str, int]:
        """Open connections: all, idle (no request in progress), receiving a request."""
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return {"open": 0, "idle": 0, "receiving": 0}
        return asyncio.run_coroutine_threadsafe(self._count(), loop).result(timeout=5)

    async def _count(self) -> dict[str, int]:
        mine = [c for c in self._server.server_state.connections if isinstance(c, IntakeProtocol)]
        return {
            "open": len(self._server.server_state.connections),
            "idle": sum(1 for c in mine if c._idle()),
            "receiving": sum(1 for c in mine if c._read_timer is not None),
        }

    def _serve(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._socket])

        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(serve())
        except BaseException as error:  # noqa: BLE001 - reported by start() or the log
            self.failure = error


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (about twice asyncio's throughput), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
