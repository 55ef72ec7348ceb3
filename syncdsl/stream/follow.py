"""`syncdsl stream --input FILE|-`: newline-delimited profiles read from a file (followed like
`tail -F`, across rotations) or from stdin, committed to the queue in groups with the offset.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from syncdsl.stream.intake import IntakeConfig, IntakeRefused, parse_profiles
from syncdsl.stream.logs import EventLog, RejectsFile
from syncdsl.stream.metrics import StreamMetrics
from syncdsl.stream.queue import EventQueue, InputOffset

FOLLOW_POLL = 0.1  # seconds between looks at a followed file that has no new line
_LINES_PER_COMMIT = 1000


class InputFollower:
    """Newline-delimited JSON from a file followed like `tail -f` (offset kept), or stdin to EOF."""

    def __init__(
        self,
        spec: str,
        *,
        config: IntakeConfig,
        events: EventQueue,
        metrics: StreamMetrics,
        rejects: RejectsFile,
        log: EventLog,
        on_stored: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.config = config
        self.events = events
        self.metrics = metrics
        self.rejects = rejects
        self.log = log
        self.on_stored = on_stored
        self.stop_event = threading.Event()
        self.eof = threading.Event()  # stdin ended
        self._thread = threading.Thread(target=self._run, name="stream-input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            if self.spec == "-":
                self._read_stdin(sys.stdin.buffer)
            else:
                self._follow(Path(self.spec).resolve())
        except Exception as error:  # noqa: BLE001 - intake stops; HTTP and sending go on
            self.log(
                "input_failed",
                level="error",
                input=self.spec,
                error=f"{type(error).__name__}: {error}",
            )

    def _read_stdin(self, stream: IO[bytes]) -> None:
        for line in stream:
            if self.stop_event.is_set():
                return
            self._wait_for_room()
            self._store([line], None)
        self.eof.set()
        self.log("input_eof", input="-")

    def _follow(self, path: Path) -> None:
        name = str(path)
        position = self.events.offset(name)
        self.log("input_follow", input=name, offset=position)
        handle: IO[bytes] | None = None
        identity: tuple[int, int] | None = None
        waiting = False
        while not self.stop_event.is_set():
            if handle is None:
                handle, identity, position = self._open(path, position)
                if handle is None:
                    if not waiting:  # said once: the file may be created later (tail -F)
                        self.log("input_missing", level="warning", input=name)
                        waiting = True
                    self.stop_event.wait(FOLLOW_POLL)
                    continue
                if waiting:
                    self.log("input_appeared", input=name)
                    waiting = False
            lines, consumed = _complete_lines(handle, position)
            if lines:
                self._wait_for_room()
                position += consumed
                self._store(lines, InputOffset(name, position))
                continue
            if self._replaced(path, identity, position):
                handle.close()
                handle, position = None, 0  # rotated or truncated: start the new file over
                continue
            self.stop_event.wait(FOLLOW_POLL)
        if handle is not None:
            handle.close()

    def _open(
        self, path: Path, position: int
    ) -> tuple[IO[bytes] | None, tuple[int, int] | None, int]:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None, None, position
        stat = os.fstat(handle.fileno())
        if stat.st_size < position:
            self.log("input_truncated", level="warning", input=str(path), offset=position)
            position = 0
        handle.seek(position)
        return handle, (stat.st_dev, stat.st_ino), position

    @staticmethod
    def _replaced(path: Path, identity: tuple[int, int] | None, position: int) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False  # keep the open file until a new one appears
        return (stat.st_dev, stat.st_ino) != identity or stat.st_size < position

    def _wait_for_room(self) -> None:
        """Backpressure: a followed input simply waits while the queue is over its bound."""
        while self.events.depth > self.config.max_queue and not self.stop_event.is_set():
            self.stop_event.wait(FOLLOW_POLL)

    def _store(self, lines: Sequence[bytes], offset: InputOffset | None) -> None:
        events: list[tuple[str, str]] = []
        for line in lines:
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                events.extend(parse_profiles(text.encode(), self.config, None))
            except IntakeRefused as refused:
                self.rejects.write(
                    stage="input",
                    source=self.config.default_source or "",
                    reason=refused.message,
                    record=text,
                )
                self.metrics.add("events_rejected")
        self.events.append(events, offset=offset)
        if events:
            self.metrics.add("events_received", len(events))
            self.on_stored()


def _complete_lines(handle: IO[bytes], position: int) -> tuple[list[bytes], int]:
    """Whole lines from `position` (a partial last line waits for its newline)."""
    handle.seek(position)
    lines: list[bytes] = []
    consumed = 0
    while len(lines) < _LINES_PER_COMMIT:
        line = handle.readline()
        if not line.endswith(b"\n"):
            break
        lines.append(line)
        consumed += len(line)
    return lines, consumed
