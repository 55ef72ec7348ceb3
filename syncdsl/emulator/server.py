"""The HTTP side: routes, auth and scopes, rate limits, faults, and HubSpot-shaped responses."""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from syncdsl.emulator import bodies, contacts, properties, search
from syncdsl.emulator.bodies import ApiError
from syncdsl.emulator.contacts import Call, Response
from syncdsl.emulator.faults import Fault
from syncdsl.emulator.store import Store

if TYPE_CHECKING:
    from syncdsl.emulator.core import Emulator

CONTACTS_READ = ("crm.objects.contacts.read",)
CONTACTS_WRITE = ("crm.objects.contacts.write",)
SCHEMAS_READ = ("crm.schemas.contacts.read", "crm.objects.contacts.read")  # any one of them
SCHEMAS_WRITE = ("crm.schemas.contacts.write",)
_JSON = "application/json;charset=utf-8"

Handler = Callable[[Store, Call], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    scopes: tuple[str, ...]  # any one of them is enough
    handler: Handler
    search: bool = False


def _route(
    method: str,
    rest: str,
    operation: str,
    scopes: tuple[str, ...],
    handler: Handler,
    search_api: bool = False,
) -> Route:
    return Route(method, re.compile(f"^{rest}$"), operation, scopes, handler, search_api)


_OBJECT_ROUTES = (
    _route("GET", "", "contacts.list", CONTACTS_READ, contacts.list_contacts),
    _route("POST", "/batch/upsert", "contacts.batch_upsert", CONTACTS_WRITE, contacts.batch_upsert),
    _route("POST", "/batch/read", "contacts.batch_read", CONTACTS_READ, contacts.batch_read),
    _route("POST", "/batch/create", "contacts.batch_create", CONTACTS_WRITE, contacts.batch_create),
    _route("POST", "/batch/update", "contacts.batch_update", CONTACTS_WRITE, contacts.batch_update),
    _route("POST", "/search", "contacts.search", CONTACTS_READ, search.search, search_api=True),
    _route("POST", "/merge", "contacts.merge", CONTACTS_WRITE, contacts.merge),
    _route("GET", "/(?P<id>[^/]+)", "contacts.get", CONTACTS_READ, contacts.get_contact),
    _route("PATCH", "/(?P<id>[^/]+)", "contacts.patch", CONTACTS_WRITE, contacts.patch_contact),
    _route("DELETE", "/(?P<id>[^/]+)", "contacts.delete", CONTACTS_WRITE, contacts.delete_contact),
)
_PROPERTY_ROUTES = (
    _route("GET", "", "properties.list", SCHEMAS_READ, properties.list_properties),
    _route("POST", "", "properties.create", SCHEMAS_WRITE, properties.create_property),
    _route(
        "POST",
        "/batch/create",
        "properties.batch_create",
        SCHEMAS_WRITE,
        properties.batch_create_properties,
    ),
    _route("GET", "/groups", "groups.list", SCHEMAS_READ, properties.list_groups),
    _route("POST", "/groups", "groups.create", SCHEMAS_WRITE, properties.create_group),
    _route("GET", "/(?P<name>[^/]+)", "properties.get", SCHEMAS_READ, properties.get_property),
    _route(
        "PATCH", "/(?P<name>[^/]+)", "properties.update", SCHEMAS_WRITE, properties.update_property
    ),
    _route(
        "DELETE",
        "/(?P<name>[^/]+)",
        "properties.archive",
        SCHEMAS_WRITE,
        properties.archive_property,
    ),
)
# The /crm/v3/... paths and the date-versioned 2026-03 and 2026-09 ones; contacts by any name.
_FAMILIES = (
    (
        re.compile(
            r"^/crm/(?:(?P<version>v3)/objects|objects/(?P<dated>2026-0[39]))"
            r"/(?:contacts|contact|0-1)(?P<rest>/.*)?$",
            re.IGNORECASE,
        ),
        _OBJECT_ROUTES,
    ),
    (
        re.compile(
            r"^/crm/(?:(?P<version>v3)/properties|properties/(?P<dated>2026-0[39]))"
            r"/(?:contacts|contact|0-1)(?P<rest>/.*)?$",
            re.IGNORECASE,
        ),
        _PROPERTY_ROUTES,
    ),
)


@dataclass(frozen=True)
class Resolved:
    """A request's route, its path parameters and the API version its path names."""

    route: Route
    params: dict[str, str]
    version: str


def resolve(method: str, path: str) -> Resolved | None:
    """The route for a request, with its path parameters; raises 405 for a known path."""
    for family, routes in _FAMILIES:
        matched = family.match(path)
        if not matched:
            continue
        rest = (matched.group("rest") or "").rstrip("/")
        version = (matched.group("version") or matched.group("dated")).lower()
        allowed = False
        for route in routes:
            hit = route.pattern.match(rest)
            if hit:
                if route.method == method:
                    params = {k: unquote(v) for k, v in hit.groupdict().items()}
                    return Resolved(route, params, version)
                allowed = True
        if allowed:
            raise bodies.error(405, "METHOD_NOT_ALLOWED", f"{method} is not supported on {path}.")
    return None


class EmulatorServer(ThreadingHTTPServer):
    """A threading server that can close its keep-alive connections when it stops."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            for connection in list(self._open):
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    """One HubSpot API request: auth, scopes, rate limit, fault, endpoint, response."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server_version = "syncdsl-hubspot-emulator"
    timeout = 300
    wbufsize = 64 * 1024  # headers and body leave in one send; handle_one_request flushes
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle plus delayed ACKs add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the emulator records requests in Emulator.requests instead

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        operation = "unknown"
        writing: frozenset[str] = frozenset()
        rate_headers: dict[str, str] = {}
        try:
            raw = self._read_body()
            found = resolve(method, url.path)
            if found is None:
                raise bodies.error(
                    404, "OBJECT_NOT_FOUND", f"No such endpoint: {method} {url.path}"
                )
            route = found.route
            operation = route.operation
            writing = emulator.begin_write(operation, raw)
            if emulator.latency:
                time.sleep(emulator.latency)
            self._authorize(route)
            rate_headers = emulator.limiter.admit(search=route.search)
            fault = emulator.faults.draw()
            if fault is not None and fault.status is not None:
                raise bodies.server_error(fault.status)
            call = Call(
                body=_parse_json(raw) if method in ("POST", "PATCH", "PUT") else None,
                query=parse_qs(url.query, keep_blank_values=True),
                params=found.params,
                version=found.version,
                rng=emulator.shuffle_rng,
                base_url=emulator.base_url,
            )
            status, payload = self._run(route, call, fault)
            if status == 0:
                emulator.record(method, url.path, 0, operation)
                return
        except ApiError as failure:
            status, payload = failure.status, failure.body
            rate_headers = {**rate_headers, **failure.headers}
        except Exception as crash:  # noqa: BLE001 - a bug answers 500, like HubSpot, not a hang
            status, payload = (
                500,
                bodies.error(500, "INTERNAL_ERROR", f"emulator bug: {crash!r}").body,
            )
        finally:
            emulator.end_write(writing)
        self._send(status, payload, rate_headers)
        emulator.record(method, url.path, status, operation)

    def _run(self, route: Route, call: Call, fault: Fault | None) -> Response:
        """Run the endpoint; a reset fault drops the connection before or after applying it."""
        store = self.server.emulator.store
        if fault is not None and fault.reset and not fault.apply_first:
            self._drop()
            return 0, {}
        status, payload = route.handler(store, call)
        if fault is not None and fault.reset:
            self._drop()
            return 0, {}
        return status, payload

    def _authorize(self, route: Route) -> None:
        emulator = self.server.emulator
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise bodies.unauthorized(token_sent=False)
        if not hmac.compare_digest(token.strip().encode(), emulator.token.encode()):
            raise bodies.unauthorized(token_sent=True)
        if not any(scope in emulator.scopes for scope in route.scopes):
            raise bodies.missing_scopes(list(route.scopes))

    def _read_framed(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(length)
        return self.rfile.read(length) if length else b""

    def _read_body(self) -> bytes:
        """The request body; a 400 (closing the connection) when its framing is unreadable."""
        try:
            return self._read_framed()
        except ValueError:
            self.close_connection = True
            raise bodies.validation_error(
                "Invalid request: unreadable Content-Length or chunked encoding."
            ) from None

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = b"" if status == 204 else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(data)))
        self.send_header(
            "X-HubSpot-Correlation-Id", str(payload.get("correlationId") or bodies.correlation_id())
        )
        for name, value in headers.items():
            self.send_header(name, value)
        if status == 201 and "name" in payload and "fieldType" in payload:
            self.send_header(
                "Location",
                f"{self.server.emulator.base_url}/crm/v3/properties/contacts/{payload['name']}",
            )
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Drop the connection with a TCP reset and no response, like a lost HubSpot reply."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def _parse_json(raw: bytes) -> Any:
    if not raw:
        raise bodies.validation_error("Invalid input JSON: the request body is empty.")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise bodies.validation_error(f"Invalid input JSON: {problem}") from None
    except RecursionError:
        raise bodies.validation_error("Invalid input JSON: nested too deeply.") from None
