"""The replayable rejects file: every record that was not sent, with its reason (JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

from syncdsl.apply.executor import ApplyReport
from syncdsl.records.desired import DesiredSet
from syncdsl.safefile import open_text
from syncdsl.scrub import scrub, shown_reason


def write_rejects(path: Path, desired: DesiredSet | None, report: ApplyReport) -> int:
    """Write source rejects (with the raw record) and HubSpot's rejects; return how many.

    The file is 0600 (raw records are personal data); a symlink at `path` is refused."""
    if not report.rejected:
        if path.exists():
            path.unlink()
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    count = desired.write_rejects(path) if desired is not None else 0
    with open_text(path, append=desired is not None) as handle:
        for rejection in report.rejected:
            if desired is not None and rejection.source != "hubspot":
                continue  # already written with the raw record
            handle.write(
                json.dumps(
                    {
                        "source": rejection.source,
                        "file": rejection.file,
                        "line": rejection.line,
                        "reason": shown_reason(rejection.reason),
                        "record": scrub(rejection.raw),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
    return count
