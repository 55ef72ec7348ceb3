"""HubSpotClient fault paths against scripted local stub servers: 429s, 5xx, resets, timeouts."""

from __future__ import annotations

import json
import logging
import queue
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from syncdsl.errors import (
    DailyLimitError,
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotConnectionError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotRateLimitError,
    HubSpotScopeError,
    HubSpotServerError,
    HubSpotValidationError,
)
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import Backoff
from syncdsl.hubspot.schema import PropertySchema
from tests.fakes import FakeTime

TOKEN = "pat-na1-secret-0123456789"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Stub:
    """Answers each request with the next scripted step: a (status, body, headers) or an action."""

    steps: queue.Queue[Any] = field(default_factory=queue.Queue)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""


def reply(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    return (status, body if body is not None else {}, headers or {})


def make_handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            stub.seen.append(
                Seen(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None)
            )
            try:
                step = stub.steps.get_nowait()
            except queue.Empty:
                step = reply(500, {"message": "stub script exhausted"})
            if step == "reset":
                self._reset()
            elif step == "partial":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "500")
                self.end_headers()
                self.wfile.write(b'{"status":"COMPLETE","results":[')
                self.wfile.flush()
                self._reset()
            elif step == "hang":
                stub.release.wait(5)
                self._reset()
            else:
                status, body, headers = step
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        def _reset(self) -> None:
            # SO_LINGER 0 makes close() send a TCP RST: a connection reset, as HubSpot's edge does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def finish(self) -> None:
            try:
                super().finish()
            except (OSError, ValueError):
                pass

        do_GET = do_POST = do_PATCH = _serve

    return Handler


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime(1000.0)


def client_for(stub: Stub, fake_time: FakeTime, **kw: Any) -> HubSpotClient:
    budget = RateBudget(limit=100, clock=fake_time.clock, sleep=fake_time.sleep)
    kw.setdefault("timeout", (2.0, 2.0))
    kw.setdefault("api_version", "v3")  # the stub answers v3 paths; 2026-09 has its own tests
    return HubSpotClient(stub.base_url, TOKEN, budget=budget, sleep=fake_time.sleep, **kw)


def script(stub: Stub, *steps: Any) -> None:
    for step in steps:
        stub.steps.put(step)


def upsert_ok(*emails: str) -> tuple[int, Any, dict[str, str]]:
    results = [
        {
            "id": str(100 + i),
            "new": i % 2 == 0,
            "properties": {"email": email.upper()},
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
            "archived": False,
        }
        for i, email in enumerate(emails)
    ]
    results.reverse()  # HubSpot shuffles; never rely on position
    return reply(
        200, {"status": "COMPLETE", "results": results, "startedAt": "x", "completedAt": "y"}
    )


TEN_SECONDLY = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee00-0000-4000-8000-000000000001",
    "policyName": "TEN_SECONDLY_ROLLING",
}
WINDOW_HEADERS = {
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "0",
}


def test_429_storm_then_success_waits_out_the_window_each_time(
    stub: Stub, fake_time: FakeTime
) -> None:
    script(stub, *[reply(429, TEN_SECONDLY, WINDOW_HEADERS)] * 3, upsert_ok("a@x.io", "b@x.io"))
    client = client_for(stub, fake_time)

    result = client.batch_upsert_contacts_by_email([("a@x.io", {"firstname": "A"}), ("B@x.io", {})])

    assert {k: (v.id, v.new) for k, v in result.items()} == {
        "a@x.io": ("100", True),
        "b@x.io": ("101", False),
    }
    assert len(stub.seen) == 4
    assert sum(fake_time.sleeps) >= 30.0  # a full 10-s window after each of the three 429s
    stats = client.stats.snapshot()
    assert (stats["rate_limited"], stats["retries"], stats["calls"]) == (3, 3, 4)
    assert stats["by_operation"] == {"batch_upsert_contacts": 4}


