"""The desired contacts of a spec: every source mapped, staged in DuckDB, merged by email, counted.

Staging goes to a temporary DuckDB database, which spills to disk, so ten million profiles fit in
bounded memory. jsonl lines and csv rows are mapped in SQL (`syncdsl.records.vectorised`);
what SQL cannot vouch for, and every Parquet record, is mapped by `ProfileMapper` in Python and
staged in batches. Per source the later record of an email replaces the earlier one
(counted as merged); across sources, for each property, the value of the later-declared source
wins (a window and a group in SQL).
"""

from __future__ import annotations

import heapq
import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import pyarrow as pa

from syncdsl.hubspot.schema import PropertySchema
from syncdsl.lang import ir
from syncdsl.records.fieldcheck import (
    check_csv_headers,
    missing_consent_warning,
    missing_path_warning,
)
from syncdsl.records.mapping import ProfileMapper, RecordRejected
from syncdsl.records.outcome import DesiredContact, Origin, SourceCounts
from syncdsl.records.rejection import Rejection
from syncdsl.records.sources import ReadReport, SourceRecord, parse_jsonl_line, read_source
from syncdsl.records.vectorised import (
    FILE_SHIFT,
    LINE_MASK,
    BrokenData,
    ChunkMapper,
    ColumnPlan,
    chunk_batches,
    line_chunks,
    plan_columns,
)

_BATCH = 20_000
#: A staged row's `pos` holds its file too: (index of the file in its source) << FILE_SHIFT | line.
#: Replayed records (`--rejects-replay`) come after every record of their source.
_REPLAY_SEQ = 1 << 62
_MAX_CONFLICT_WARNINGS = 100
_MERGE_EXAMPLES = 3
_FETCH = 10_000
#: DuckDB's memory for staging; beyond it, joins and sorts spill to the staging directory.
MEMORY_LIMIT = os.environ.get("SYNCDSL_MEMORY_LIMIT", "512MB")


