"""The desired contacts of a spec: every source mapped, staged in SQLite, merged by email, counted.

Staging goes to a temporary SQLite file so a million profiles fit in little memory: per source the
later record of an email replaces the earlier one (counted as merged); the merge across sources
reads the table in (email, source order) order, so the later-declared source wins a conflict.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from syncdsl.hubspot.schema import PropertySchema
from syncdsl.lang import ir
from syncdsl.records.fieldcheck import check_csv_headers, missing_path_warning
from syncdsl.records.mapping import ProfileMapper, RecordRejected
from syncdsl.records.outcome import DesiredContact, Origin, SourceCounts
from syncdsl.records.rejection import Rejection
from syncdsl.records.sources import ReadReport, SourceRecord, read_source

_BATCH = 5_000
#: A staged row's `line` holds its file too: (index of the file in its source) << 32 | line.
_FILE_SHIFT = 32
_LINE_MASK = (1 << _FILE_SHIFT) - 1
_MAX_CONFLICT_WARNINGS = 100
_MERGE_EXAMPLES = 3


@dataclass(frozen=True)
class _Layout:
    """Staging layout: a row's mapped values (properties, then audience properties) are one JSON
    array in `vals`, so any number of mappings and audiences fits (SQLite caps columns at 2,000);
    `select` rows come back as (email, src, line, *one value per property, *per audience)."""

    properties: tuple[str, ...]
    audiences: tuple[str, ...]
    slots: tuple[tuple[int, ...], ...] = ()  # per source: where its values go in a full row

    @classmethod
    def of(cls, mappers: list[ProfileMapper]) -> _Layout:
        properties = tuple(dict.fromkeys(name for m in mappers for name in m.property_names))
        audiences = tuple(dict.fromkeys(name for m in mappers for name in m.audience_properties))
        slots = tuple(
            tuple(properties.index(name) for name in m.property_names)
            + tuple(len(properties) + audiences.index(name) for name in m.audience_properties)
            for m in mappers
        )
        return cls(properties, audiences, slots)

    def create_table(self) -> str:
        return (
            "CREATE TABLE staged (email TEXT NOT NULL, src INTEGER NOT NULL, line INTEGER NOT NULL,"
            " dups INTEGER NOT NULL, vals TEXT NOT NULL, PRIMARY KEY (email, src)) WITHOUT ROWID"
        )

    def select(self) -> str:
        return "SELECT email, src, line, vals FROM staged"

    def expand(self, rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[object, ...]]:
        """Staged rows as (email, src, line, *values) with None where a source maps nothing."""
        width = len(self.properties) + len(self.audiences)
        for email, src, line, vals in rows:
            full: list[object] = [None] * width
            for slot, value in zip(self.slots[src], json.loads(vals)):
                full[slot] = value
            yield (email, src, line, *full)

    def upsert(self, mapper: ProfileMapper) -> str:
        """The insert for one source: later records of an email replace earlier ones, counted."""
        return (
            "INSERT INTO staged (email, src, line, dups, vals) VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (email, src) DO UPDATE SET line = excluded.line, dups = dups + 1,"
            " vals = excluded.vals"
        )


@dataclass(frozen=True)
class _Conflict:
    email: str
    prop: str
    earlier: str
    earlier_source: str
    later: str
    later_source: str

    def __str__(self) -> str:
        return (
            f"conflict: {self.email} {self.prop}: {self.earlier!r} ({self.earlier_source}) vs "
            f"{self.later!r} ({self.later_source}); {self.later_source} wins"
        )


class DesiredSet:
    """The desired contacts, in ascending email order, backed by a temporary SQLite file.

    Iterable any number of times; close it (or use it as a context manager) to delete the file.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        directory: Path,
        sources: tuple[ir.Source, ...],
        layout: _Layout,
    ) -> None:
        self._connection = connection
        self._directory = directory
        self._sources = sources
        self._layout = layout
        self._select = layout.select()
        self._length = 0
        self.rejected: list[Rejection] = []
        self.warnings: list[str] = []
        self.counts: list[SourceCounts] = []
        self.files: list[list[str]] = [[] for _ in sources]  # per source: the files read
        self._finalizer = weakref.finalize(self, _discard, connection, directory)

    def __iter__(self) -> Iterator[DesiredContact]:
        rows = self._layout.expand(self._connection.execute(f"{self._select} ORDER BY email, src"))
        merge = _Merger(self._sources, self._layout, self.files).merge
        for _, group in itertools.groupby(rows, key=_first):
            yield merge(list(group))

    def __len__(self) -> int:
        return self._length

    def get(self, email: str) -> DesiredContact | None:
        """The desired contact for an email (compared trimmed and lowercased), or None."""
        key = email.strip().lower()
        rows = self._connection.execute(f"{self._select} WHERE email = ? ORDER BY src", (key,))
        group = list(self._layout.expand(rows))
        return _Merger(self._sources, self._layout, self.files).merge(group) if group else None

    def emails(self) -> Iterator[str]:
        """Every desired email, ascending."""
        rows = self._connection.execute("SELECT DISTINCT email FROM staged ORDER BY email")
        return (row[0] for row in rows)

    def member_emails(self) -> Iterator[str]:
        """The emails that are members (realized or existing) of some audience, ascending."""
        width = len(self._layout.properties)
        first_status = [sum(slot < width for slot in slots) for slots in self._layout.slots]
        rows = self._connection.execute("SELECT email, src, vals FROM staged ORDER BY email")
        last = None
        for email, src, vals in rows:
            if email == last:
                continue
            statuses = json.loads(vals)[first_status[src] :]
            if any(status in ("realized", "existing") for status in statuses):
                last = email
                yield email

    def close(self) -> None:
        """Delete the staging file. The set is unusable afterwards."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _discard(connection: sqlite3.Connection, directory: Path) -> None:
    connection.close()
    shutil.rmtree(directory, ignore_errors=True)


def _first(row: tuple[object, ...]) -> object:
    return row[0]


class _Merger:
    """Folds the staged rows of one email (one per source, in spec order) into a contact."""

    def __init__(
        self, sources: tuple[ir.Source, ...], layout: _Layout, files: list[list[str]]
    ) -> None:
        self._sources = sources
        self._files = files
        self._properties = tuple(enumerate(layout.properties, start=3))
        self._audiences = tuple(enumerate(layout.audiences, start=3 + len(layout.properties)))
        self.conflicts: list[_Conflict] = []

    def merge(self, rows: list[tuple[object, ...]]) -> DesiredContact:
        email = str(rows[0][0])
        properties: dict[str, str] = {}
        owners: dict[str, int] = {}
        audiences: dict[str, str] = {}
        provenance: list[Origin] = []
        names: list[str] = []
        for row in rows:
            src = int(row[1])  # type: ignore[call-overload]
            provenance.append(_origin(self._files[src], int(row[2])))  # type: ignore[call-overload]
            names.append(self._sources[src].name)
            for column, name in self._properties:
                value = row[column]
                if value is None:
                    continue
                earlier = properties.get(name)
                if earlier is not None and earlier != value:
                    earlier_source = self._sources[owners[name]].name
                    self.conflicts.append(
                        _Conflict(
                            email,
                            name,
                            earlier,
                            earlier_source,
                            str(value),
                            self._sources[src].name,
                        )
                    )
                properties[name] = str(value)
                owners[name] = src
            for column, name in self._audiences:
                status = row[column]
                if status is not None:
                    audiences[name] = str(status)
        return DesiredContact(email, properties, audiences, tuple(provenance), tuple(names))


def _origin(files: list[str], position: int) -> Origin:
    return Origin(files[position >> _FILE_SHIFT], position & _LINE_MASK)


def _open_staging(layout: _Layout) -> tuple[sqlite3.Connection, Path]:
    directory = Path(tempfile.mkdtemp(prefix="syncdsl-desired-"))
    connection = sqlite3.connect(directory / "staging.sqlite", check_same_thread=False)
    # A scratch file: durability buys nothing, speed matters.
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -65536")
    connection.execute(layout.create_table())
    return connection, directory


def build_desired(
    spec: ir.Spec,
    schema: Mapping[str, PropertySchema] | None = None,
    *,
    replay: Mapping[str, Sequence[SourceRecord]] | None = None,
) -> DesiredSet:
    """Read every source of `spec` and return the contacts it wants, with rejects and counts.

    `replay`: extra records per source name (`--rejects-replay`), read after the source's own.

    Raises:
        SourceError: a source file cannot be read at all.
        SpecError: an expression cannot be compiled (a template, a literal that does not fit).
    """
    check_csv_headers(spec)
    mappers = [ProfileMapper(spec, source, schema) for source in spec.sources]
    layout = _Layout.of(mappers)
    connection, directory = _open_staging(layout)
    desired = DesiredSet(connection, directory, spec.sources, layout)
    try:
        for index, (source, mapper) in enumerate(zip(spec.sources, mappers)):
            report = ReadReport()
            records = itertools.chain(
                read_source(source, report), (replay or {}).get(source.name, ())
            )
            counts = _stage_source(
                connection,
                index,
                records,
                source,
                mapper,
                layout,
                desired.rejected,
                desired.warnings,
                desired.files[index],
            )
            desired.counts.append(replace(counts, reading=report.summary(source)))
            desired.warnings.extend(
                _merge_warnings(connection, index, source, counts, desired.files[index])
            )
        connection.commit()
        desired._length = connection.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT email FROM staged)"
        ).fetchone()[0]
        desired.warnings.extend(_conflict_warnings(connection, spec.sources, layout, desired.files))
    except BaseException:
        desired.close()
        raise
    return desired


def _stage_source(
    connection: sqlite3.Connection,
    index: int,
    records_in: Iterable[SourceRecord],
    source: ir.Source,
    mapper: ProfileMapper,
    layout: _Layout,
    rejected: list[Rejection],
    warnings: list[str],
    files: list[str],
) -> SourceCounts:
    records = rejected_count = 0
    file_index: dict[str, int] = {}
    current_file, current_index = "", -1
    # jsonl field paths no record has shown a value at yet (checked until each one has).
    unseen = {
        i: m
        for i, m in enumerate(source.mappings)
        if source.nested and isinstance(m.expr, ir.FieldPath)
    }
    batch: list[tuple[object, ...]] = []
    raws: list[str] = []  # the raw text of each row of `batch`, for a row SQLite refuses
    map_row = mapper.map_row
    name = source.name
    upsert = layout.upsert(mapper)
    for record in records_in:
        records += 1
        fields = record.fields
        if fields is None:
            reason = record.error or "unreadable"
            rejected.append(Rejection(name, record.file, record.line, reason, record.raw))
            rejected_count += 1
            continue
        try:
            email, values, statuses = map_row(fields)
        except RecordRejected as error:
            rejected.append(
                Rejection(name, record.file, record.line, error.reason, record.raw, error.email)
            )
            rejected_count += 1
            continue
        except Exception as error:  # noqa: BLE001 - last resort: one record never ends the run
            rejected.append(_internal(name, record.file, record.line, record.raw, error))
            rejected_count += 1
            continue
        if unseen:
            for i in [i for i in unseen if values[i] is not None]:
                del unseen[i]
        # ensure_ascii=False: a lone surrogate reaches SQLite, which refuses it (a reject).
        row = json.dumps([*values, *statuses], ensure_ascii=False)
        if record.file != current_file:
            current_file = record.file
            current_index = file_index.setdefault(current_file, len(files))
            if current_index == len(files):
                files.append(current_file)
        batch.append((email, index, current_index << _FILE_SHIFT | record.line, row))
        raws.append(record.raw)
        if len(batch) >= _BATCH:
            rejected_count += _insert(connection, upsert, batch, raws, source, rejected, files)
    if batch:
        rejected_count += _insert(connection, upsert, batch, raws, source, rejected, files)
    merged = connection.execute(
        "SELECT COALESCE(SUM(dups), 0) FROM staged WHERE src = ?", (index,)
    ).fetchone()[0]
    contributed = records - rejected_count - merged
    if records > rejected_count:  # rejected records say nothing about the paths
        warnings.extend(
            missing_path_warning(source, m, records, records - rejected_count)
            for m in unseen.values()
        )
    return SourceCounts(
        name,
        records,
        contributed,
        merged,
        rejected_count,
        identities_skipped=mapper.identities_skipped,
    )


def _internal(source: str, file: str, line: int, raw: str, error: Exception) -> Rejection:
    """A record that broke syncdsl itself: rejected, with the exception visible, to report."""
    detail = str(error).encode("utf-8", "backslashreplace").decode("utf-8")[:200]
    reason = f"internal error on this record ({type(error).__name__}: {detail}); please report it"
    return Rejection(source, file, line, reason, raw)


def _insert(
    connection: sqlite3.Connection,
    upsert: str,
    batch: list[tuple[object, ...]],
    raws: list[str],
    source: ir.Source,
    rejected: list[Rejection],
    files: list[str],
) -> int:
    """Stage `batch`; a row SQLite refuses is rejected alone (the rest staged). Returns those."""
    connection.execute("SAVEPOINT batch")
    try:
        connection.executemany(upsert, batch)
    except (sqlite3.Error, ValueError, OverflowError):  # UnicodeEncodeError is a ValueError
        connection.execute("ROLLBACK TO batch")
    else:
        connection.execute("RELEASE batch")
        batch.clear()
        raws.clear()
        return 0
    refused = 0
    for row, raw in zip(batch, raws):
        try:
            connection.execute(upsert, row)
        except (sqlite3.Error, ValueError, OverflowError) as error:
            origin = _origin(files, int(row[2]))  # type: ignore[call-overload]
            rejected.append(_internal(source.name, origin.file, origin.line, raw, error))
            refused += 1
    connection.execute("RELEASE batch")
    batch.clear()
    raws.clear()
    return refused


def _merge_warnings(
    connection: sqlite3.Connection,
    index: int,
    source: ir.Source,
    counts: SourceCounts,
    files: list[str],
) -> list[str]:
    if not counts.merged:
        return []
    examples = connection.execute(
        "SELECT email, dups, line FROM staged WHERE src = ? AND dups > 0 ORDER BY email LIMIT ?",
        (index, _MERGE_EXAMPLES),
    ).fetchall()
    shown = ", ".join(
        f"{email} ({dups + 1} records, kept {_origin(files, line)})"
        for email, dups, line in examples
    )
    more = " ..." if counts.merged > len(examples) else ""
    message = (
        f"merged: {source.name}: {counts.merged} duplicate record(s) replaced by a later record "
        f"with the same email: {shown}{more}"
    )
    return [message]


def _conflict_warnings(
    connection: sqlite3.Connection,
    sources: tuple[ir.Source, ...],
    layout: _Layout,
    files: list[list[str]],
) -> list[str]:
    """Conflicting values across sources: the first few in full, then a total."""
    if len(sources) < 2:
        return []
    rows = layout.expand(
        connection.execute(
            f"{layout.select()} WHERE email IN "
            "(SELECT email FROM staged GROUP BY email HAVING COUNT(*) > 1) ORDER BY email, src"
        )
    )
    merger = _Merger(sources, layout, files)
    total = 0
    warnings: list[str] = []
    for _, group in itertools.groupby(rows, key=_first):
        merger.merge(list(group))
        total += len(merger.conflicts)
        room = _MAX_CONFLICT_WARNINGS - len(warnings)
        warnings.extend(str(conflict) for conflict in merger.conflicts[: max(room, 0)])
        merger.conflicts.clear()
    if total > _MAX_CONFLICT_WARNINGS:
        hidden = total - _MAX_CONFLICT_WARNINGS
        warnings.append(f"conflict: ... and {hidden} more conflicting values ({total} in all)")
    return warnings