def test_daily_429_stops_at_once_and_later_calls_do_not_send(
    stub: Stub, fake_time: FakeTime
) -> None:
    daily = {**TEN_SECONDLY, "message": "You have reached your daily limit.", "policyName": "DAILY"}
    script(stub, reply(429, daily), upsert_ok("a@x.io"))
    client = client_for(stub, fake_time)

    with pytest.raises(DailyLimitError) as caught:
        client.batch_upsert_contacts_by_email([("a@x.io", {})])
    with pytest.raises(DailyLimitError):
        client.batch_upsert_contacts_by_email([("a@x.io", {})])

    assert len(stub.seen) == 1
    assert fake_time.sleeps == []
    message = str(caught.value)
    assert "daily" in message and "midnight" in message and "`syncdsl apply` resumes" in message
    assert caught.value.correlation_id == TEN_SECONDLY["correlationId"]


def test_daily_remaining_zero_stops_before_sending(stub: Stub, fake_time: FakeTime) -> None:
    script(stub, reply(200, {"results": []}, {"X-HubSpot-RateLimit-Daily-Remaining": "0"}))
    client = client_for(stub, fake_time)
    client.list_properties()
    assert client.stats.daily_remaining == 0
    with pytest.raises(DailyLimitError):
        client.list_properties()
    assert len(stub.seen) == 1


def test_retry_after_is_honoured_instead_of_the_window(stub: Stub, fake_time: FakeTime) -> None:
    script(
        stub, reply(429, TEN_SECONDLY, {**WINDOW_HEADERS, "Retry-After": "7"}), upsert_ok("a@x.io")
    )
    client = client_for(stub, fake_time)
    client.batch_upsert_contacts_by_email([("a@x.io", {})])
    assert 7.0 <= sum(fake_time.sleeps) < 8.0


def test_absurd_retry_after_is_capped(stub: Stub, fake_time: FakeTime) -> None:
    script(stub, reply(429, TEN_SECONDLY, {"Retry-After": "86400"}), upsert_ok("a@x.io"))
    client_for(stub, fake_time).batch_upsert_contacts_by_email([("a@x.io", {})])
    assert 60.0 <= sum(fake_time.sleeps) <= 121.0


def test_search_secondly_429_waits_about_a_second(stub: Stub, fake_time: FakeTime) -> None:
    secondly = {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "correlationId": "c0ffee00-0000-4000-8000-000000000002",
        "category": "RATE_LIMITS",
    }
    page = reply(200, {"total": 1, "results": [{"id": "7", "properties": {"email": "a@x.io"}}]})
    script(stub, reply(429, secondly), page)
    client = client_for(stub, fake_time)
    found = list(client.search_contacts([], ["firstname"]))
    assert [c.id for c in found] == ["7"]
    assert 1.0 <= sum(fake_time.sleeps) < 2.0


def test_429_that_never_ends_raises_a_rate_limit_error(stub: Stub, fake_time: FakeTime) -> None:
    script(stub, *[reply(429, TEN_SECONDLY, WINDOW_HEADERS)] * 4)
    client = client_for(stub, fake_time, max_retries=3)
    with pytest.raises(HubSpotRateLimitError) as caught:
        client.list_property_groups()
    assert not isinstance(caught.value, DailyLimitError)
    assert len(stub.seen) == 4
    assert "rate limit" in str(caught.value) and "run the command again" in str(caught.value)
    assert caught.value.policy == "TEN_SECONDLY_ROLLING"


def test_5xx_burst_is_retried_with_capped_jittered_backoff(stub: Stub, fake_time: FakeTime) -> None:
    statuses = [500, 502, 503, 504, 524]
    script(stub, *[reply(s, {"message": "boom"}) for s in statuses], reply(200, {"results": []}))
    client = client_for(stub, fake_time, backoff_base=0.5, backoff_cap=4.0)
    assert client.list_property_groups() == []
    assert len(stub.seen) == 6
    assert len(fake_time.sleeps) == 5
    for attempt, slept in enumerate(fake_time.sleeps):
        assert 0.0 <= slept <= min(4.0, 0.5 * 2**attempt)


def test_5xx_that_never_ends_raises_a_server_error(stub: Stub, fake_time: FakeTime) -> None:
    body = {
        "status": "error",
        "message": "internal",
        "category": "INTERNAL_ERROR",
        "correlationId": "c0ffee00-0000-4000-8000-000000000003",
    }
    script(stub, *[reply(503, body)] * 3)
    with pytest.raises(HubSpotServerError) as caught:
        client_for(stub, fake_time, max_retries=2).list_properties()
    assert len(stub.seen) == 3
    assert "503" in str(caught.value) and "c0ffee00-0000-4000-8000-000000000003" in str(
        caught.value
    )


