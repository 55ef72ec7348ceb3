"""`--rejects-replay FILE`: the rejects file, fixed by hand, read as extra records for one run.

Each line of the rejects file (`.syncdsl/rejects.jsonl`) is `{source, file, line, reason,
record}`; `record` is the raw record as its source holds it (a JSON object for a jsonl source, a
CSV row for a csv source, read with that source's header). A replayed record is staged after the
records of its source, so it takes the place of the bad one. HubSpot's refusals (source
`hubspot`) hold no record: they are fixed in the source data and are skipped, with a warning.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from syncdsl.errors import SourceError
from syncdsl.lang import ir
from syncdsl.records.sources import SourceRecord, csv_delimiter, csv_header


@dataclass(frozen=True)
class Replay:
    """Replayed records per source name, and what the plan should say about them."""

    records: Mapping[str, list[SourceRecord]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def load_replay(spec: ir.Spec, path: Path | None) -> Replay:
    """Read a (fixed) rejects file. Raises SourceError when it cannot be read or a line is not a
    rejects entry of this configuration."""
    if path is None:
        return Replay()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"--rejects-replay {path}: cannot read it: {error}") from None
    sources = {source.name: source for source in spec.sources}
    headers: dict[str, tuple[list[str] | None, str]] = {}
    records: dict[str, list[SourceRecord]] = {}
    skipped = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = _entry(path, number, line)
        name = entry.get("source")
        if name == "hubspot":
            skipped += 1
            continue
        source = sources.get(str(name))
        if source is None:
            raise SourceError(
                f"{path}:{number}: source {name!r} is not in this configuration "
                f"({', '.join(sorted(sources))}); is this the rejects file of another one?"
            )
        if source.format == "csv" and source.name not in headers:
            headers[source.name] = (csv_header(source), csv_delimiter(source))
        raw = str(entry.get("record", ""))
        header, delimiter = headers.get(source.name, (None, ","))
        record = _record(str(path), number, raw, source, header, delimiter)
        records.setdefault(source.name, []).append(record)
    count = sum(len(r) for r in records.values())
    warnings = [f"replaying {count:,} record(s) from {path} (--rejects-replay) for this run"]
    if skipped:
        warnings.append(
            f"{skipped:,} entr{'y' if skipped == 1 else 'ies'} of {path} are HubSpot refusals, "
            "which hold no record to replay: fix those in the source data (the file:line each "
            "names)"
        )
    return Replay(records, tuple(warnings))


def _entry(path: Path, number: int, line: str) -> dict[str, object]:
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or "source" not in entry or "record" not in entry:
        raise SourceError(
            f"{path}:{number}: not a rejects entry (a JSON object with `source` and `record`, "
            "as `syncdsl apply` writes them); keep the file's layout when fixing a record"
        )
    return entry


def _record(
    display: str,
    number: int,
    raw: str,
    source: ir.Source,
    header: list[str] | None,
    delimiter: str,
) -> SourceRecord:
    if source.nested:
        try:
            fields = json.loads(raw)
        except ValueError as error:
            return SourceRecord(display, number, raw, None, f"broken JSON: {error}")
        if not isinstance(fields, dict):
            return SourceRecord(display, number, raw, None, "expected a JSON object")
        return SourceRecord(display, number, raw, fields, None)
    if header is None:
        return SourceRecord(display, number, raw, None, f"{source.path} has no header row")
    try:
        row = next(csv.reader(io.StringIO(raw), strict=True, delimiter=delimiter), [])
    except csv.Error as error:
        return SourceRecord(display, number, raw, None, f"malformed CSV: {error}")
    if len(row) != len(header):
        reason = f"expected {len(header)} columns ({', '.join(header)}), got {len(row)}"
        return SourceRecord(display, number, raw, None, reason)
    return SourceRecord(display, number, raw, dict(zip(header, row)), None)
