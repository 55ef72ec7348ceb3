"""HubSpot's rate limits: a rolling window per app, a daily cap, search's own per-second cap."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from syncdsl.emulator import bodies


class RateLimiter:
    """Counts admitted requests; `admit` raises the matching 429 or returns the response headers.

    Requests refused with 429 do not consume budget. Search is exempt from the rolling window
    (the spec's `x-hubspot-rate-limit-exemptions: ["ten-secondly"]`) and its responses carry no
    rate-limit headers (HUBSPOT.md §3); it still counts toward the daily cap.
    """

    def __init__(
        self,
        *,
        window_seconds: float,
        window_limit: int,
        daily_limit: int,
        search_per_second: int,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.window_limit = window_limit
        self.daily_limit = daily_limit
        self.search_per_second = search_per_second
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day = self._today()
        self._daily_used = 0

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).date().isoformat()

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._search.clear()
            self._daily_used = 0

    def admit(self, *, search: bool) -> dict[str, str]:
        """Admit one request or raise ApiError(429); return the rate-limit headers to send."""
        with self._lock:
            now = self._clock()
            self._roll_day()
            _expire(self._window, now - self.window_seconds)
            _expire(self._search, now - 1.0)
            if self.enabled:
                self._check(now, search=search)
            self._daily_used += 1
            (self._search if search else self._window).append(now)
            return {} if search else self._headers()

    def _check(self, now: float, *, search: bool) -> None:
        if self._daily_used >= self.daily_limit:
            daily = bodies.daily_limit()
            daily.headers.update({} if search else self._headers())
            raise daily
        if search and len(self._search) >= self.search_per_second:
            raise bodies.secondly_limit()
        if not search and len(self._window) >= self.window_limit:
            failure = bodies.ten_secondly_limit("publicapi:private-app-ten-secondly")
            failure.headers.update(self._headers())
            raise failure

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._day:  # HubSpot resets at the portal's midnight; ours is UTC
            self._day, self._daily_used = today, 0

    def _headers(self) -> dict[str, str]:
        # With limits off, report a full budget so header-reading clients do not slow down.
        used_today = self._daily_used if self.enabled else 0
        used_now = len(self._window) if self.enabled else 0
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - used_today)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.window_limit - used_now)),
        }


def _expire(stamps: deque[float], cutoff: float) -> None:
    while stamps and stamps[0] <= cutoff:
        stamps.popleft()