def test_423_waits_at_least_two_seconds_and_477_honours_retry_after(
    stub: Stub, fake_time: FakeTime
) -> None:
    script(stub, reply(423, {}), reply(477, {}, {"Retry-After": "3"}), reply(200, {"results": []}))
    client_for(stub, fake_time).list_property_groups()
    assert fake_time.sleeps[0] >= 2.0
    assert fake_time.sleeps[1] == 3.0


def test_reset_mid_batch_retries_the_same_idempotent_upsert(
    stub: Stub, fake_time: FakeTime
) -> None:
    script(stub, "reset", "partial", upsert_ok("a@x.io", "b@x.io"))
    client = client_for(stub, fake_time)
    result = client.batch_upsert_contacts_by_email([("a@x.io", {"city": "Oslo"}), ("b@x.io", {})])
    assert sorted(result) == ["a@x.io", "b@x.io"]
    assert len(stub.seen) == 3
    assert stub.seen[0].body == stub.seen[1].body == stub.seen[2].body
    assert client.stats.retries == 2


def test_read_timeout_is_retried(stub: Stub, fake_time: FakeTime) -> None:
    script(stub, "hang", reply(200, {"results": []}))
    client = client_for(stub, fake_time, timeout=(2.0, 0.2))
    assert client.list_properties() == []
    assert len(stub.seen) == 2


def test_network_failure_on_every_try_raises_a_connection_error(fake_time: FakeTime) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    budget = RateBudget(limit=100, clock=fake_time.clock, sleep=fake_time.sleep)
    client = HubSpotClient(
        f"http://127.0.0.1:{port}", TOKEN, budget=budget, sleep=fake_time.sleep, max_retries=2
    )
    with pytest.raises(HubSpotConnectionError) as caught:
        client.list_properties()
    assert client.stats.calls == 3
    assert "after 2 retries" in str(caught.value)


NOT_RETRIED = [
    (
        400,
        HubSpotValidationError,
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "correlationId": "c0ffee00-0000-4000-8000-000000000400",
            "message": 'Property values were not valid: [{"isValid":false,"message":"Email address '
            'bad@@x is invalid","error":"INVALID_EMAIL","name":"email"}]',
        },
        ["400 VALIDATION_ERROR", "Email address bad@@x is invalid"],
    ),
    (
        401,
        HubSpotAuthError,
        {
            "status": "error",
            "category": "INVALID_AUTHENTICATION",
            "correlationId": "c0ffee00-0000-4000-8000-000000000401",
            "message": "Authentication credentials not found.",
        },
        [
            (
                "HubSpot rejected the credential (401 INVALID_AUTHENTICATION): check the environment "
                "variable named in `destination hubspot { token = env(...) }` holds "
                "a service key or a (legacy) private-app access token, still valid"
            ),
            "create a service key in HubSpot under Development > Keys > Service keys",
        ],
    ),
    (
        403,
        HubSpotScopeError,
        {
            "status": "error",
            "category": "MISSING_SCOPES",
            "correlationId": "c0ffee00-0000-4000-8000-000000000403",
            "message": "This app hasn't been granted all required scopes to make this call.",
            "errors": [
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": ["crm.schemas.contacts.write"]},
                }
            ],
        },
        [
            "lacks scope crm.schemas.contacts.write",
            "add it to the service key (Development > Keys > Service keys)",
            "Settings > Integrations > Private apps",
        ],
    ),
    (
        404,
        HubSpotNotFoundError,
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "correlationId": "c0ffee00-0000-4000-8000-000000000404",
            "message": "Object not found.",
        },
        ["404 OBJECT_NOT_FOUND"],
    ),
    (
        409,
        HubSpotConflictError,
        {
            "status": "error",
            "category": "CONFLICT",
            "correlationId": "c0ffee00-0000-4000-8000-000000000409",
            "message": "Property already exists",
        },
        ["409 CONFLICT", "Property already exists"],
    ),
]


