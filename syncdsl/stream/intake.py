"""Intake: what `POST /v1/profiles` accepts (parsing, admission); `stream.follow` reads `--input`.

The HTTP server itself is `stream.server` (uvicorn) with the ASGI app in `stream.http`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROFILES_PATH = "/v1/profiles"
FULL_QUEUE_RETRY_AFTER = 5
SHUTDOWN_RETRY_AFTER = 5
UNHEALTHY_RETRY_AFTER = 30


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

JSON_TYPE = "application/json"
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def media_type(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """The request's media type (lower case, "" when absent) and its charset parameter."""
    kind, *parameters = headers.get("content-type", "").split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower(), charset


def is_ndjson(headers: Mapping[str, str]) -> bool:
    """True when the body is newline-delimited JSON (one profile a line)."""
    return media_type(headers)[0] in NDJSON_TYPES


def normalize_origin(url: str) -> str:
    """`scheme://host[:port]` as browsers send it in `Origin` (default port dropped); ValueError
    when `url` is not such an origin (a path, query or credentials are not part of one)."""
    scheme, separator, rest = url.strip().partition("://")
    host = rest[:-1] if rest.endswith("/") else rest
    if (
        not separator
        or scheme.lower() not in _DEFAULT_PORTS
        or not host
        or any(c in host for c in "/?#@ ")
    ):
        raise ValueError(
            f"{url!r} is not an origin: write scheme://host[:port], e.g. https://example.com"
        )
    scheme, host = scheme.lower(), host.lower()
    name, colon, port = host.rpartition(":")
    if colon and port == _DEFAULT_PORTS[scheme]:
        host = name
    return f"{scheme}://{host}"


def _origin(header: str) -> str:
    try:
        return normalize_origin(header)
    except ValueError:
        return header.strip().lower()  # e.g. "null" (a sandboxed page): never allowed


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _origin_refusal(origin: str) -> str:
    shown = _clip(origin.strip())
    try:
        allowable = normalize_origin(origin)
    except ValueError:  # "null" (a sandboxed page), or several Origin headers joined
        return (
            f"requests from web pages are refused (Origin: {shown}, which is not one origin "
            "that --allow-origin could allow)"
        )
    return (
        f"requests from web pages are refused (Origin: {shown}); to accept posts from that "
        f"site, start the stream with --allow-origin {allowable}"
    )


@dataclass(frozen=True)
class RequestPolicy:
    """The default request check: JSON or NDJSON bodies only, and no posts from web pages.

    A browser lets any page POST a form or `text/plain` body to any address without asking, and
    marks it with an `Origin` header; such posts are refused unless the origin was allowed.
    """

    allowed_origins: frozenset[str] = frozenset()

    def __call__(self, headers: Mapping[str, str]) -> None:
        origin = headers.get("origin")
        if origin is not None and _origin(origin) not in self.allowed_origins:
            raise IntakeRefused(403, _origin_refusal(origin))
        kind, charset = media_type(headers)
        if kind != JSON_TYPE and kind not in NDJSON_TYPES:
            got = f"Content-Type {_clip(kind)!r}" if kind else "no Content-Type"
            raise IntakeRefused(
                415,
                f"{got}: send `Content-Type: {JSON_TYPE}` (a profile or an array of them) or "
                f"`Content-Type: {NDJSON_TYPES[0]}` (one profile a line)",
            )
        if charset not in (None, "utf-8", "utf8"):
            raise IntakeRefused(
                415, f"charset {_clip(charset)!r}: the body must be UTF-8 (charset=utf-8)"
            )


@dataclass(frozen=True)
class IntakeConfig:
    """What the intake checks before storing events."""

    sources: tuple[str, ...]  # the configuration's source names
    default_source: str | None  # the only jsonl source (None when ambiguous)
    max_queue: int
    max_body: int
    ingest_token: str | None
    check_request: RequestCheck = RequestPolicy()


def resolve_source(
    config: IntakeConfig, profile: dict[str, Any], query: str | None, where: str = ""
) -> str:
    """The source a profile names (`"source"` field, else `?source=`, else the default)."""
    where = f" ({where})" if where else ""
    named = profile.get("source")
    if named is not None and not isinstance(named, str):
        raise IntakeRefused(
            400,
            f'"source"{where} is {type(named).__name__}: it names a source, as a string '
            f"(one of: {', '.join(config.sources)})",
        )
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


def parse_profiles(
    body: bytes, config: IntakeConfig, query: str | None, *, ndjson: bool = False
) -> list[tuple[str, str]]:
    """One profile object or a JSON array of them (with `ndjson`, one profile object a line)
    -> (source, compact JSON) pairs; 400 if any is bad, and then nothing is stored."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise IntakeRefused(400, "the body is not UTF-8 text") from None
    if ndjson:
        return _ndjson_profiles(text, config, query)
    document = _document(text, "")
    if isinstance(document, dict):
        return [_event(document, config, query, "", "the profile")]
    if not isinstance(document, list):
        raise IntakeRefused(
            400,
            "expected a profile object or an array of profile objects, got "
            f"{type(document).__name__}",
        )
    events = []
    for index, profile in enumerate(document):
        if not isinstance(profile, dict):
            raise IntakeRefused(
                400,
                f"entry {index} is {type(profile).__name__}, not a profile "
                "object; nothing was stored",
            )
        events.append(_event(profile, config, query, f"entry {index}", f"entry {index}"))
    return events


def _ndjson_profiles(text: str, config: IntakeConfig, query: str | None) -> list[tuple[str, str]]:
    events = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r\n"):  # JSON whitespace only
            continue
        profile = _document(line, f"line {number}: ")
        if not isinstance(profile, dict):
            raise IntakeRefused(
                400,
                f"line {number} is {type(profile).__name__}, not a profile object (NDJSON "
                "holds one profile object a line); nothing was stored",
            )
        events.append(_event(profile, config, query, f"line {number}", f"line {number}"))
    return events


def _document(text: str, where: str) -> Any:
    """The JSON value of `text`; IntakeRefused (400) saying what is wrong, after `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise IntakeRefused(
            400, f"{where}malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise IntakeRefused(
            400,
            f"{where}the JSON is nested too deeply (a profile needs a few levels, not hundreds)",
        ) from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise IntakeRefused(400, f"{where}malformed JSON: {error}") from None


def _event(
    profile: dict[str, Any], config: IntakeConfig, query: str | None, where: str, what: str
) -> tuple[str, str]:
    return resolve_source(config, profile, query, where), _compact(profile, what)


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
