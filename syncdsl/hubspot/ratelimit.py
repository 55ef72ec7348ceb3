"""One shared HubSpot rate budget: the tier's rolling window, search's 5/s and the daily quota."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from syncdsl.hubspot.errors import daily_limit_reached
from syncdsl.hubspot.tiers import TIERS

SEARCH_WINDOW_SECONDS = 1.0
_MIN_WAIT = 0.001  # avoids spinning on float rounding when a slot frees "now"


def _slack(window_seconds: float) -> float:
    # 2.5% of the window + 10 ms: 260 ms on HubSpot's 10-s window (network jitter), 35 ms on a 1-s
    # test window: pacing within ~3% of the allowed rate, with room for uneven latency.
    return min(0.025 * window_seconds + 0.01, 0.5)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    for key, value in headers.items():
        if key.lower() == name:
            text = str(value).strip()
            return int(text) if text.lstrip("-").isdigit() else None
    return None


class RateBudget:
    """A thread-safe rolling-window budget shared by every request (and thread) of one account.

    `acquire` blocks until a send fits: at most `limit` sends in any `window_seconds` (search has its
    own `search_per_second`), nothing during a penalty after a 429, and never once the daily quota
    reported by HubSpot is used up (DailyLimitError).
    """

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float = 10.0,
        search_per_second: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or search_per_second < 1 or window_seconds <= 0:
            raise ValueError(
                "a rate budget needs limit >= 1, search_per_second >= 1, window_seconds > 0"
            )
        self.limit = limit
        self.window_seconds = float(window_seconds)
        self.search_per_second = search_per_second
        self.daily_remaining: int | None = None
        self.window_remaining: int | None = None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sends: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._penalty_until = -math.inf
        self._search_penalty_until = -math.inf

    @classmethod
    def for_tier(cls, tier: str, **kw: Any) -> RateBudget:
        """The budget of a declared tier (free, starter, professional, enterprise, api_add_on)."""
        if tier not in TIERS:
            raise ValueError(f"unknown HubSpot tier {tier!r}; expected one of {', '.join(TIERS)}")
        return cls(limit=TIERS[tier].per_ten_seconds, **kw)

    def acquire(self, *, search: bool = False, operation: str | None = None) -> None:
        """Block until one request may be sent, and count it."""
        while True:
            with self._lock:
                if self.daily_remaining is not None and self.daily_remaining <= 0:
                    raise daily_limit_reached(operation=operation)
                now = self._clock()
                wait = self._wait_locked(now, search)
                if wait <= 0:
                    (self._searches if search else self._sends).append(now)
                    if self.daily_remaining is not None:
                        self.daily_remaining -= 1
                    return
            self._sleep(max(wait, _MIN_WAIT))

    def _wait_locked(self, now: float, search: bool) -> float:
        if search:
            sends, horizon, cap = self._searches, SEARCH_WINDOW_SECONDS, self.search_per_second
            penalty = self._search_penalty_until
        else:
            sends, horizon, cap = self._sends, self.window_seconds, self.limit
            penalty = self._penalty_until
        # HubSpot counts arrivals, not our sends: uneven network latency can squeeze two sends a
        # window apart into one window, so keep a little slack.
        horizon += _slack(horizon)
        while sends and sends[0] <= now - horizon:
            sends.popleft()
        wait = penalty - now
        if len(sends) >= cap:
            wait = max(wait, sends[len(sends) - cap] + horizon - now)
        return wait

    def observe(self, headers: Mapping[str, str], *, absorb_remaining: bool = True) -> None:
        """Correct the budget from HubSpot's X-HubSpot-RateLimit-* headers (absent on search).

        `absorb_remaining=False` (on a 429, whose penalty already says when to resume) records
        Remaining without booking unseen sends.
        """
        maximum = _header_int(headers, "x-hubspot-ratelimit-max")
        interval_ms = _header_int(headers, "x-hubspot-ratelimit-interval-milliseconds")
        remaining = _header_int(headers, "x-hubspot-ratelimit-remaining")
        daily = _header_int(headers, "x-hubspot-ratelimit-daily-remaining")
        with self._lock:
            if maximum is not None and maximum > 0:
                self.limit = maximum
            if interval_ms is not None and interval_ms > 0:
                self.window_seconds = interval_ms / 1000.0
            if daily is not None:
                self.daily_remaining = max(daily, 0)
            if remaining is not None:
                self.window_remaining = remaining
                if absorb_remaining:
                    self._absorb_remaining_locked(max(remaining, 0))

    def _absorb_remaining_locked(self, remaining: int) -> None:
        # HubSpot counts sends we did not make (another process or app on the same account): when it
        # reports fewer left than we think, book the difference now so we slow down before a 429.
        now = self._clock()
        self._wait_locked(now, search=False)  # prunes expired sends
        unseen = (self.limit - len(self._sends)) - remaining
        self._sends.extend([now] * max(unseen, 0))

    def penalize(self, seconds: float, *, search: bool = False) -> None:
        """After a 429: nobody sends (search or the rest) until `seconds` from now."""
        with self._lock:
            until = self._clock() + max(seconds, 0.0)
            if search:
                self._search_penalty_until = max(self._search_penalty_until, until)
            else:
                self._penalty_until = max(self._penalty_until, until)

    def exhaust_daily(self) -> None:
        """HubSpot said DAILY: every later acquire raises DailyLimitError without sending."""
        with self._lock:
            self.daily_remaining = 0

    def __repr__(self) -> str:
        return (
            f"RateBudget(limit={self.limit}, window_seconds={self.window_seconds}, "
            f"search_per_second={self.search_per_second}, daily_remaining={self.daily_remaining})"
        )
