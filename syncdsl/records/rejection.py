"""One rejection type and one rejects writer, for plans, apply and the stream.

A `Rejection` is an input record (or a stream event) that will not reach HubSpot, with why. The
rejects file (`.syncdsl/rejects.jsonl`, `--rejects FILE`) holds one JSON line per rejection, in
one shape whoever writes it: `{ts, stage, source, file, line, email, reason, record}`, `record`
being the raw record as its source holds it (`--rejects-replay` reads it back). The file is 0600
(raw records are personal data) and never written through a symlink; secrets are masked in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syncdsl.safefile import open_text
from syncdsl.scrub import scrub, shown_reason


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input record that will not be sent, with its reason."""

    source: str  # the source's name, or "hubspot" for HubSpot's refusals
    file: str
    line: int
    reason: str
    raw: str = ""
    email: str | None = None  # when the identity was valid (the contact keeps its statuses)

    def to_dict(self) -> dict[str, str | int]:
        """As JSON leaves the process (--json, saved plans, reports): the raw record is kept,
        for replaying, but secrets are masked in it and long values in the reason clipped."""
        return {
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "reason": shown_reason(self.reason),
            "raw": scrub(self.raw),
        }

    @property
    def stage(self) -> str:
        """Where it was refused: HubSpot, or the records stage (reading and mapping)."""
        return "hubspot" if self.source == "hubspot" else "mapping"


def rejects_line(rejection: Rejection, *, stage: str | None = None) -> str:
    """The rejects file's line for `rejection` (newline included)."""
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "stage": stage or rejection.stage,
        "source": rejection.source,
        "file": rejection.file,
        "line": rejection.line,
        "email": rejection.email,
        "reason": shown_reason(rejection.reason),
        "record": scrub(rejection.raw),
    }
    return json.dumps(entry, ensure_ascii=False) + "\n"


def write_rejects(
    path: Path,
    rejections: Iterable[Rejection],
    *,
    append: bool = False,
    stage: str | None = None,
) -> int:
    """Write the rejects file (an apply's, whole) or `append` to it (the stream's, as events are
    refused); return how many lines were written. `stage` overrides each rejection's own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open_text(path, append=append) as handle:
        for rejection in rejections:
            handle.write(rejects_line(rejection, stage=stage))
            count += 1
    return count
