"""RateBudget: rolling windows under concurrency, search's 5/s, penalties, header correction, daily stop."""

from __future__ import annotations

import threading
from bisect import bisect_left

import pytest

from syncdsl.errors import DailyLimitError
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.tiers import TIERS
from tests.fakes import FakeTime


def max_in_any_window(times: list[float], window: float) -> int:
    """The most sends inside any half-open window (t - window, t]."""
    ordered = sorted(times)
    return max(
        (i + 1 - bisect_left(ordered, t - window, hi=i + 1) for i, t in enumerate(ordered)),
        default=0,
    )


def recording_budget(fake: FakeTime, sent: list[float], **kw: float) -> RateBudget:
    budget = RateBudget(clock=fake.clock, sleep=fake.sleep, **kw)  # type: ignore[arg-type]
    original = budget.acquire

    def acquire(*, search: bool = False, operation: str | None = None) -> None:
        original(search=search, operation=operation)
        sent.append(fake.clock())

    budget.acquire = acquire  # type: ignore[method-assign]
    return budget


def test_concurrent_threads_never_exceed_the_limit_in_any_rolling_window() -> None:
    fake, sent, lock = FakeTime(), [], threading.Lock()  # type: ignore[var-annotated]
    last_read = threading.local()

    def clock() -> float:  # remembers, per thread, the instant acquire() booked its send at
        last_read.value = fake.clock()
        return last_read.value

    budget = RateBudget(limit=10, window_seconds=1.0, clock=clock, sleep=fake.sleep)

    def worker() -> None:
        for _ in range(40):
            budget.acquire()
            with lock:
                sent.append(last_read.value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 320
    assert max_in_any_window(sent, 1.0) <= 10
    # and it does not crawl: 320 sends at 10 per (window + slack) need about 32 windows
    assert fake.now < 32 * 1.2


def test_window_slack_covers_latency_jitter_but_stays_small() -> None:
    fake, sent = FakeTime(), []  # type: ignore[var-annotated]
    budget = recording_budget(fake, sent, limit=100)
    for _ in range(300):
        budget.acquire()
    assert max_in_any_window(sent, 10.0) <= 100
    assert max_in_any_window(sent, 10.2) <= 100  # even if HubSpot sees sends 0.2 s closer
    assert fake.now <= 2 * 10.5


def test_search_has_its_own_five_per_second_and_ignores_the_ten_second_window() -> None:
    fake, sent = FakeTime(), []  # type: ignore[var-annotated]
    budget = recording_budget(fake, sent, limit=1, window_seconds=10.0, search_per_second=5)
    budget.acquire()  # uses the only ordinary slot
    searches_start = len(sent)
    for _ in range(20):
        budget.acquire(search=True)
    searches = sent[searches_start:]
    assert max_in_any_window(searches, 1.0) <= 5
    assert fake.now < 5.0  # search never waited for the 10-s window


def test_penalty_blocks_every_sender_until_it_ends() -> None:
    fake = FakeTime()
    budget = RateBudget(limit=100, clock=fake.clock, sleep=fake.sleep)
    budget.penalize(7.5)
    budget.acquire()
    assert fake.now == pytest.approx(7.5, abs=0.01)
    budget.penalize(3.0, search=True)
    budget.acquire()
    assert fake.now == pytest.approx(7.5, abs=0.01)  # a search penalty does not stop the rest
    budget.acquire(search=True)
    assert fake.now == pytest.approx(10.5, abs=0.01)


def test_headers_correct_limit_window_and_unseen_sends() -> None:
    fake = FakeTime()
    budget = RateBudget(limit=100, clock=fake.clock, sleep=fake.sleep)
    budget.observe(
        {
            "X-HubSpot-RateLimit-Max": "19",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
            "X-HubSpot-RateLimit-Remaining": "4",  # someone else used 15 of this window
            "X-HubSpot-RateLimit-Daily-Remaining": "5000",
        }
    )
    assert (budget.limit, budget.window_seconds, budget.daily_remaining) == (19, 1.0, 5000)
    for _ in range(4):
        budget.acquire()
    assert fake.now == 0.0
    budget.acquire()  # the fifth must wait for the window HubSpot says is used up
    assert fake.now >= 1.0
    assert budget.daily_remaining == 4995


def test_headers_never_loosen_the_window_count() -> None:
    fake = FakeTime()
    budget = RateBudget(limit=5, window_seconds=10.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5):
        budget.acquire()
    budget.observe({"X-HubSpot-RateLimit-Remaining": "5"})  # a stale header from before our sends
    budget.acquire()
    assert fake.now >= 10.0


def test_daily_remaining_zero_raises_before_sending() -> None:
    budget = RateBudget(limit=10, clock=FakeTime().clock)
    budget.observe({"X-HubSpot-RateLimit-Daily-Remaining": "1"})
    budget.acquire()
    with pytest.raises(DailyLimitError) as caught:
        budget.acquire(operation="batch_upsert_contacts")
    assert "midnight" in str(caught.value) and caught.value.operation == "batch_upsert_contacts"


def test_for_tier_uses_the_declared_tier() -> None:
    assert RateBudget.for_tier("professional").limit == TIERS["professional"].per_ten_seconds
    assert RateBudget.for_tier("free", window_seconds=1.0).window_seconds == 1.0
    with pytest.raises(ValueError, match="unknown HubSpot tier"):
        RateBudget.for_tier("platinum")