@dataclass(frozen=True)
class Layout:
    """Staging layout: one VARCHAR column per property (`c0`...), then one per audience, then
    (when a source has a consent rule) one for why a record is withheld; each source fills its
    own."""

    properties: tuple[str, ...]
    audiences: tuple[str, ...]
    slots: tuple[tuple[int, ...], ...] = ()  # per source: where its values go in a full row
    consent: bool = False  # the last column says why a record is withheld

    @classmethod
    def of(cls, mappers: list[ProfileMapper]) -> Layout:
        properties = tuple(dict.fromkeys(name for m in mappers for name in m.property_names))
        audiences = tuple(dict.fromkeys(name for m in mappers for name in m.audience_properties))
        consent = any(m.consent for m in mappers)
        withheld = len(properties) + len(audiences)
        slots = tuple(
            tuple(properties.index(name) for name in m.property_names)
            + tuple(len(properties) + audiences.index(name) for name in m.audience_properties)
            + ((withheld,) if m.consent else ())
            for m in mappers
        )
        return cls(properties, audiences, slots, consent)

    @property
    def width(self) -> int:
        return len(self.properties) + len(self.audiences) + self.consent

    @property
    def columns(self) -> list[str]:
        return [f"c{n}" for n in range(self.width)]

    def property_column(self, name: str) -> str:
        return f"c{self.properties.index(name)}"

    def audience_column(self, name: str) -> str:
        return f"c{len(self.properties) + self.audiences.index(name)}"

    @property
    def withheld_column(self) -> str | None:
        """The column saying why a contact is withheld (its consent), if any source has one."""
        return f"c{len(self.properties) + len(self.audiences)}" if self.consent else None

    def create_tables(self, db: duckdb.DuckDBPyConnection) -> None:
        values = "".join(f", {c} VARCHAR" for c in self.columns)
        db.execute(
            "CREATE TABLE mapped (src INTEGER NOT NULL, email VARCHAR NOT NULL, "
            f"pos BIGINT NOT NULL, seq BIGINT NOT NULL{values})"
        ).fetchall()

    def arrow(self, rows: list[tuple[object, ...]]) -> pa.Table:
        names = ["src", "email", "pos", "seq", *self.columns]
        types = [pa.int32(), pa.string(), pa.int64(), pa.int64()] + [pa.string()] * self.width
        columns = list(zip(*rows)) if rows else [()] * len(names)
        return pa.table(
            {name: pa.array(list(col), type) for name, col, type in zip(names, columns, types)}
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
    """The desired contacts, in ascending email order, backed by a temporary DuckDB database
    (table `desired`: email, srcs, poss, one column per property and audience).

    Iterable any number of times; close it (or use it as a context manager) to delete the file.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        directory: Path,
        sources: tuple[ir.Source, ...],
        layout: Layout,
    ) -> None:
        self.connection = connection
        self._directory = directory
        self._sources = sources
        self.layout = layout
        self._length = 0
        self.rejected: list[Rejection] = []
        self.warnings: list[str] = []
        self.counts: list[SourceCounts] = []
        self.files: list[list[str]] = [[] for _ in sources]  # per source: the files read
        self._finalizer = weakref.finalize(self, _discard, connection, directory)

    @property
    def sources(self) -> tuple[ir.Source, ...]:
        return self._sources

    def select(
        self, where: str = "", parameters: Sequence[object] = ()
    ) -> Iterator[DesiredContact]:
        """The desired contacts `where` selects (SQL over `desired`), ascending by email."""
        columns = ", ".join(self.layout.columns)
        cursor = self.connection.cursor()
        cursor.execute(
            f"SELECT email, srcs, poss, {columns} FROM desired {where} ORDER BY email",
            list(parameters),
        )
        return self._contacts(cursor)

    def _contacts(self, cursor: duckdb.DuckDBPyConnection) -> Iterator[DesiredContact]:
        properties = tuple(enumerate(self.layout.properties, start=3))
        audiences = tuple(enumerate(self.layout.audiences, start=3 + len(self.layout.properties)))
        withheld = 3 + len(properties) + len(audiences) if self.layout.consent else None
        names = [source.name for source in self._sources]
        files = self.files
        try:
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    srcs = row[1]
                    yield DesiredContact(
                        row[0],
                        {name: row[c] for c, name in properties if row[c] is not None},
                        {name: row[c] for c, name in audiences if row[c] is not None},
                        tuple(_origin(files[s], p) for s, p in zip(srcs, row[2])),
                        tuple(names[s] for s in srcs),
                        row[withheld] if withheld is not None else None,
                    )
        finally:
            cursor.close()

    def __iter__(self) -> Iterator[DesiredContact]:
        return self.select()

    def __len__(self) -> int:
        return self._length

    def get(self, email: str) -> DesiredContact | None:
        """The desired contact for an email (compared trimmed and lowercased), or None."""
        return next(self.select("WHERE email = ?", [email.strip().lower()]), None)

    def emails(self) -> Iterator[str]:
        """Every desired email, ascending."""
        return self._strings("SELECT email FROM desired ORDER BY email")

    def member_emails(self) -> Iterator[str]:
        """The emails that are members (realized or existing) of some audience, ascending."""
        if not self.layout.audiences:
            return iter(())
        member = " OR ".join(
            f"{self.layout.audience_column(a)} IN ('realized', 'existing')"
            for a in self.layout.audiences
        )
        return self._strings(f"SELECT email FROM desired WHERE {member} ORDER BY email")

    def withheld(self) -> Iterator[tuple[str, str]]:
        """(email, reason) of every contact its consent withholds, ascending."""
        column = self.layout.withheld_column
        if column is None:
            return iter(())
        return self.rows(
            f"SELECT email, {column} FROM desired WHERE {column} IS NOT NULL ORDER BY email"
        )

    def rows(self, query: str) -> Iterator[Any]:
        """The rows of a query over the staging database, fetched in batches as they are read."""
        cursor = self.connection.cursor()
        cursor.execute(query)
        try:
            while batch := cursor.fetchmany(_FETCH):
                yield from batch
        finally:
            cursor.close()

    def _strings(self, query: str) -> Iterator[str]:
        return (value for (value,) in self.rows(query))

    def close(self) -> None:
        """Delete the staging database. The set is unusable afterwards."""
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


def _discard(connection: duckdb.DuckDBPyConnection, directory: Path) -> None:
    connection.close()
    shutil.rmtree(directory, ignore_errors=True)


def _first(row: tuple[object, ...]) -> object:
    return row[0]


class _Merger:
    """Folds the staged rows of one email (one per source, in spec order) into a contact."""

    def __init__(
        self, sources: tuple[ir.Source, ...], layout: Layout, files: list[list[str]]
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
    return Origin(files[position >> FILE_SHIFT], position & LINE_MASK)


def _open_staging(layout: Layout) -> tuple[duckdb.DuckDBPyConnection, Path]:
    directory = Path(tempfile.mkdtemp(prefix="syncdsl-desired-"))
    connection = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(directory / "spill"),
            "preserve_insertion_order": False,
            "enable_external_access": True,
        },
    )
    layout.create_tables(connection)
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
    layout = Layout.of(mappers)
    connection, directory = _open_staging(layout)
    desired = DesiredSet(connection, directory, spec.sources, layout)
    try:
        for index, (source, mapper) in enumerate(zip(spec.sources, mappers)):
            stager = _Stager(connection, index, source, mapper, layout, desired)
            report = ReadReport()
            plan = plan_columns(source, mapper)
            if plan is None:
                for record in read_source(source, report):
                    stager.add(record)
            elif plan.columns:
                _stage_rows(stager, stager.chunk_mapper(plan), source, report)
            else:
                _stage_vectorised(stager, stager.chunk_mapper(plan), source, report)
            for n, record in enumerate((replay or {}).get(source.name, ())):
                stager.add(record, _REPLAY_SEQ + n)
            stager.flush()
            counts = stager.counts()
            desired.counts.append(replace(counts, reading=report.summary(source)))
            desired.warnings.extend(stager.path_warnings(counts))
            desired.warnings.extend(
                _merge_warnings(connection, index, source, counts, desired.files[index])
            )
        _merge(connection, layout)
        desired._length = connection.execute("SELECT count(*) FROM desired").fetchall()[0][0]
        desired.warnings.extend(_conflict_warnings(connection, spec.sources, layout, desired.files))
    except BaseException:
        desired.close()
        raise
    return desired


def _stage_vectorised(
    stager: _Stager, chunks: ChunkMapper, source: ir.Source, report: ReadReport
) -> None:
    """Map the source's lines in SQL, one query over all its files, then in Python the lines
    SQL left, in order, with the places where a file's data broke off."""
    breaks: list[tuple[int, SourceRecord]] = []  # at most one per file
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        # Runs inside DuckDB's scan: an exception is kept and raised once the query is over.
        try:
            for chunk in line_chunks(source, report):
                index = stager.file_index(chunk.display)
                if isinstance(chunk, BrokenData):
                    record = SourceRecord(chunk.display, chunk.line, "", None, chunk.reason)
                    breaks.append((index << FILE_SHIFT | chunk.line, record))
                    continue
                assert index == chunk.file  # files are registered in reading order
                yield from chunk_batches(chunk)
        except BaseException as error:  # noqa: BLE001 - re-raised below, outside DuckDB
            failure.append(error)

    inserted, leftovers = chunks.map_source(batches())
    stager.consent_held += chunks.consent_held
    if failure:
        raise failure[0]
    stager.records += inserted
    files = stager.files
    lines = (
        (left.position, parse_jsonl_line(files[left.file], left.line, left.raw))
        for left in leftovers
    )
    for _, record in heapq.merge(lines, breaks, key=lambda item: item[0]):
        if record is not None:
            stager.add(record)
    stager.flush()


def _stage_rows(stager: _Stager, rows: ChunkMapper, source: ir.Source, report: ReadReport) -> None:
    """Map a csv source's rows, as Python's csv reader splits them, in SQL a batch at a time;
    the rows SQL leaves, and those the reader could not split, go to Python in order."""
    records = read_source(source, report)
    try:
        while batch := list(itertools.islice(records, _BATCH)):
            positions = [stager.file_index(r.file) << FILE_SHIFT | r.line for r in batch]
            split = [(p, r.fields) for p, r in zip(positions, batch) if r.fields is not None]
            inserted, refused = rows.map_rows(split)
            stager.records += inserted
            for position, record in zip(positions, batch):
                if record.fields is None or position in refused:
                    stager.add(record)
        stager.flush()
    finally:
        rows.close()
        stager.consent_held += rows.consent_held


class _Stager:
    """Stages one source's records mapped in Python (in batches), and counts its records."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        index: int,
        source: ir.Source,
        mapper: ProfileMapper,
        layout: Layout,
        desired: DesiredSet,
    ) -> None:
        self._db = connection
        self.index = index
        self._source = source
        self._mapper = mapper
        self._layout = layout
        self._rejected = desired.rejected
        self._files = desired.files[index]
        self._file_index: dict[str, int] = {}
        self._batch: list[tuple[object, ...]] = []
        self._slots = layout.slots[index]
        self.records = 0
        self.rejected = 0
        self.consent_held = 0  # records SQL mapped with a consent value (Python's: the mapper's)

    @property
    def files(self) -> list[str]:
        """The source's files, in reading order (a position's file index points here)."""
        return self._files

    def chunk_mapper(self, plan: ColumnPlan) -> ChunkMapper:
        """The SQL mapping of this source's records into its slots of the staging table."""
        return ChunkMapper(
            self._db, plan, self._mapper, self.index, self._slots, self._layout.width
        )

    def file_index(self, display: str) -> int:
        index = self._file_index.get(display)
        if index is None:
            index = self._file_index[display] = len(self._files)
            self._files.append(display)
        return index

    def add(self, record: SourceRecord, seq: int | None = None) -> None:
        self.records += 1
        name = self._source.name
        if record.fields is None:
            reason = record.error or "unreadable"
            self._reject(Rejection(name, record.file, record.line, reason, record.raw))
            return
        try:
            email, values, statuses, withheld = self._mapper.map_row(record.fields)
        except RecordRejected as error:
            self._reject(
                Rejection(name, record.file, record.line, error.reason, record.raw, error.email)
            )
            return
        except Exception as error:  # noqa: BLE001 - last resort: one record never ends the run
            self._reject(_internal(name, record.file, record.line, record.raw, error))
            return
        row: list[object] = [None] * self._layout.width
        for slot, value in zip(self._slots, (*values, *statuses, withheld)):
            row[slot] = value
        for cell in (email, *row):
            if isinstance(cell, str):
                try:
                    cell.encode("utf-8")
                except UnicodeEncodeError as error:  # a lone surrogate cannot be stored
                    self._reject(_internal(name, record.file, record.line, record.raw, error))
                    return
        pos = self.file_index(record.file) << FILE_SHIFT | record.line
        self._batch.append((self.index, email, pos, pos if seq is None else seq, *row))
        if len(self._batch) >= _BATCH:
            self.flush()

    def _reject(self, rejection: Rejection) -> None:
        self._rejected.append(rejection)
        self.rejected += 1

    def flush(self) -> None:
        if not self._batch:
            return
        table = self._layout.arrow(self._batch)
        self._batch.clear()
        self._db.register("batch", table)
        try:
            self._db.execute("INSERT INTO mapped SELECT * FROM batch").fetchall()
        finally:
            self._db.unregister("batch")

    def counts(self) -> SourceCounts:
        merged = self._db.execute(
            "SELECT count(*) - count(DISTINCT email) FROM mapped WHERE src = ?", [self.index]
        ).fetchall()[0][0]
        return SourceCounts(
            self._source.name,
            self.records,
            self.records - self.rejected - merged,
            merged,
            self.rejected,
            identities_skipped=self._mapper.identities_skipped,
        )

    def path_warnings(self, counts: SourceCounts) -> list[str]:
        """Field paths at which no record held a value: jsonl mappings, and consent fields the
        spec names (a typo there would export everyone, or no one)."""
        return self._consent_warning(counts) + self._mapping_warnings(counts)

    def _consent_warning(self, counts: SourceCounts) -> list[str]:
        consent = self._source.consent
        read = counts.records - counts.rejected
        if consent is None or not consent.written or read <= 0:
            return []
        if self.consent_held + self._mapper.consent_held:
            return []
        return [missing_consent_warning(self._source, consent, read)]

    def _mapping_warnings(self, counts: SourceCounts) -> list[str]:
        source = self._source
        paths = [
            (i, m)
            for i, m in enumerate(source.mappings)
            if source.nested and isinstance(m.expr, ir.FieldPath)
        ]
        if not paths or counts.records == counts.rejected:
            return []  # rejected records say nothing about the paths
        withheld = self._layout.withheld_column if self._mapper.consent else None
        found = self._db.execute(
            "SELECT "
            + ", ".join(f"count(c{self._slots[i]})" for i, _ in paths)
            + f", {f'count({withheld})' if withheld else '0'} FROM mapped WHERE src = ?",
            [self.index],
        ).fetchall()[0]
        assert found is not None
        # Nor do withheld ones: their values are not read.
        mapped = counts.records - counts.rejected - int(found[-1])
        if mapped <= 0:
            return []
        return [
            missing_path_warning(source, m, counts.records, mapped)
            for (_, m), seen in zip(paths, found)
            if not seen
        ]


