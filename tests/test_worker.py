"""`syncdsl worker --stream`: a stream replica that keeps exiting is started again after 1 s,
then 2, 4, ... up to 30 s; one that ran steadily starts again after 1 s."""

from __future__ import annotations

import sys
from pathlib import Path

from syncdsl.cli.worker import RESTART_CAP, STEADY, _Stream


def _exits(replica: _Stream, now: float) -> float:
    """Start the replica at `now`, let its child exit, note it; the delay before the next start."""
    replica.poll(now)
    assert replica.child is not None
    replica.child.wait()
    replica.poll(now)
    assert replica.child is None
    return replica.due - now


def test_a_replica_that_keeps_exiting_is_started_again_less_and_less_often(tmp_path: Path) -> None:
    replica = _Stream(tmp_path, 8787, [sys.executable, "-c", "raise SystemExit(3)"])
    delays = []
    now = 0.0
    for _ in range(8):
        delay = _exits(replica, now)
        delays.append(delay)
        now += delay
    assert delays == [1, 2, 4, 8, 16, RESTART_CAP, RESTART_CAP, RESTART_CAP]
    replica.poll(now)  # started again; it runs steadily, then exits: back to 1 s
    assert replica.child is not None
    replica.child.wait()
    replica.poll(now + STEADY)
    assert replica.due - (now + STEADY) == 1


def test_a_replica_is_not_started_before_it_is_due(tmp_path: Path) -> None:
    replica = _Stream(tmp_path, 8787, [sys.executable, "-c", "pass"])
    _exits(replica, 100.0)
    replica.poll(100.5)
    assert replica.child is None
    replica.poll(101.0)
    assert replica.child is not None
    replica.child.wait()
