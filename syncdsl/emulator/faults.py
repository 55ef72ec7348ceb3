"""Fault injection: server errors, dropped connections and latency, repeatable with a seed."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

SERVER_ERRORS = (500, 502, 503)


@dataclass(frozen=True)
class Fault:
    """What to do to one request: answer `status` (5xx) instead, or drop the connection.

    A dropped connection applies the write first when `apply_first` is set, as HubSpot may
    do the work and lose the response; a 5xx never applies the request.
    """

    status: int | None = None
    reset: bool = False
    apply_first: bool = False


class FaultInjector:
    """Draws one fault decision per API request from a seeded RNG (repeatable when sequential)."""

    def __init__(self, *, fail_rate: float, reset_rate: float, seed: int | None) -> None:
        if not 0 <= fail_rate + reset_rate <= 1:
            raise ValueError("fail_rate + reset_rate must be between 0 and 1")
        self.fail_rate = fail_rate
        self.reset_rate = reset_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.fail_rate > 0 or self.reset_rate > 0

    def draw(self) -> Fault | None:
        if not self.active:
            return None
        with self._lock:
            roll = self._rng.random()
            if roll < self.fail_rate:
                return Fault(status=self._rng.choice(SERVER_ERRORS))
            if roll < self.fail_rate + self.reset_rate:
                # Half of the resets happen after HubSpot applied the write (response lost).
                return Fault(reset=True, apply_first=self._rng.random() < 0.5)
            return None
