"""Group commit: one thread stores every intake request waiting, in one fsync'd transaction."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

from syncdsl.stream.queue import EventQueue

Events = Sequence[tuple[str, str]]

#: Events stored in one transaction at most (a request's own events are never split).
GROUP_LIMIT = 20_000


class GroupCommitter:
    """`submit(events)` -> a future resolved (with the count) once the events are on disk.

    While one commit waits for its fsync, later requests gather; the next commit stores them
    all at once, so a flood costs one fsync per group, not one per request. A group that fails
    is retried request by request, so one request's error never refuses the others.
    """

    def __init__(self, events: EventQueue) -> None:
        self._events = events
        self._waiting: list[tuple[Events, Future[int]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stream-commit", daemon=True)
        self._thread.start()

    def submit(self, events: Events) -> Future[int]:
        future: Future[int] = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the stream is shutting down"))
                return future
            self._waiting.append((events, future))
            self._cond.notify()
        return future

    def close(self) -> None:
        """Store what is waiting, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _take(self) -> list[tuple[Events, Future[int]]] | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if not self._waiting:
                return None
            group: list[tuple[Events, Future[int]]] = []
            size = 0
            while self._waiting and (not group or size + len(self._waiting[0][0]) <= GROUP_LIMIT):
                item = self._waiting.pop(0)
                group.append(item)
                size += len(item[0])
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            try:
                self._events.append([event for events, _ in group for event in events])
            except Exception as error:  # noqa: BLE001 - retried one request at a time below
                if len(group) == 1:
                    group[0][1].set_exception(error)
                    continue
                for events, future in group:
                    self._one(events, future)
                continue
            for events, future in group:
                future.set_result(len(events))

    def _one(self, events: Events, future: Future[int]) -> None:
        try:
            future.set_result(self._events.append(events))
        except Exception as error:  # noqa: BLE001 - this request is answered with the error
            future.set_exception(error)
