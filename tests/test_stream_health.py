"""One bad event never stops the stream's sender; a sender that cannot send makes intake 503."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.records.mapping import ProfileMapper
from syncdsl.stream.health import LASTING_FAILURE_LIMIT, SenderFacts, judge
from syncdsl.stream.queue import EventQueue
from syncdsl.stream.worker import Dispatcher
from tests.scenario import SEGMENT, TOKEN, workspace
from tests.test_stream import applied, contact, post, profile, streaming, wait_for

LIST_STATUS = {
    "email": "list@example.com",
    "first": "List",
    "segmentMembership": {"ups": {SEGMENT: {"status": ["realized"]}}},
}


def _rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _health(service: Any) -> tuple[int, dict[str, Any]]:
    answer = requests.get(f"{service.url}/healthz", timeout=5)
    return answer.status_code, answer.json()


def test_a_status_that_is_a_list_is_rejected_and_later_events_are_sent(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, rejects=rejects, window_seconds=0.01) as service:
            assert post(service, LIST_STATUS).status_code == 202
            after = post(
                service, [profile(f"a{i}@example.com", first="A", seg="realized") for i in range(3)]
            )
            assert after.status_code == 202
            wait_for(lambda: applied(service) == 3, what="the events after the bad one")
            status = requests.get(f"{service.url}/status", timeout=5)
            assert status.status_code == 200 and status.json()["status"] == "running"
            assert _health(service) == (200, {"healthy": True, "status": "running", "reason": None})
            assert service.metrics.get("events_rejected") == 1 and service.queue_depth == 0
        (line,) = _rejects(rejects)
        assert line["stage"] == "mapping" and json.loads(line["record"]) == LIST_STATUS
        assert all(contact(ws, f"a{i}@example.com").get("firstname") == "A" for i in range(3))


def test_any_error_mapping_one_event_rejects_that_event_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ProfileMapper.map

    def flaky(self: ProfileMapper, record: Any, **options: Any) -> Any:
        if record.get("email") == "boom@example.com":
            raise ZeroDivisionError("a bug in mapping")
        return original(self, record, **options)

    monkeypatch.setattr(ProfileMapper, "map", flaky)
    rejects = tmp_path / "rejects.jsonl"
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, rejects=rejects, window_seconds=0.01) as service:
            events = [
                profile("boom@example.com", first="B", seg="realized"),
                profile("ok@example.com", first="O", seg="realized"),
            ]
            assert post(service, events).status_code == 202
            wait_for(lambda: applied(service) == 1 and service.queue_depth == 0)
            assert (
                post(service, profile("later@example.com", first="L", seg="realized")).status_code
                == 202
            )
            wait_for(lambda: applied(service) == 2, what="an event after the failure")
        (line,) = _rejects(rejects)
        assert "ZeroDivisionError: a bug in mapping" in line["reason"]
        assert json.loads(line["record"])["email"] == "boom@example.com"


def test_a_bad_event_queued_before_a_restart_does_not_stop_the_sender(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        queue = EventQueue(tmp_path / ".syncdsl" / "stream-queue.db")
        good = json.dumps(profile("kept@example.com", first="Kept", seg="realized"))
        queue.append([("profiles", json.dumps(LIST_STATUS)), ("profiles", good)])
        queue.close()
        with streaming(ws, window_seconds=0.01) as service:
            wait_for(lambda: service.queue_depth == 0, what="the queue to drain")
            assert applied(service) == 1 and service.metrics.get("events_rejected") == 1
            assert (
                post(service, profile("new@example.com", first="New", seg="realized")).status_code
                == 202
            )
            wait_for(lambda: applied(service) == 2)
        assert contact(ws, "kept@example.com")["firstname"] == "Kept"


def test_a_dead_sender_makes_intake_answer_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Dispatcher) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(Dispatcher, "_send", broken)
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            wait_for(
                lambda: service._dispatcher is not None and service._dispatcher.finished.is_set()
            )
            refused = post(service, profile("lost@example.com", seg="realized"))
            assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
            assert "the sender stopped (OSError: disk I/O error)" in refused.json()["error"]
            status = requests.get(f"{service.url}/status", timeout=5)
            assert status.status_code == 503
            assert (status.json()["status"], status.json()["healthy"]) == ("failed", False)
            code, health = _health(service)
            assert code == 503 and not health["healthy"] and "restart" in health["reason"]
            assert service.queue_depth == 0  # the refused event was not stored


def test_failing_batches_make_intake_answer_503_until_hubspot_is_back(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01, unhealthy_after=0.5) as service:
            ws.emulator.faults.fail_rate = 1.0
            assert (
                post(service, profile("first@example.com", first="F", seg="realized")).status_code
                == 202
            )
            wait_for(lambda: not service.health().healthy, what="the stream to turn unhealthy")
            refused = post(service, profile("second@example.com", first="S", seg="realized"))
            assert refused.status_code == 503
            assert "no batch has reached HubSpot" in refused.json()["error"]
            ws.emulator.faults.fail_rate = 0.0
            wait_for(lambda: service.health().healthy, timeout=40, what="recovery")
            assert (
                post(service, profile("third@example.com", first="T", seg="realized")).status_code
                == 202
            )
            wait_for(lambda: service.queue_depth == 0, timeout=40)
        assert contact(ws, "first@example.com")["firstname"] == "F"
        assert not contact(ws, "second@example.com")


def test_a_stream_whose_client_is_still_retrying_is_degraded_then_unhealthy(
    tmp_path: Path,
) -> None:
    """The client retries a 5xx for minutes before the batch fails: /status must not say
    "running" meanwhile, and --unhealthy-after counts from the first failure."""
    released = threading.Event()

    def held_retries(seconds: float) -> None:  # every back-off waits until the test lets it go
        released.wait(60)

    with workspace(tmp_path) as ws:
        ws.write([])
        budget = RateBudget(limit=100_000, window_seconds=1.0, search_per_second=100_000)
        client = HubSpotClient(ws.emulator.base_url, TOKEN, budget=budget, sleep=held_retries)
        with streaming(ws, client, window_seconds=0.01, unhealthy_after=0.5) as service:
            ws.emulator.faults.fail_rate = 1.0
            event = profile("first@example.com", first="F", seg="realized")
            assert post(service, event).status_code == 202
            wait_for(lambda: service.health().status != "running", what="a degraded stream")
            assert service.health().reason is not None
            assert "(retrying)" in str(service.health().reason)
            wait_for(lambda: not service.health().healthy, what="the stream to turn unhealthy")
            code, document = _health(service)
            assert code == 503 and "no batch has reached HubSpot" in document["reason"]
            ws.emulator.faults.fail_rate = 0.0
            released.set()
            wait_for(lambda: service.queue_depth == 0, timeout=40, what="the retried batch")
            assert service.health().status == "running"
        assert contact(ws, "first@example.com")["firstname"] == "F"


def _facts(**changes: Any) -> SenderFacts:
    base: dict[str, Any] = {
        "alive": True,
        "fatal_error": None,
        "failures": 0,
        "failing_seconds": None,
        "lasting": False,
        "last_error": None,
    }
    return SenderFacts(**{**base, **changes})


def test_health_judgement() -> None:
    def verdict(**changes: Any) -> tuple[bool, str]:
        health = judge(_facts(**changes), draining=False, unhealthy_after=60)
        return health.healthy, health.status

    assert verdict() == (True, "running")
    assert verdict(failures=2, failing_seconds=10.0, last_error="HubSpotServerError: 503") == (
        True,
        "degraded",
    )
    assert verdict(failures=20, failing_seconds=61.0) == (False, "failed")
    lasting = {"failing_seconds": 1.0, "lasting": True, "last_error": "HubSpotAuthError: 401"}
    assert verdict(failures=LASTING_FAILURE_LIMIT - 1, **lasting) == (True, "degraded")
    assert verdict(failures=LASTING_FAILURE_LIMIT, **lasting) == (False, "failed")
    assert verdict(alive=False, fatal_error="OSError: x") == (False, "failed")
    assert judge(_facts(), draining=True, unhealthy_after=60).status == "draining"
