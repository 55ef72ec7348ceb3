"""`syncdsl stream` in-process against the emulator: delivery, coalescing, intake errors, faults."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.state.store import StateStore
from syncdsl.stream import StreamOptions, StreamService
from syncdsl.stream.logs import EventLog
from syncdsl.stream.queue import EventQueue
from tests.scenario import SEGMENT, TOKEN, Workspace, workspace

# Each test runs on both storage backends (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("store_backend")


def profile(
    email: str,
    *,
    first: str | None = None,
    city: str | None = None,
    seg: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {"email": email, **extra}
    if first is not None:
        record["first"] = first
    if city is not None:
        record["city"] = city
    if seg is not None:
        record["segmentMembership"] = {"ups": {SEGMENT: {"status": seg}}}
    return record


def wait_for(condition: Callable[[], object], *, timeout: float = 20.0, what: str = "") -> None:
    """Poll until `condition()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.01)


def post(
    service: StreamService,
    body: object,
    *,
    raw: bytes | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(
        f"{service.url}/v1/profiles{query}",
        data=data,
        timeout=10,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@contextmanager
def streaming(
    ws: Workspace, client: HubSpotClient | None = None, **options: Any
) -> Iterator[StreamService]:
    client = client or ws.client()
    service = StreamService(
        ws.spec(), ws.target(client), StreamOptions(port=0, **options), log=EventLog(quiet=True)
    )
    service.start()
    try:
        yield service
    finally:
        service.stop(grace_seconds=options.get("grace_seconds", 5.0))
        client.close()


def contact(ws: Workspace, email: str) -> dict[str, str]:
    return ws.emulator.contact_by_email(email) or {}


def applied(service: StreamService) -> int:
    return service.metrics.get("events_applied")


def test_events_reach_hubspot_and_the_state_a_later_plan_trusts(tmp_path: Path) -> None:
    people = [
        profile(f"p{i}@example.com", first=f"P{i}", city="paris", seg="realized") for i in range(5)
    ]
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            single = post(service, people[0])
            many = post(service, people[1:])
            assert (single.status_code, single.json()["accepted"]) == (202, 1)
            assert (many.status_code, many.json()["accepted"]) == (202, 4)
            wait_for(lambda: applied(service) == 5, what="5 events applied")
            assert service.queue_depth == 0
        for i in range(5):
            got = contact(ws, f"p{i}@example.com")
            assert (got["firstname"], got["city"], got["newsletter"]) == (
                f"P{i}",
                "Paris",
                "realized",
            )
        with StateStore.open(tmp_path) as store:
            assert store.base_url == ws.emulator.base_url
            state = store.get("p3@example.com")
            assert state is not None and state.audiences == {"newsletter": "realized"}
            assert state.properties == {"firstname": "P3", "city": "Paris"}
        assert (tmp_path / "syncdsl.lock").exists()
        # The batch export holding the same profiles needs no change: stream kept the state.
        ws.write(
            [
                {"email": p["email"], "first": p["first"], "city": "paris", "seg": "realized"}
                for p in people
            ]
        )
        assert ws.plan().contact_changes == ()


def test_events_for_one_email_within_a_window_coalesce_into_one_input(tmp_path: Path) -> None:
    burst = [profile("burst@example.com", city="lyon", seg="realized")]
    burst += [
        profile("burst@example.com", first=f"Name{i}", seg="existing" if i % 2 else "realized")
        for i in range(48)
    ]
    burst += [
        profile("burst@example.com", first="Final", seg="existing"),
        profile("other@example.com", first="Other", seg="realized"),
    ]
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=1.0) as service:
            assert post(service, burst).json()["accepted"] == 51
            wait_for(lambda: applied(service) == 51, what="51 events applied")
            assert service.metrics.get("events_coalesced") == 49
        assert ws.emulator.count("contacts.batch_upsert") == 1
        got = contact(ws, "burst@example.com")
        # Later values win property by property: the city of the first event survives.
        assert (got["firstname"], got["city"], got["newsletter"]) == ("Final", "Lyon", "existing")
        assert contact(ws, "other@example.com")["firstname"] == "Other"


def test_non_members_are_never_sent(tmp_path: Path) -> None:
    """Members of no audience (no membership, or an exit of someone never exported, even with
    fields, even coalesced after a brief membership) are skipped and counted, never sent."""
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            events = [
                profile("bare@example.com"),
                profile("never@example.com", first="Nev", seg="exited"),
                profile("fields@example.com", first="Fiona", city="rome"),
            ]
            assert post(service, events).status_code == 202
            wait_for(lambda: service.metrics.get("events_not_member") == 3, what="3 not members")
            assert service.status()["not_member"] == 3
            assert "syncdsl_stream_events_not_member_total 3" in service.prometheus()
            assert service.queue_depth == 0
        assert ws.emulator.contact_by_email("bare@example.com") is None
        assert ws.emulator.contact_by_email("never@example.com") is None
        assert ws.emulator.contact_by_email("fields@example.com") is None
        assert ws.emulator.count("contacts.batch_upsert") == 0


def test_an_exit_reaches_hubspot(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("leaver@example.com", seg="realized"))
            wait_for(lambda: contact(ws, "leaver@example.com").get("newsletter") == "realized")
            post(service, profile("leaver@example.com", seg="exited"))
            wait_for(
                lambda: contact(ws, "leaver@example.com").get("newsletter") == "exited",
                what="the exit",
            )
        with StateStore.open(tmp_path) as store:
            state = store.get("leaver@example.com")
            assert state is not None and state.audiences == {"newsletter": "exited"}


class _JitteryClient(HubSpotClient):
    """Network jitter: each batch upsert takes a random 0-150 ms longer; batches can overtake."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng = random.Random(5)

    def batch_upsert_contacts_by_email(self, inputs: Any) -> Any:
        time.sleep(self._rng.uniform(0.0, 0.15))
        return super().batch_upsert_contacts_by_email(inputs)


def test_later_events_land_last_with_several_batches_in_flight(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        jittery = _JitteryClient(
            ws.emulator.base_url,
            TOKEN,
            backoff_base=0.01,
            backoff_cap=0.05,
            budget=RateBudget(limit=100_000, window_seconds=1.0),
        )
        with streaming(ws, client=jittery, window_seconds=0.0, parallelism=8) as service:
            for round_ in range(30):
                for racer in range(4):
                    post(
                        service,
                        profile(f"racer{racer}@example.com", first=f"V{round_}", seg="realized"),
                    )
            wait_for(lambda: service.queue_depth == 0, what="every event settled")
            assert service.metrics.get("batches_sent") > 4  # many batches, several at a time
        finals = {contact(ws, f"racer{r}@example.com")["firstname"] for r in range(4)}
        assert finals == {"V29"}


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b'{"email": "x@example.com"', 400, "malformed JSON"),
        (b'"just text"', 400, "expected a profile object or an array"),
        (b'[{"email": "x@example.com"}, 7]', 400, "entry 1 is int"),
        (b'{"email": "x@example.com", "source": "nope"}', 400, "unknown source 'nope'"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (b"[" + b'{"email": "x@example.com"},' * 100 + b"{}]", 413, "the limit is 1,000"),
    ],
)
def test_bad_payloads_are_refused_and_nothing_is_stored(
    tmp_path: Path, raw: bytes, status: int, message: str
) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, max_body=1000) as service:
            response = post(service, None, raw=raw)
            assert response.status_code == status
            assert message in response.json()["error"]
            assert service.queue_depth == 0
            assert service.metrics.get("events_received") == 0
            assert service.metrics.get("intake_refused") == 1
            # The service keeps serving after a refusal.
            assert post(service, profile("ok@example.com")).status_code == 202


def test_source_is_chosen_by_query_or_field(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            by_query = post(
                service, {"Email": "vip1@example.com", "Company": "Acme"}, query="?source=uploads"
            )
            by_field = post(
                service, {"Email": "vip2@example.com", "Company": "Beta", "source": "uploads"}
            )
            unknown = post(service, {"email": "x@example.com"}, query="?source=ghost")
            assert (by_query.status_code, by_field.status_code, unknown.status_code) == (
                202,
                202,
                400,
            )
            listed = post(service, {"Email": "vip3@example.com", "source": ["uploads"]})
            assert listed.status_code == 400
            assert listed.json()["error"].startswith('"source" is list: it names a source')
            wait_for(lambda: applied(service) == 2)
        assert contact(ws, "vip1@example.com")["company"] == "Acme"
        assert contact(ws, "vip2@example.com")["vip"] == "realized"


def test_endpoints_other_than_intake(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            assert requests.get(f"{service.url}/nowhere", timeout=5).status_code == 404
            wrong_method = requests.get(f"{service.url}/v1/profiles", timeout=5)
            assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
            status = requests.get(f"{service.url}/status", timeout=5).json()
            assert status["status"] == "running" and status["queue_depth"] == 0


def test_bearer_secret_is_required_when_configured(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, ingest_token="s3cret-intake") as service:
            ann = profile("a@example.com", first="Ann", seg="realized")
            missing = post(service, ann)
            wrong = post(service, ann, headers={"Authorization": "Bearer nope"})
            right = post(service, ann, headers={"Authorization": "Bearer s3cret-intake"})
            assert missing.status_code == 401 and "Bearer" in missing.headers["WWW-Authenticate"]
            assert wrong.status_code == 401
            assert right.status_code == 202
            wait_for(lambda: applied(service) == 1)
            assert service.metrics.get("events_received") == 1


def test_invalid_records_go_to_the_rejects_file_and_never_block(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, rejects=rejects) as service:
            response = post(
                service,
                [
                    profile("not-an-email", first="X"),
                    profile("fine@example.com", first="Fine", seg="realized"),
                    {"first": "No email"},
                    profile("bad-status@example.com", seg="maybe"),
                ],
            )
            assert response.json()["accepted"] == 4
            wait_for(lambda: applied(service) == 1 and service.queue_depth == 0)
            assert service.metrics.get("events_rejected") == 3
        assert contact(ws, "fine@example.com")["firstname"] == "Fine"
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert len(lines) == 3
        assert {line["stage"] for line in lines} == {"mapping"}
        assert any("no email" in line["reason"] for line in lines)
        assert any("status 'maybe'" in line["reason"] for line in lines)
        replayable = json.loads(lines[0]["record"])
        assert replayable["email"] == "not-an-email"


def test_full_queue_answers_429_with_retry_after_and_recovers(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, max_queue=5, window_seconds=0.01) as service:
            ws.emulator.faults.fail_rate = 1.0  # HubSpot is down
            answers = [
                post(
                    service,
                    [profile(f"q{i}-{j}@example.com", first="Q", seg="realized") for j in range(3)],
                )
                for i in range(4)
            ]
            assert [a.status_code for a in answers] == [202, 202, 429, 429]
            assert int(answers[2].headers["Retry-After"]) > 0
            assert "--max-queue" in answers[2].json()["error"]
            wait_for(lambda: service.metrics.get("batch_failures") >= 1, what="a failed batch")
            assert service.queue_depth == 6  # kept on disk, not dropped
            status = requests.get(f"{service.url}/status", timeout=5).json()
            assert "HubSpotServerError" in status["last_error"]
            ws.emulator.faults.fail_rate = 0.0  # HubSpot is back
            wait_for(lambda: service.queue_depth == 0, timeout=40, what="the backlog to drain")
            assert post(service, profile("after@example.com", seg="realized")).status_code == 202
        for i in range(2):
            for j in range(3):
                assert contact(ws, f"q{i}-{j}@example.com"), f"q{i}-{j} lost"


def test_server_errors_and_resets_lose_nothing(tmp_path: Path) -> None:
    emails = [f"f{i:03d}@example.com" for i in range(300)]
    with workspace(tmp_path, fail_rate=0.3, reset_rate=0.2, seed=11) as ws:
        ws.write([])
        ws.emulator.faults.fail_rate, ws.emulator.faults.reset_rate = 0.0, 0.0
        with streaming(ws, window_seconds=0.02) as service:
            ws.emulator.faults.fail_rate, ws.emulator.faults.reset_rate = 0.3, 0.2
            for start in range(0, 300, 30):
                chunk = [
                    profile(e, first=e[:4], seg="realized") for e in emails[start : start + 30]
                ]
                assert post(service, chunk).status_code == 202
            wait_for(lambda: service.queue_depth == 0, timeout=50, what="every event settled")
            assert applied(service) == 300
        assert ws.emulator.count("contacts.batch_upsert", status=0) > 0  # resets happened
        assert (
            ws.emulator.count("contacts.batch_upsert", status=500)
            + ws.emulator.count("contacts.batch_upsert", status=502)
            + ws.emulator.count("contacts.batch_upsert", status=503)
            > 0
        )
        for email in emails:
            got = contact(ws, email)
            assert got.get("firstname") == email[:4] and got.get("newsletter") == "realized"


def _exhaust_window(emulator: Any) -> None:
    """Another app on the same account spends the rest of the rolling window."""
    from syncdsl.emulator.bodies import ApiError

    while True:
        try:
            emulator.limiter.admit(search=False)
        except ApiError:
            return


def test_rate_limit_429s_lose_nothing(tmp_path: Path) -> None:
    emails = [f"r{i:03d}@example.com" for i in range(120)]
    with workspace(tmp_path, rate_limits=True, window_seconds=0.5, window_limit=6) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.0, parallelism=4) as service:
            for index, email in enumerate(emails):
                if index % 40 == 0:
                    _exhaust_window(ws.emulator)
                assert post(service, profile(email, seg="existing")).status_code == 202
            wait_for(lambda: service.queue_depth == 0, timeout=50, what="every event settled")
            assert service.target.client.stats.rate_limited > 0
            text = requests.get(f"{service.url}/metrics", timeout=5).text
            assert "syncdsl_stream_rate_limited_total 0\n" not in text
        assert ws.emulator.count("contacts.batch_upsert", status=429) > 0
        assert all(contact(ws, e).get("newsletter") == "existing" for e in emails)


def test_metrics_parse_as_prometheus_text(tmp_path: Path) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, [profile(f"m{i}@example.com", seg="realized") for i in range(7)])
            post(service, profile("broken"))
            wait_for(lambda: service.queue_depth == 0)
            text = requests.get(f"{service.url}/metrics", timeout=5)
        assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in parser.text_string_to_metric_families(text.text)}

        def value(family: str, sample: str | None = None, **labels: str) -> float:
            for s in families[family].samples:
                if s.name == (sample or family) and all(
                    s.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(s.value)
            raise AssertionError(f"no sample {sample or family} {labels}")

        prefix = "syncdsl_stream_"
        assert families[prefix + "events_received"].type == "counter"
        assert value(prefix + "events_received", prefix + "events_received_total") == 8
        assert value(prefix + "events_applied", prefix + "events_applied_total") == 7
        assert value(prefix + "events_rejected", prefix + "events_rejected_total") == 1
        assert families[prefix + "queue_depth"].type == "gauge"
        assert value(prefix + "queue_depth") == 0
        assert families[prefix + "batch_size"].type == "histogram"
        assert value(prefix + "batch_size", prefix + "batch_size_sum") == 7
        assert value(prefix + "api_calls", prefix + "api_calls_total") >= 3  # schema + upsert
        assert value(prefix + "rate_limited", prefix + "rate_limited_total") == 0
        assert families[prefix + "latency_seconds"].type == "summary"
        p50 = value(prefix + "latency_seconds", quantile="0.5")
        p99 = value(prefix + "latency_seconds", quantile="0.99")
        assert 0 < p50 <= p99 < 10
        assert value(prefix + "latency_seconds", prefix + "latency_seconds_count") == 7


def _write_lines(path: Path, records: Sequence[dict[str, Any]], *, mode: str = "a") -> None:
    with path.open(mode, encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))


def test_input_file_is_followed_and_not_reread_after_a_restart(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    _write_lines(feed, [profile("t1@example.com", first="One", seg="realized")], mode="w")
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, input=str(feed), window_seconds=0.01) as service:
            wait_for(lambda: contact(ws, "t1@example.com"), what="the first line")
            _write_lines(feed, [profile("t2@example.com", first="Two", seg="realized")])
            with feed.open("a") as handle:
                handle.write("this is not json\n")
                handle.write(
                    json.dumps(profile("t3@example.com", first="Three", seg="realized"))[:20]
                )
            wait_for(lambda: contact(ws, "t2@example.com"), what="an appended line")
            assert not contact(ws, "t3@example.com")  # half a line waits for its newline
            with feed.open("a") as handle:
                handle.write(
                    json.dumps(profile("t3@example.com", first="Three", seg="realized"))[20:] + "\n"
                )
            wait_for(lambda: contact(ws, "t3@example.com").get("firstname") == "Three")
            assert service.metrics.get("events_received") == 3
            assert service.metrics.get("events_rejected") == 1
        upserts = ws.emulator.count("contacts.batch_upsert")
        with streaming(ws, input=str(feed), window_seconds=0.01) as service:
            _write_lines(feed, [profile("t4@example.com", first="Four", seg="realized")])
            wait_for(lambda: contact(ws, "t4@example.com"), what="a line after the restart")
            assert service.metrics.get("events_received") == 1
        assert ws.emulator.count("contacts.batch_upsert") == upserts + 1


@pytest.mark.sqlite_files
def test_unsent_events_survive_a_restart(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01, grace_seconds=0.0) as service:
            ws.emulator.faults.fail_rate = 1.0
            post(
                service,
                [profile(f"s{i}@example.com", first="S", seg="realized") for i in range(10)],
            )
            wait_for(lambda: service.metrics.get("batch_failures") >= 1)
        assert EventQueue(tmp_path / ".syncdsl" / "stream-queue.db").depth == 10
        ws.emulator.faults.fail_rate = 0.0
        with streaming(ws, window_seconds=0.01) as service:
            wait_for(lambda: service.queue_depth == 0, what="the queued events to be sent")
        assert all(contact(ws, f"s{i}@example.com").get("firstname") == "S" for i in range(10))


def test_ambiguous_default_source_is_an_error_at_start(tmp_path: Path) -> None:
    from syncdsl.errors import SyncdslError
    from tests.scenario import BASE_SPEC

    spec = BASE_SPEC.replace('csv = "vip.csv"', 'jsonl = "vip.jsonl"').replace(
        "source = uploads\n", 'source = uploads\n  segment = "seg-2"\n'
    )
    with workspace(tmp_path) as ws:
        ws.write([], spec=spec)
        (tmp_path / "vip.jsonl").write_text("")
        client = ws.client()
        service = StreamService(
            ws.spec(), ws.target(client), StreamOptions(port=0), log=EventLog(quiet=True)
        )
        with pytest.raises(SyncdslError, match="--source NAME"):
            service.start()
        chosen = StreamService(
            ws.spec(),
            ws.target(client),
            StreamOptions(port=0, source="profiles"),
            log=EventLog(quiet=True),
        )
        chosen.start()
        chosen.stop()
        client.close()


def test_an_event_without_the_segment_exits_a_member(tmp_path: Path) -> None:
    """Batch semantics: membership that no longer lists the segment is an exit (for a member)."""
    with workspace(tmp_path) as ws:
        ws.write([profile("left@example.com", first="Lea", seg="realized")])
        ws.apply()
        with streaming(ws) as service:
            left = {"email": "left@example.com", "segmentMembership": {"ups": {}}}
            attribute_only = profile("other@example.com", first="Otto")
            assert post(service, [left, attribute_only]).status_code == 202
            wait_for(lambda: applied(service) == 1, what="1 event applied")
            wait_for(lambda: service.metrics.get("events_not_member") == 1, what="1 not member")
        assert contact(ws, "left@example.com")["newsletter"] == "exited"
        # A member of no audience, never exported: not sent at all.
        assert ws.emulator.contact_by_email("other@example.com") is None