@pytest.mark.parametrize(
    ("status", "error_type", "body", "phrases"), NOT_RETRIED, ids=lambda v: str(v)[:12]
)
def test_client_errors_are_never_retried(
    stub: Stub,
    fake_time: FakeTime,
    status: int,
    error_type: type[HubSpotError],
    body: dict[str, Any],
    phrases: list[str],
) -> None:
    script(stub, reply(status, body), reply(200, {"results": []}))
    client = client_for(stub, fake_time)
    with pytest.raises(error_type) as caught:
        client.batch_upsert_contacts_by_email([("a@x.io", {})])
    assert len(stub.seen) == 1 and fake_time.sleeps == []
    error = caught.value
    assert (error.status, error.category, error.correlation_id) == (
        status,
        body["category"],
        body["correlationId"],
    )
    assert error.operation == "batch_upsert_contacts"
    for phrase in phrases:
        assert phrase in str(error)
    assert body["correlationId"] in str(error)


def test_validation_error_keeps_hubspot_items_and_raw_message(
    stub: Stub, fake_time: FakeTime
) -> None:
    body = NOT_RETRIED[0][2]
    script(stub, reply(400, body))
    with pytest.raises(HubSpotValidationError) as caught:
        client_for(stub, fake_time).batch_upsert_contacts_by_email([("bad@@x", {})])
    assert caught.value.errors[0]["error"] == "INVALID_EMAIL"
    assert caught.value.body["message"] == body["message"]


def test_scope_error_lists_every_missing_scope(stub: Stub, fake_time: FakeTime) -> None:
    body = dict(NOT_RETRIED[2][2])
    body["errors"] = [
        {"context": {"requiredGranularScopes": ["crm.objects.contacts.write", "crm.x"]}}
    ]
    script(stub, reply(403, body))
    with pytest.raises(HubSpotScopeError) as caught:
        client_for(stub, fake_time).list_properties()
    assert caught.value.missing_scopes == ["crm.objects.contacts.write", "crm.x"]


def test_requests_carry_bearer_user_agent_and_json(stub: Stub, fake_time: FakeTime) -> None:
    script(stub, upsert_ok("a@x.io"))
    client_for(stub, fake_time).batch_upsert_contacts_by_email([("A@X.io", {"firstname": "Ann"})])
    seen = stub.seen[0]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (
        seen.headers["User-Agent"].startswith("syncdsl/")
        and "python-requests" in seen.headers["User-Agent"]
    )
    assert seen.headers["Content-Type"] == "application/json"
    assert (seen.method, seen.path) == ("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert seen.body == {
        "inputs": [
            {
                "id": "a@x.io",
                "idProperty": "email",
                "objectWriteTraceId": "0",
                "properties": {"firstname": "Ann"},
            }
        ]
    }


def test_batch_read_understands_207_and_matches_by_email(stub: Stub, fake_time: FakeTime) -> None:
    body = {
        "status": "COMPLETE",
        "numErrors": 1,
        "results": [
            {"id": "2", "properties": {"email": "B@x.io", "firstname": None}},
            {"id": "1", "properties": {"email": "a@x.io", "firstname": "Ann"}},
        ],
        "errors": [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects",
                "context": {"ids": ["c@x.io"]},
            }
        ],
    }
    script(stub, reply(207, body))
    found = client_for(stub, fake_time).batch_read_contacts_by_email(
        ["a@x.io", "b@x.io", "c@x.io"], ["firstname"]
    )
    assert {k: (c.id, c.properties["firstname"]) for k, c in found.items()} == {
        "a@x.io": ("1", "Ann"),
        "b@x.io": ("2", None),
    }
    sent = stub.seen[0].body
    assert sent["idProperty"] == "email" and sent["properties"] == [
        "email",
        "hs_additional_emails",
        "firstname",
    ]


def test_batch_limits_are_checked_before_sending(stub: Stub, fake_time: FakeTime) -> None:
    client = client_for(stub, fake_time)
    with pytest.raises(ValueError):
        client.batch_upsert_contacts_by_email([(f"{i}@x.io", {}) for i in range(101)])
    with pytest.raises(ValueError):
        client.batch_read_contacts_by_email([f"{i}@x.io" for i in range(101)], [])
    with pytest.raises(ValueError):
        client.batch_upsert_contacts_by_email([("a@x.io", {}), ("A@x.io", {})])
    assert stub.seen == []


