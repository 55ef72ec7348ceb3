"""Data the HubSpot client returns: contacts, upsert results and request statistics."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Contact:
    """A HubSpot contact; a property HubSpot left out and one it sent as null both read as None."""

    id: str
    properties: dict[str, str | None]

    @property
    def email(self) -> str | None:
        value = self.properties.get("email")
        return value.strip().lower() if value else None

    @property
    def additional_emails(self) -> tuple[str, ...]:
        """Its secondary addresses (`hs_additional_emails`, `;`-separated), lowercased."""
        raw = self.properties.get("hs_additional_emails") or ""
        return tuple(part.strip().lower() for part in raw.split(";") if part.strip())

    def answers_to(self, email: str) -> bool:
        """Whether `email` is this contact's primary or one of its secondary addresses."""
        return email == self.email or email in self.additional_emails

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> Contact:
        raw = obj.get("properties") or {}
        properties = {str(k): (None if v is None else str(v)) for k, v in raw.items()}
        return cls(
            id=str(obj.get("id") or properties.get("hs_object_id") or ""), properties=properties
        )


@dataclass(frozen=True)
class UpsertResult:
    """One row of a batch upsert: the contact id, its (lowercased) email, and whether it was created."""

    id: str
    email: str
    new: bool


@dataclass(frozen=True)
class ContactWrite:
    """One input of a batch write: by email (upsert) or, when `hubspot_id` is set, by id (update).

    `trace_id` is sent as `objectWriteTraceId`; HubSpot echoes it on the input's result or error,
    which is how the reply is matched to the inputs (never by an echoed email).
    """

    trace_id: str
    email: str
    properties: Mapping[str, str]
    hubspot_id: str | None = None


@dataclass(frozen=True)
class WriteReply:
    """A batch write's reply, by trace id: what was written, what HubSpot does not have (an id
    that was deleted or merged away), and the other per-input errors with HubSpot's message."""

    results: dict[str, UpsertResult] = field(default_factory=dict)
    not_found: frozenset[str] = frozenset()
    errors: dict[str, str] = field(default_factory=dict)


_HEADER_FIELDS = {
    "x-hubspot-ratelimit-daily-remaining": "daily_remaining",
    "x-hubspot-ratelimit-max": "window_max",
    "x-hubspot-ratelimit-remaining": "window_remaining",
    "x-hubspot-ratelimit-interval-milliseconds": "interval_ms",
}


@dataclass
class ClientStats:
    """Thread-safe counters of what the client sent and what HubSpot's rate-limit headers said."""

    calls: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    daily_remaining: int | None = None
    window_max: int | None = None
    window_remaining: int | None = None
    interval_ms: int | None = None
    failing_since: float | None = None  # monotonic: since when HubSpot fails (5xx, network)
    last_failure: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_call(self, operation: str) -> None:
        with self._lock:
            self.calls += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def record_error(self) -> None:
        with self._lock:
            self.errors += 1

    def record_failing(self, what: str) -> None:
        """A call failed in a way it is retried for (a 5xx, no answer): HubSpot is failing."""
        with self._lock:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            self.last_failure = what

    def record_answered(self) -> None:
        """HubSpot answered a call (a success, or an error that is not its failure)."""
        with self._lock:
            self.failing_since = None

    def observe(self, headers: Mapping[str, str]) -> None:
        """Keep the latest rate-limit header values (search responses carry none of them)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            for header, attr in _HEADER_FIELDS.items():
                value = lowered.get(header)
                if value is not None and value.strip().lstrip("-").isdigit():
                    setattr(self, attr, int(value))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "by_operation": dict(self.by_operation),
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "errors": self.errors,
                "daily_remaining": self.daily_remaining,
                "window_max": self.window_max,
                "window_remaining": self.window_remaining,
                "interval_ms": self.interval_ms,
            }
