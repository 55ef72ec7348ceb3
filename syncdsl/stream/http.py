"""The intake's ASGI app: `POST /v1/profiles`, `GET /status`, `/metrics`, `/healthz`.

Every answer other than 202 carries a JSON body `{"error": ..., "status": ...}`. A 202 is sent
only after the events' commit reached the disk (the group committer's fsync). Parsing large
bodies, storing and the status documents run off the event loop, in threads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from syncdsl.stream.commit import GroupCommitter
from syncdsl.stream.health import Health
from syncdsl.stream.intake import (
    PROFILES_PATH,
    Headers,
    IntakeConfig,
    IntakeRefused,
    IntakeState,
    admit,
    is_ndjson,
    parse_profiles,
)
from syncdsl.stream.metrics import StreamMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = "application/json"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INLINE_PARSE = 64 * 1024  # bodies up to this size are parsed on the event loop
BUSY_RETRY_AFTER = 1


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def json_reply(status: int, document: object, **options: Any) -> Reply:
    return Reply(status, (json.dumps(document, sort_keys=True) + "\n").encode(), **options)


def error_body(status: int, message: str) -> bytes:
    return (json.dumps({"error": message, "status": status}) + "\n").encode()


def refusal(refused: IntakeRefused, *, close: bool) -> Reply:
    body = error_body(refused.status, refused.message)
    return Reply(refused.status, body, headers=refused.headers, close=close)


@dataclass(frozen=True)
class IntakeHooks:
    """The parts of the service the app reaches."""

    committer: GroupCommitter
    metrics: StreamMetrics
    on_stored: Callable[[], None]
    health: Callable[[], Health]
    queue_depth: Callable[[], int]
    status: Callable[[], dict[str, object]]
    prometheus: Callable[[], str]


class BodyBudget:
    """Bytes of request bodies held in memory at once (declared lengths); beyond it, 503."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held and self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class IntakeApp:
    """ASGI 3 application; one instance per service, run on one event loop."""

    def __init__(
        self, config: IntakeConfig, hooks: IntakeHooks, executor: Executor, body_budget: int
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.executor = executor
        self.budget = BodyBudget(body_budget)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        reply = await self._route(scope, receive)
        if reply is not None:
            await _send(send, reply)

    async def _route(self, scope: Scope, receive: Receive) -> Reply | None:
        path, method = scope["path"], scope["method"]
        if path == PROFILES_PATH and method == "POST":
            return await self._post(scope, receive)
        allow = "POST" if path == PROFILES_PATH else "GET"
        if path in (PROFILES_PATH, "/status", "/metrics", "/healthz") and method != allow:
            hint = "use POST to send profiles" if allow == "POST" else f"use GET on {path}"
            refused = IntakeRefused(405, hint, {"Allow": allow})
            return await self._refuse(scope, receive, refused)
        if path == "/healthz":
            health = self.hooks.health()
            document = {"healthy": health.healthy, "status": health.status, "reason": health.reason}
            return json_reply(200 if health.healthy else 503, document)
        if path == "/status":
            loop = asyncio.get_running_loop()
            status = await loop.run_in_executor(self.executor, self.hooks.status)
            text = json.dumps(status, indent=2, sort_keys=True) + "\n"
            return Reply(200 if status.get("healthy", True) else 503, text.encode())
        if path == "/metrics":
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(self.executor, self.hooks.prometheus)
            return Reply(200, text.encode(), PROMETHEUS_TYPE)
        refused = IntakeRefused(
            404, f"no such endpoint {path}; try POST {PROFILES_PATH}, GET /status or GET /metrics"
        )
        return await self._refuse(scope, receive, refused)

    async def _post(self, scope: Scope, receive: Receive) -> Reply | None:
        headers = Headers(scope["headers"])
        health = self.hooks.health()
        state = IntakeState(
            self.hooks.queue_depth(),
            draining=health.status == "draining",
            unhealthy=None if health.healthy or health.status == "draining" else health.reason,
        )
        try:
            length = admit(self.config, headers, state)
        except IntakeRefused as refused:
            return await self._refuse(scope, receive, refused)
        if not self.budget.take(length):
            busy = IntakeRefused(
                503,
                "too many large bodies are being received at once; retry shortly",
                {"Retry-After": str(BUSY_RETRY_AFTER)},
            )
            return await self._refuse(scope, receive, busy)
        try:
            body = await _read_body(receive, self.config.max_body)
            if body is None:
                return None  # the client went away: nothing stored, nobody to answer
            return await self._store(body, scope, ndjson=is_ndjson(headers))
        finally:
            self.budget.give(length)

    async def _store(self, body: bytes, scope: Scope, *, ndjson: bool) -> Reply:
        query = parse_qs(scope["query_string"].decode("latin-1")).get("source", [None])[0]
        loop = asyncio.get_running_loop()
        try:
            if len(body) <= INLINE_PARSE:
                events = parse_profiles(body, self.config, query, ndjson=ndjson)
            else:
                events = await loop.run_in_executor(
                    self.executor, partial(parse_profiles, ndjson=ndjson), body, self.config, query
                )
        except IntakeRefused as refused:
            self.hooks.metrics.add("intake_refused")
            return refusal(refused, close=False)
        stored = 0
        if events:
            try:
                stored = await asyncio.wrap_future(self.hooks.committer.submit(events))
            except Exception as error:  # noqa: BLE001 - not stored: the sender retries later
                self.hooks.metrics.add("intake_refused")
                message = f"the events could not be stored ({type(error).__name__}: {error})"
                return refusal(IntakeRefused(503, message, {"Retry-After": "5"}), close=False)
            self.hooks.metrics.add("events_received", stored)
            self.hooks.on_stored()
        return json_reply(202, {"accepted": stored, "queue_depth": self.hooks.queue_depth()})

    async def _refuse(self, scope: Scope, receive: Receive, refused: IntakeRefused) -> Reply:
        """Answer a refusal after reading (and dropping) the request's body, so that the client,
        which is still sending it, reads the answer instead of a connection reset."""
        self.hooks.metrics.add("intake_refused")
        headers = Headers(scope["headers"])
        if "100-continue" in headers.get("expect", "").lower():
            return refusal(refused, close=True)  # the client waits: it sends no body
        drained = await _discard(receive, max(4 * self.config.max_body, 16 * 1024 * 1024))
        return refusal(refused, close=not drained)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # the framing follows Content-Length, checked already: a safety net
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _discard(receive: Receive, limit: int) -> bool:
    """Read and drop the body (up to `limit` bytes); True when all of it was read."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in reply.headers.items()]
    if reply.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})