def test_list_paging_follows_after(stub: Stub, fake_time: FakeTime) -> None:
    script(
        stub,
        reply(
            200,
            {
                "results": [{"id": "1", "properties": {"email": "a@x.io"}}],
                "paging": {"next": {"after": "abc"}},
            },
        ),
        reply(200, {"results": [{"id": "2", "properties": {"email": "b@x.io"}}]}),
    )
    contacts = list(client_for(stub, fake_time).iter_contacts(["city"], page_size=1))
    assert [c.email for c in contacts] == ["a@x.io", "b@x.io"]
    assert (
        stub.seen[0].path
        == "/crm/v3/objects/contacts?limit=1&properties=email%2Chs_additional_emails%2Ccity"
    )
    assert stub.seen[1].path.endswith("&after=abc")


def test_the_token_never_leaks_into_errors_logs_or_reprs(
    stub: Stub, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {
        "status": "error",
        "category": "INVALID_AUTHENTICATION",
        "message": f"bad token Bearer {TOKEN}",
    }
    script(stub, reply(503, {}), reply(401, echo))
    client = client_for(stub, fake_time)
    with (
        caplog.at_level(logging.DEBUG, logger="syncdsl.hubspot"),
        pytest.raises(HubSpotAuthError) as caught,
    ):
        client.list_properties()
    assert caplog.records, "the client logs each request at debug level"
    texts = [
        caplog.text,
        str(caught.value),
        repr(caught.value),
        repr(caught.value.body),
        repr(client),
        repr(client.budget),
        repr(client.stats),
    ]
    for text in texts:
        assert TOKEN not in text
    assert "Authorization" in caplog.text and "***" in caplog.text


def test_full_jitter_spans_the_whole_range_and_respects_the_cap() -> None:
    import random

    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(7))
    for attempt in range(10):
        ceiling = min(8.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(400)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert (
            min(delays) < 0.1 * ceiling and max(delays) > 0.9 * ceiling
        )  # full, not equal, jitter


def test_search_restarts_above_the_last_id_before_the_10k_cap(
    stub: Stub, fake_time: FakeTime
) -> None:
    def page(first: int, after: str | None) -> tuple[int, Any, dict[str, str]]:
        body: dict[str, Any] = {
            "total": 20_000,
            "results": [
                {"id": str(first + i), "properties": {"email": f"{first + i}@x.io"}}
                for i in range(200)
            ],
        }
        if after:
            body["paging"] = {"next": {"after": after}}
        return reply(200, body)

    script(stub, page(1, "9800"), page(201, "10000"), page(5001, None))
    group = {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Oslo"}]}
    ids = [c.id for c in client_for(stub, fake_time).search_contacts([group], [])]
    assert len(ids) == 600
    first, second, third = (seen.body for seen in stub.seen)
    assert (first["after"], second["after"], third["after"]) == ("0", "9800", "0")
    assert first["filterGroups"] == second["filterGroups"] == [group]
    assert third["filterGroups"] == [
        {
            "filters": [
                *group["filters"],
                {"propertyName": "hs_object_id", "operator": "GT", "value": "400"},
            ]
        }
    ]
    assert third["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]


def test_search_past_10k_with_full_filter_groups_says_why_it_cannot(
    stub: Stub, fake_time: FakeTime
) -> None:
    body = {
        "total": 20_000,
        "results": [{"id": "1", "properties": {}}],
        "paging": {"next": {"after": "10000"}},
    }
    script(stub, reply(200, body))
    full = {"filters": [{"propertyName": f"p{i}", "operator": "HAS_PROPERTY"} for i in range(6)]}
    with pytest.raises(ValueError, match="filter limits"):
        list(client_for(stub, fake_time).search_contacts([full], [], page_size=1))


def test_create_after_a_lost_reply_returns_the_property_instead_of_a_409(
    stub: Stub, fake_time: FakeTime
) -> None:
    created = {
        "name": "aud_x",
        "label": "X",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "description": "",
        "options": [],
    }
    conflict = {"status": "error", "category": "OBJECT_ALREADY_EXISTS", "message": "exists"}
    script(stub, "reset", reply(409, conflict), reply(200, created))
    prop = PropertySchema("aud_x", "X", "string", "text")
    assert client_for(stub, fake_time).create_property(prop).name == "aud_x"
    assert [s.method for s in stub.seen] == ["POST", "POST", "GET"]
    script(stub, reply(409, conflict))
    with pytest.raises(HubSpotConflictError):  # without a lost reply, a 409 is the caller's
        client_for(stub, fake_time).create_property(prop)
