"""Stream intake under attack: every request gets a clear answer with a JSON body, in bounded
threads; idle and slow connections are closed; the connection cap keeps intake reachable."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from syncdsl.errors import SyncdslError
from syncdsl.stream.intake import (
    Headers,
    IntakeConfig,
    IntakeRefused,
    IntakeState,
    RequestPolicy,
    admit,
    normalize_origin,
)
from syncdsl.stream.service import allowed_origins
from tests.scenario import workspace
from tests.test_stream import applied, post, profile, streaming, wait_for


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@contextmanager
def _connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(_address(url), timeout=10))
            sockets.append(sock)
        yield sockets


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read until the server closes; -> (status, JSON body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _raw_post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(_address(url), timeout=20) as sock:
        head = (
            f"POST /v1/profiles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        return _read_answer(sock)


def test_an_11_mib_body_gets_a_413_with_a_json_body_and_no_reset(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            body = b'[{"email": "big@example.com", "pad": "' + b"x" * (11 << 20) + b'"}]'
            for _ in range(2):
                status, answer = _raw_post(service.url, body)
                assert status == 413 and "the limit is 10,485,760 (--max-body)" in answer["error"]
            assert service.queue_depth == 0


def test_deeply_nested_json_and_lone_surrogates_are_refused_with_400(tmp_path: Path) -> None:
    nested = b'{"email": "deep@example.com", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    surrogate = b'{"email": "s@example.com", "first": "\\ud800"}'
    paired = (
        b'{"email": "p@example.com", "first": "\\ud83d\\ude00",'
        b' "segmentMembership": {"ups": {"seg-1": {"status": "realized"}}}}'
    )
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            deep = post(service, None, raw=nested)
            assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
            for raw in (surrogate, b"[" + surrogate + b"]") * 3:
                answer = post(service, None, raw=raw)
                assert answer.status_code == 400, answer.text
                assert "lone surrogate" in answer.json()["error"]
            assert post(service, None, raw=paired).status_code == 202
            wait_for(lambda: applied(service) == 1)
            assert service.metrics.get("events_received") == 1


def test_malformed_http_and_huge_headers_get_json_errors(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            with socket.create_connection(_address(service.url), timeout=10) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                status, answer = _read_answer(sock)
                assert status == 400 and answer["status"] == 400
            with socket.create_connection(_address(service.url), timeout=10) as sock:
                sock.sendall(b"GET /status HTTP/1.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
                status, answer = _read_answer(sock)
                assert status == 431 and "65,536 bytes" in answer["error"]


def test_idle_and_slow_connections_are_closed_with_bounded_threads(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, idle_timeout=0.5, read_timeout=1.0) as service:
            threads = threading.active_count()
            with _connections(service.url, 300) as idle, _connections(service.url, 20) as slow:
                for sock in slow:
                    sock.sendall(b"POST /v1/profiles HTTP/1.1\r\nHost: x\r\n")
                assert post(service, profile("busy@example.com", seg="realized")).status_code == 202
                assert threading.active_count() <= threads + 2
                for sock in idle:  # closed by the server: recv sees the end, no answer
                    assert sock.recv(1) == b""
                for sock in slow:
                    status, answer = _read_answer(sock)
                    assert status == 408 and "did not arrive within 1 s" in answer["error"]
            assert threading.active_count() <= threads + 2


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, max_connections=16, idle_timeout=60) as service:
            with _connections(service.url, 16) as idle:
                wait_for(lambda: service.status()["http"]["idle"] == 16)
                assert post(service, profile("room@example.com", seg="realized")).status_code == 202
                assert idle[0].recv(1) == b""  # the oldest idle connection was closed
            wait_for(lambda: service.status()["http"]["open"] == 0)
            with _connections(service.url, 16) as busy:
                for sock in busy:  # requests in progress: none of them can be closed
                    sock.sendall(b"POST /v1/profiles HTTP/1.1\r\nHost: x\r\n")
                wait_for(
                    lambda: service.status()["http"] == {"open": 16, "idle": 0, "receiving": 16}
                )
                with socket.create_connection(_address(service.url), timeout=10) as extra:
                    status, answer = _read_answer(extra)
                assert status == 503 and "too many connections" in answer["error"]


def test_healthz_and_refusals_are_json(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            health = requests.get(f"{service.url}/healthz", timeout=5)
            assert health.status_code == 200 and health.json()["healthy"] is True
            for answer in (
                requests.get(f"{service.url}/nowhere", timeout=5),
                requests.post(f"{service.url}/status", data=b"x", timeout=5),
                requests.get(f"{service.url}/v1/profiles", timeout=5),
            ):
                assert answer.headers["Content-Type"] == "application/json"
                assert answer.json()["status"] == answer.status_code


def test_one_request_hook_sees_the_headers_before_the_body() -> None:
    seen: list[Mapping[str, str]] = []

    def refuse_text(headers: Mapping[str, str]) -> None:
        seen.append(headers)
        if headers.get("Content-Type") == "text/plain":
            raise IntakeRefused(415, "send application/json")

    config = IntakeConfig(("profiles",), "profiles", 10, 100, None, check_request=refuse_text)
    state = IntakeState(queue_depth=0, draining=False, unhealthy=None)
    json_post = Headers([(b"Content-Type", b"application/json"), (b"Content-Length", b"5")])
    assert admit(config, json_post, state) == 5
    with pytest.raises(IntakeRefused) as refused:
        admit(config, Headers([(b"content-type", b"text/plain"), (b"content-length", b"5")]), state)
    assert refused.value.status == 415 and len(seen) == 2


def _post_as(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """A POST with exactly these headers (requests adds no Content-Type for bytes)."""
    return requests.post(f"{url}/v1/profiles", data=body, headers=headers, timeout=10)


def test_only_json_and_ndjson_bodies_are_accepted(tmp_path: Path) -> None:
    one = json.dumps(profile("one@example.com", seg="realized")).encode()
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws) as service:
            for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
                headers = {} if content_type is None else {"Content-Type": content_type}
                answer = _post_as(service.url, one, headers)
                assert answer.status_code == 415, (content_type, answer.text)
                assert answer.headers["Content-Type"] == "application/json"
                assert answer.json()["status"] == 415
                assert "Content-Type: application/json" in answer.json()["error"]
            latin = _post_as(
                service.url, one, {"Content-Type": "application/json; charset=latin-1"}
            )
            assert latin.status_code == 415 and "UTF-8" in latin.json()["error"]
            assert service.queue_depth == 0
            lines = b"\n".join(
                json.dumps(profile(f"n{i}@example.com", seg="realized")).encode() for i in range(3)
            )
            for content_type in (
                "application/json; charset=utf-8",
                "application/x-ndjson",
                "application/ndjson; charset=UTF-8",
                "Application/JSONL",
            ):
                body = one if content_type.startswith("application/json") else lines + b"\n\n"
                answer = _post_as(service.url, body, {"Content-Type": content_type})
                assert answer.status_code == 202, (content_type, answer.text)
                assert answer.json()["accepted"] == (1 if body is one else 3)
            broken = lines + b"\n{oops\n"
            answer = _post_as(service.url, broken, {"Content-Type": "application/x-ndjson"})
            assert answer.status_code == 400 and answer.json()["error"].startswith("line 4: ")
            array = _post_as(service.url, b"[{}]", {"Content-Type": "application/x-ndjson"})
            assert array.status_code == 400 and "line 1 is list" in array.json()["error"]
            wait_for(lambda: applied(service) == 1 + 3 * 3)


def test_posts_from_web_pages_are_refused_unless_their_origin_is_allowed(tmp_path: Path) -> None:
    json_type = {"Content-Type": "application/json"}
    with workspace(tmp_path) as ws:
        ws.write([])
        allowed = ("https://Admin.Example.com:443/", "http://localhost:3000")
        with streaming(ws, allow_origins=allowed) as service:
            body = json.dumps(profile("web@example.com", seg="realized")).encode()
            for origin in ("https://evil.example", "null", "https://admin.example.com:8443"):
                answer = _post_as(service.url, body, {**json_type, "Origin": origin})
                assert answer.status_code == 403, origin
                assert answer.json()["status"] == 403
                if origin == "null":  # a sandboxed page: no option can allow it
                    assert "not one origin that --allow-origin" in answer.json()["error"]
                else:
                    assert f"--allow-origin {origin}" in answer.json()["error"]
            # a form post from a page: refused for its origin before its content type matters
            form = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
            assert _post_as(service.url, body, form).status_code == 403
            assert service.queue_depth == 0
            for origin in ("https://admin.example.com", "http://localhost:3000"):
                answer = _post_as(service.url, body, {**json_type, "Origin": origin})
                assert answer.status_code == 202, (origin, answer.text)
            assert _post_as(service.url, body, json_type).status_code == 202  # no Origin: a server


def test_several_origin_headers_are_refused_without_an_option_that_cannot_work() -> None:
    joined = {"origin": "https://a.example, https://b.example", "content-type": "application/json"}
    with pytest.raises(IntakeRefused) as refused:
        RequestPolicy(frozenset({"https://a.example"}))(joined)
    assert refused.value.status == 403
    assert "which is not one origin that --allow-origin could allow" in str(refused.value)
    assert "--allow-origin https://a.example," not in str(refused.value)


def test_allowed_origins_are_written_as_browsers_send_them() -> None:
    assert normalize_origin("HTTPS://Example.COM:443/") == "https://example.com"
    assert normalize_origin("http://example.com:8080") == "http://example.com:8080"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for bad in ("example.com", "https://example.com/app", "ftp://example.com", "https://u@x.io"):
        with pytest.raises(SyncdslError, match=r"--allow-origin: .* is not an origin"):
            allowed_origins((bad,))
