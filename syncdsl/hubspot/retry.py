"""When and how long to wait before retrying a HubSpot request (exponential backoff, full jitter)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from syncdsl.hubspot.errors import is_daily_limit

#: Statuses worth another try; 400/401/403/404/409 are the caller's to fix and never retried.
RETRYABLE_STATUSES = frozenset({423, 429, 477, 500, 502, 503, 504, 521, 523, 524})
#: Network failures worth another try (reset, refused, timed out, truncated body).
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
RETRY_AFTER_CAP = 120.0  # a Retry-After longer than this is treated as this (sanity cap)
LOCKED_WAIT = 2.0  # 423: HubSpot's lock lasts 2 s
SEARCH_SECONDLY_WAIT = 1.0  # search's 5/s limit frees up within a second


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds (HubSpot sends seconds; an HTTP date is not worth supporting)."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(str(value).strip())
            except ValueError:
                return None
            return min(max(seconds, 0.0), RETRY_AFTER_CAP)
    return None


def interval_seconds(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "x-hubspot-ratelimit-interval-milliseconds":
            text = str(value).strip()
            return int(text) / 1000.0 if text.isdigit() and int(text) > 0 else None
    return None


@dataclass
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * (1 << min(attempt, 32)))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, self.ceiling(attempt))


@dataclass(frozen=True)
class RateLimitWait:
    """How a 429 should be waited out: `seconds` for everyone (search or not), or stop (daily)."""

    seconds: float
    daily: bool = False


def rate_limit_wait(
    body: Mapping[str, Any], headers: Mapping[str, str], *, search: bool, window_seconds: float
) -> RateLimitWait:
    """Retry-After when present; else the rest of the window (interval header), ~1 s for search."""
    if is_daily_limit(body):
        return RateLimitWait(0.0, daily=True)
    after = retry_after_seconds(headers)
    if after is not None:
        return RateLimitWait(after)
    secondly = "secondly limit" in str(body.get("message") or "").lower()
    if search or secondly:
        return RateLimitWait(SEARCH_SECONDLY_WAIT)
    return RateLimitWait(interval_seconds(headers) or window_seconds)


def status_wait(status: int, headers: Mapping[str, str], backoff: Backoff, attempt: int) -> float:
    """The pause before retrying a 423, 477 or 5xx."""
    jittered = backoff.delay(attempt)
    if status == 423:
        return LOCKED_WAIT + jittered
    after = retry_after_seconds(headers)  # 477 always sends one; a 503 may
    if after is not None:
        return after
    return max(jittered, LOCKED_WAIT) if status == 477 else jittered
