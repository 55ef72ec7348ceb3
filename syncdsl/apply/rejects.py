"""The replayable rejects file of an apply: every record that was not sent, with its reason."""

from __future__ import annotations

from pathlib import Path

from syncdsl.apply.executor import ApplyReport
from syncdsl.records.desired import DesiredSet
from syncdsl.records.rejection import write_rejects


def write_apply_rejects(path: Path, desired: DesiredSet | None, report: ApplyReport) -> int:
    """Write the records the sources rejected (with the raw record) and HubSpot's refusals;
    return how many. No rejects: the file of an earlier apply is removed."""
    if not report.rejected:
        if path.exists():
            path.unlink()
        return 0
    from_sources = desired.rejected if desired is not None else []
    # Without the desired set (apply FILE), the saved plan's rejections carry the raw records.
    rest = [r for r in report.rejected if desired is None or r.source == "hubspot"]
    return write_rejects(path, [*from_sources, *rest])
