"""Structured log lines (one JSON object a line) for the stream service, and its rejects file."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from syncdsl.records.rejection import Rejection, write_rejects
from syncdsl.safefile import refuse_symlink
from syncdsl.scrub import scrub


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EventLog:
    """`{"ts": ..., "level": ..., "event": ..., **fields}` lines on a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._lock = threading.Lock()

    def __call__(self, event: str, *, level: str = "info", **fields: object) -> None:
        if self._quiet:
            return
        line = scrub(
            json.dumps(
                {"ts": _now(), "level": level, "event": event, **fields},
                default=str,
                ensure_ascii=False,
            )
        )
        stream = self._stream or sys.stderr
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must not stop the stream


class RejectsFile:
    """The stream's rejects file: every event that will not reach HubSpot, raw, with its reason
    (the one shape of `syncdsl.records.rejection`), appended from any thread."""

    def __init__(self, path: Path) -> None:
        refuse_symlink(path)  # at start, not at the first reject (0600, never through a symlink)
        self.path = path
        self._lock = threading.Lock()

    def write(
        self, *, stage: str, source: str, reason: str, record: str, email: str | None = None
    ) -> None:
        rejection = Rejection(source, "", 0, reason, record, email)
        with self._lock:
            write_rejects(self.path, [rejection], append=True, stage=stage)