def _merge(connection: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    """`staged`: per source, each email's last record (and how many it replaced);
    `desired`: per email, each value from the last source that has one."""
    columns = layout.columns
    # The last record per (source, email) by a narrow aggregate joined back (seq is unique in
    # a source): a window over `mapped` would sort every column of every row.
    connection.execute(
        "CREATE TABLE staged AS SELECT m.src, m.email, m.pos, l.dups"
        + "".join(f", m.{c}" for c in columns)
        + " FROM mapped m JOIN (SELECT src, email, max(seq) AS seq, count(*) - 1 AS dups"
        " FROM mapped GROUP BY src, email) l"
        " ON m.src = l.src AND m.email = l.email AND m.seq = l.seq"
    ).fetchall()
    connection.execute("DROP TABLE mapped").fetchall()
    # The sources' rows full-joined by email (a validated spec has one source at least), and
    # per column the value of the last source that has one: a projection, not an aggregate per
    # column (thousands of audiences stay cheap).
    sources = range(len(layout.slots))
    joins = " FULL JOIN ".join(
        f"(SELECT * FROM staged WHERE src = {i}) s{i}" + (" USING (email)" if i else "")
        for i in sources
    )
    merged: dict[str, str] = {}
    for n, column in enumerate(columns):
        owners = [i for i in reversed(sources) if n in layout.slots[i]]
        picked = ", ".join(f"s{i}.{column}" for i in owners)
        merged[column] = f"coalesce({picked})" if owners else "NULL"
    # A person one source's consent withholds is withheld everywhere: no value from any
    # source, and every audience it is in exits.
    withheld = layout.withheld_column
    if withheld is not None:
        held = merged[withheld]
        for name in layout.properties:
            column = layout.property_column(name)
            merged[column] = f"CASE WHEN {held} IS NULL THEN {merged[column]} END"
        for name in layout.audiences:
            column = layout.audience_column(name)
            status = merged[column]
            merged[column] = (
                f"CASE WHEN {held} IS NULL THEN {status} WHEN {status} IS NOT NULL"
                " THEN 'exited' END"
            )
    values = "".join(f", {expr} AS {column}" for column, expr in merged.items())
    present = ", ".join(f"s{i}.src" for i in sources)
    positions = ", ".join(f"s{i}.pos" for i in sources)
    connection.execute(
        f"CREATE TABLE desired AS SELECT email,"
        f" list_filter([{present}], lambda x: x IS NOT NULL) AS srcs,"
        f" list_filter([{positions}], lambda x: x IS NOT NULL) AS poss{values}"
        f" FROM {joins}"
    ).fetchall()


def _internal(source: str, file: str, line: int, raw: str, error: Exception) -> Rejection:
    """A record that broke syncdsl itself: rejected, with the exception visible, to report."""
    detail = str(error).encode("utf-8", "backslashreplace").decode("utf-8")[:200]
    reason = f"internal error on this record ({type(error).__name__}: {detail}); please report it"
    return Rejection(source, file, line, reason, raw)


def _merge_warnings(
    connection: duckdb.DuckDBPyConnection,
    index: int,
    source: ir.Source,
    counts: SourceCounts,
    files: list[str],
) -> list[str]:
    if not counts.merged:
        return []
    examples = connection.execute(
        "SELECT email, count(*) - 1 AS dups, arg_max(pos, seq) FROM mapped WHERE src = ? "
        "GROUP BY email HAVING count(*) > 1 ORDER BY email LIMIT ?",
        [index, _MERGE_EXAMPLES],
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
    connection: duckdb.DuckDBPyConnection,
    sources: tuple[ir.Source, ...],
    layout: Layout,
    files: list[list[str]],
) -> list[str]:
    """Conflicting values across sources: the first few in full, then a total."""
    shared = [
        column
        for n, column in enumerate(layout.columns[: len(layout.properties)])
        if sum(n in slots for slots in layout.slots) > 1
    ]
    if not shared:
        return []
    disagree = " OR ".join(f"count(DISTINCT {c}) > 1" for c in shared)
    cursor = connection.cursor()
    cursor.execute(
        "SELECT email, src, pos, " + ", ".join(layout.columns) + " FROM staged WHERE email IN "
        f"(SELECT email FROM staged GROUP BY email HAVING {disagree}) ORDER BY email, src"
    )
    merger = _Merger(sources, layout, files)
    total = 0
    warnings: list[str] = []

    def rows() -> Iterator[tuple[object, ...]]:
        while batch := cursor.fetchmany(_FETCH):
            yield from batch

    for _, group in itertools.groupby(rows(), key=_first):
        merger.merge(list(group))
        total += len(merger.conflicts)
        room = _MAX_CONFLICT_WARNINGS - len(warnings)
        warnings.extend(str(conflict) for conflict in merger.conflicts[: max(room, 0)])
        merger.conflicts.clear()
    cursor.close()
    if total > _MAX_CONFLICT_WARNINGS:
        hidden = total - _MAX_CONFLICT_WARNINGS
        warnings.append(f"conflict: ... and {hidden} more conflicting values ({total} in all)")
    return warnings
