"""Test doubles shared by the client, cassette and rate-budget tests."""

from __future__ import annotations

import threading


class FakeTime:
    """A shared clock that moves only when a thread sleeps; every sleep is recorded."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
