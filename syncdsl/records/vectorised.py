"""The vectorised read of a jsonl source: its lines go to DuckDB in chunks of megabytes, where
the field paths become JSON-path expressions and the checks of `ProfileMapper` become column
expressions with the same rules; Python maps only the lines SQL cannot vouch for.

A line is mapped in SQL only when the result is certainly what `ProfileMapper.map_row` makes of
it: strict JSON (DuckDB's parser accepts NaN, trailing commas and duplicate keys, Python's does
not, so such lines go to Python), text values (a number or a list goes to Python, which coerces
or refuses it), an email that matches the plain ASCII happy path of `normalize_email`, statuses
spelt exactly. Every other line, and every line of a chunk that is not valid UTF-8, takes the
Python path with its exact reasons. `vectorisable` says which sources qualify at all: typed
properties, general Jinja templates and `identityMap` identities keep the whole source in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from syncdsl.hubspot.schema import MAX_STRING_LENGTH
from syncdsl.lang import ir
from syncdsl.records.datafiles import DataError, open_data, source_files
from syncdsl.records.identity import MAX_EMAIL_LENGTH, MAX_LOCAL_LENGTH, TYPO_TLDS
from syncdsl.records.mapping import ProfileMapper, RecordRejected, fast_template_shape
from syncdsl.records.sources import ReadReport
from syncdsl.scrub import refused_secrets

#: Bytes of plain data per chunk handed to DuckDB (a few thousand profiles).
CHUNK_BYTES = 16 << 20
_BOM = b"\xef\xbb\xbf"
_SCAN_BATCH = 2048
#: Mappings and segments of a source mapped in SQL at most.
_MAX_COLUMNS = 64
#: What `str.isspace` calls whitespace: a value of nothing else is not sent.
_PY_SPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}"
)
_PY_SPACE_CODES = tuple(c for c in range(0x3001) if chr(c).isspace())
_ASCII_SPACE = r"[\t\n\x0b\x0c\r ]*"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]"
#: `normalize_email`'s happy path before lowercasing, with the ASCII whitespace strip removes.
_EMAIL = (
    f"{_ASCII_SPACE}{_ATEXT}+(?:\\.{_ATEXT}+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    f"{_ASCII_SPACE}"
)
#: JSON DuckDB accepts and Python refuses: trailing commas, lone surrogates (inside strings a
#: match only costs speed). DuckDB also reads `nan` and `inf` in any letter case where Python
#: reads only `NaN` and `Infinity`: such a token in a field no mapping reads is read as DuckDB
#: reads it (in a mapped field it is a number, which Python maps).
_TRAILING_COMMA = r",\s*[}\]]"
_SURROGATE = r"\\u[dD][89a-fA-F]"
#: A line this long may nest deeper than Python's parser allows: Python decides.
_DEEP_LINE = 4000
_MEMBER = ("realized", "existing", "exited")
_KEY = re.compile(r'[^"\\\x00-\x1f]+')


@dataclass(frozen=True)
class _Value:
    """How one mapping is computed: a JSON path read as text, a constant, or a simple template
    (`{{ a.b | title }}`) rendered by Python once per distinct input."""

    kind: str  # "path" | "constant" | "template"
    path: str = ""  # the JSON path (path, template)
    parts: tuple[str | int, ...] = ()  # the field path (path, template)
    constant: str | None = None


@dataclass(frozen=True)
class ColumnPlan:
    """A source's mapping as SQL over a `j VARCHAR` column of JSON lines."""

    email_path: str
    email_parts: tuple[str | int, ...]
    values: tuple[_Value, ...]
    segments: tuple[str, ...]  # segment ids, in the mapper's status order
    objects: tuple[str, ...]  # every object along a path read: checked for duplicate keys


def _json_path(parts: Sequence[str | int]) -> str | None:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isdigit() or not _KEY.fullmatch(part):
            return None  # `a.0` indexes a list in Python; quotes and escapes: let Python read
        else:
            path += f'."{part}"'
    return path


def _prefixes(parts: Sequence[str | int]) -> list[str]:
    return [p for n in range(len(parts)) if (p := _json_path(parts[:n])) is not None]


def plan_columns(source: ir.Source, mapper: ProfileMapper) -> ColumnPlan | None:
    """The SQL plan of a jsonl source, or None when the source must be mapped in Python."""
    if source.format != "jsonl":
        return None
    identity = source.identity.parts
    email_path = _json_path(identity)
    if email_path is None or identity[0] == "identityMap":
        return None
    objects = {*_prefixes(identity)}
    values: list[_Value] = []
    for index, mapping in enumerate(source.mappings):
        value = _plan_value(index, mapping, mapper)
        if value is None:
            return None
        values.append(value)
        objects.update(_prefixes(value.parts))
    segments = mapper.segment_ids
    if len(segments) + len(source.mappings) > _MAX_COLUMNS:
        return None  # one SQL expression per column: beyond this, compiling costs more
    if any(segment is None or not _KEY.fullmatch(segment) for segment in segments):
        return None
    if segments:
        objects.update({"$", '$."segmentMembership"', '$."segmentMembership"."ups"'})
        objects.update(f'$."segmentMembership"."ups"."{s}"' for s in segments)
    ids = tuple(str(segment) for segment in segments)
    return ColumnPlan(email_path, identity, tuple(values), ids, tuple(sorted(objects)))


def _plan_value(index: int, mapping: ir.PropertyMapping, mapper: ProfileMapper) -> _Value | None:
    if mapper.coerces(index):
        return None  # typed properties: `coerce` decides per value
    expr = mapping.expr
    if isinstance(expr, ir.FieldPath):
        path = _json_path(expr.parts)
        if path is None or expr.parts[0] == "identityMap":
            return None
        return _Value("path", path=path, parts=expr.parts)
    if isinstance(expr, ir.Template):
        shape = fast_template_shape(expr.source)
        path = _json_path(shape) if shape is not None else None
        if shape is None or path is None:
            return None
        return _Value("template", path=path, parts=shape)
    try:
        constant = mapper.map_value(index, {})
    except RecordRejected:
        return None  # every record is rejected: Python says why, once per record
    return _Value("constant", constant=constant)


@dataclass(frozen=True)
class LineChunk:
    """Whole lines of one file: `data` holds lines `first`.. of `file` (its index in the source)."""

    file: int
    display: str
    first: int
    data: bytes
    offsets: Any  # numpy int64: where each line starts, and the end of the last


@dataclass(frozen=True)
class BrokenData:
    """The compressed data of a file broke off after line `line - 1`."""

    display: str
    line: int
    reason: str


def line_chunks(source: ir.Source, report: ReadReport) -> Iterator[LineChunk | BrokenData]:
    """Every file of `source`, in order, as chunks of whole lines."""
    files = source_files(source)
    report.files = len(files)
    for index, file in enumerate(files):
        handle, codec = open_data(file, source.format)
        if codec is not None:
            report.compression.add(codec)
        with handle:
            yield from _file_chunks(index, file.display, handle)


def _file_chunks(index: int, display: str, handle: Any) -> Iterator[LineChunk | BrokenData]:
    from syncdsl.errors import SourceError

    rest = b""
    first = 1
    start = True
    while True:
        try:
            data = _read_block(handle)
        except DataError as error:
            # As the line reader: the lines before the break count, the cut-off one is lost.
            lines = rest.count(b"\n") if rest else 0
            if lines:
                cut = rest.rfind(b"\n") + 1
                yield _chunk(index, display, first, rest[:cut])
            yield BrokenData(display, first + lines, str(error))
            return
        except OSError as error:
            raise SourceError(f"{display}: reading it failed: {error}") from None
        if start and data.startswith(_BOM):
            data = b"   " + data[3:]  # JSON whitespace: offsets and columns stay put
        start = False
        if not data:
            if rest:
                yield _chunk(index, display, first, rest + b"\n")
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        chunk = _chunk(index, display, first, data[:cut])
        first += len(chunk.offsets) - 1
        yield chunk


def _read_block(handle: Any) -> bytes:
    """About CHUNK_BYTES of the stream; raw reads one at a time so a DataError loses nothing
    read before it."""
    parts: list[bytes] = []
    size = 0
    while size < CHUNK_BYTES:
        part = (
            handle.read1(CHUNK_BYTES - size)
            if hasattr(handle, "read1")
            else handle.read(CHUNK_BYTES - size)
        )
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _chunk(index: int, display: str, first: int, data: bytes) -> LineChunk:
    """`data` ends with a newline: every line in it, newline excluded."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    offsets = np.empty(len(ends) + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    return LineChunk(index, display, first, data, offsets)


def chunk_table(chunk: LineChunk) -> pa.Table | None:
    """The chunk as (ln, j) rows for DuckDB, or None when it is not valid UTF-8 (Python reads
    every line of it then)."""
    try:
        chunk.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    count = len(chunk.offsets) - 1
    # Each line's text with its newline (JSON whitespace): the offsets are the line starts.
    lines = pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(chunk.offsets), pa.py_buffer(chunk.data)
    )
    numbers = pa.array(np.arange(chunk.first, chunk.first + count, dtype=np.int64))
    # Batches of a few thousand rows: DuckDB scans batches in parallel.
    table = pa.table({"ln": numbers, "j": lines})
    return pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_BATCH))


def line_bytes(chunk: LineChunk, line: int) -> bytes:
    """One line of the chunk with its newline, as the line reader yields it."""
    position = line - chunk.first
    return chunk.data[int(chunk.offsets[position]) : int(chunk.offsets[position + 1])]


def _structure(paths: Sequence[tuple[str | int, ...]]) -> dict[str, object]:
    """`from_json_strict`'s structure for these paths: nested objects, JSON at the leaves."""
    root: dict[str, object] = {}
    for parts in paths:
        names = [part for part in parts if isinstance(part, str)]
        if len(names) != len(parts):
            continue  # a list index: the key-by-key check covers it
        node = root
        for name in names[:-1]:
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        node.setdefault(names[-1], "JSON")
    return root


def _indexed(paths: Sequence[tuple[str | int, ...]]) -> bool:
    return any(isinstance(part, int) for parts in paths for part in parts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _struct_access(parts: tuple[str | int, ...]) -> str:
    expr = "st"
    for part in parts:
        expr = f"struct_extract({expr}, {_literal(str(part))})"
    return expr


def _not_blank(value: str) -> str:
    """The value as sent: NULL when empty or only whitespace (`str.isspace`). The first
    character after ASCII whitespace decides cheaply; a Unicode space there takes a regex."""
    rest = f"ltrim({value}, chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))"
    spaces = ", ".join(str(c) for c in _PY_SPACE_CODES)
    return (
        f"CASE WHEN {rest} = '' THEN NULL WHEN unicode({rest}) NOT IN ({spaces}) THEN {value}"
        f" WHEN regexp_matches({value}, {_literal('[^' + _PY_SPACE + ']')}) THEN {value} END"
    )


def _absent(kind: str) -> str:
    """The JSON value at a path is missing or null (Python's `.get` gives None)."""
    return f"({kind} IS NULL OR {kind} = 'NULL')"


class ChunkMapper:
    """Maps the chunks of one source in SQL, into rows of the staging table `mapped`
    (src, email, pos, one column per property, one per audience)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        plan: ColumnPlan,
        mapper: ProfileMapper,
        src: int,
        slots: tuple[int, ...],
        width: int,
    ) -> None:
        self._db = connection
        self._plan = plan
        self._mapper = mapper
        self._src = src
        self._slots = slots  # where each value (then each status) goes among the `width` columns
        self._width = width
        #: per template mapping: (json type, text) -> (value, rejected), computed by Python
        self._rendered: dict[int, dict[tuple[str | None, str | None], tuple[str | None, bool]]] = {
            i: {} for i, value in enumerate(plan.values) if value.kind == "template"
        }
        self._query = self._query_text()
        for index in self._rendered:
            connection.execute(
                f"CREATE OR REPLACE TEMP TABLE tpl{index} "
                "(t VARCHAR, s VARCHAR, value VARCHAR, refused BOOLEAN)"
            ).fetchall()

    def _strict_paths(self) -> list[tuple[str | int, ...]]:
        """The paths a clean line usually has all of: `from_json_strict` parses them in one
        pass and refuses a duplicate key on them (a line without one is read path by path)."""
        plan = self._plan
        paths = [plan.email_parts]
        paths += [value.parts for value in plan.values if value.kind != "constant"]
        paths += [("segmentMembership", "ups", segment, "status") for segment in plan.segments]
        return paths

    def _query_text(self) -> str:
        plan = self._plan
        strict_paths = self._strict_paths()
        # `from_json_strict` vouches only for the objects it walks: not with list indexes.
        strict = not _indexed(strict_paths)
        leaves = {parts for parts in strict_paths} if strict else set()
        nodes = {parts[:n] for parts in leaves for n in range(1, len(parts))}

        def kind(parts: tuple[str | int, ...]) -> str:
            path = _literal(_json_path(parts) or "$")
            if parts in leaves:
                leaf = _struct_access(parts)
                return (
                    f"(CASE WHEN st IS NOT NULL THEN coalesce(json_type({leaf}), 'NULL')"
                    f" ELSE json_type(j, {path}) END)"
                )
            if parts in nodes:
                return f"(CASE WHEN st IS NOT NULL THEN 'OBJECT' ELSE json_type(j, {path}) END)"
            return f"json_type(j, {path})"

        def text(parts: tuple[str | int, ...]) -> str:
            path = _literal(_json_path(parts) or "$")
            if parts in leaves:
                return (
                    f"(CASE WHEN st IS NOT NULL THEN {_struct_access(parts)}->>'$'"
                    f" ELSE json_extract_string(j, {path}) END)"
                )
            return f"json_extract_string(j, {path})"

        objects = ", ".join(_literal(p) for p in plan.objects)
        structure = _literal(json.dumps(_structure(strict_paths)))
        parse = f"try(from_json_strict(j, {structure}))" if strict else "NULL"
        keys_ok = (
            "list_bool_and(list_transform(json_keys(j, ["
            + objects
            + "]), lambda keys: keys IS NULL OR len(keys) = len(list_distinct(keys))))"
        )
        clean = (
            f"(CASE WHEN st IS NOT NULL THEN true WHEN json_type(j) = 'OBJECT' THEN {keys_ok}"
            " ELSE false END)"
        )
        e = plan.email_parts
        strip = "^" + _ASCII_SPACE[:-1] + "+|" + _ASCII_SPACE[:-1] + "+$"
        email = f"lower(regexp_replace({text(e)}, {_literal(strip)}, '', 'g'))"
        oks = [
            clean,
            f"{kind(e)} = 'VARCHAR'",
            f"regexp_full_match({text(e)}, {_literal(_EMAIL)})",
            f"length({email}) <= {MAX_EMAIL_LENGTH}",
            f"strpos({email}, '@') <= {MAX_LOCAL_LENGTH + 1}",
            f"NOT list_contains([{', '.join(_literal(t) for t in sorted(TYPO_TLDS))}], "
            f"regexp_extract({email}, '[.]([a-z]+)$', 1))",
        ]
        columns: list[str] = []
        for value in plan.values:
            if value.kind == "constant":
                columns.append("NULL" if value.constant is None else _literal(value.constant))
                continue
            t, v = kind(value.parts), text(value.parts)
            oks.append(f"({t} IS NULL OR {t} IN ('VARCHAR', 'NULL'))")
            if value.kind == "template":
                columns.append(f"struct_pack(t := {t}, s := {v})")
                continue
            oks.append(f"length(coalesce({v}, '')) <= {MAX_STRING_LENGTH}")
            oks.append(f"strpos(coalesce({v}, ''), chr(0)) = 0")
            oks.extend(
                f"strpos(coalesce({v}, ''), {_literal(secret)}) = 0" for secret in refused_secrets()
            )
            columns.append(_not_blank(v))
        if plan.segments:
            columns += self._statuses(kind, text, oks)
        ok = " AND ".join(f"({condition})" for condition in oks)
        # The values are computed on the rows SQL maps only (CASE keeps json_extract_string
        # off lines that are not valid JSON).
        selected = "".join(
            f", CASE WHEN ok THEN {expr} END AS c{n}" for n, expr in enumerate(columns)
        )
        return (
            "CREATE OR REPLACE TEMP TABLE r AS SELECT ln, "
            f"CASE WHEN ok THEN {email} END AS email, ok{selected} FROM ("
            f"SELECT ln, j, st, coalesce(CASE WHEN valid THEN {ok} END, false) AS ok FROM ("
            f"SELECT ln, j, valid, CASE WHEN valid THEN {parse} END AS st FROM ("
            "SELECT ln, j, json_valid(j) AND length(j) < "
            f"{_DEEP_LINE} AND NOT regexp_matches(j, {_literal(_TRAILING_COMMA)})"
            f" AND NOT (contains(j, '\\u') AND regexp_matches(j, {_literal(_SURROGATE)}))"
            " AS valid FROM chunk WHERE NOT regexp_full_match(j, '[ \\t\\r\\n]*'))))"
        )

    def _statuses(self, kind: Any, text: Any, oks: list[str]) -> list[str]:
        """Each segment's status as `ProfileMapper._statuses` reads it; `oks` gains the
        conditions under which SQL is sure to read it the same way."""
        sm, xsm = kind(("segmentMembership",)), kind(("xdm:segmentMembership",))
        ups, xups = kind(("segmentMembership", "ups")), kind(("segmentMembership", "xdm:ups"))
        readable = f"({sm} = 'OBJECT' AND {ups} = 'OBJECT')"
        nothing = (
            f"(CASE WHEN {_absent(sm)} THEN {_absent(xsm)} WHEN {sm} = 'OBJECT' AND "
            f"{_absent(ups)} THEN {_absent(xups)} ELSE false END)"
        )
        members = ", ".join(_literal(m) for m in _MEMBER)
        entry_oks: list[str] = []
        columns: list[str] = []
        for segment in self._plan.segments:
            entry = ("segmentMembership", "ups", segment)
            en, st = kind(entry), kind((*entry, "status"))
            xs, status = kind((*entry, "xdm:status")), text((*entry, "status"))
            entry_oks.append(
                f"(CASE WHEN {_absent(en)} THEN true WHEN {en} <> 'OBJECT' THEN false"
                f" WHEN {st} = 'VARCHAR' THEN {status} IN ({members})"
                f" WHEN {_absent(st)} THEN {_absent(xs)} ELSE false END)"
            )
            columns.append(
                f"CASE WHEN NOT {readable} OR {_absent(en)} THEN NULL "
                f"WHEN {st} = 'VARCHAR' THEN {status} ELSE 'realized' END"
            )
        oks.append(f"(CASE WHEN {readable} THEN {' AND '.join(entry_oks)} ELSE {nothing} END)")
        return columns

    def map_chunk(self, chunk: LineChunk, others: list[int]) -> int:
        """Stage the lines SQL maps and return how many; add the numbers of the other
        non-blank lines to `others`, ascending, for Python to map."""
        table = chunk_table(chunk)
        if table is None:
            others.extend(range(chunk.first, chunk.first + len(chunk.offsets) - 1))
            return 0
        db = self._db
        db.register("chunk", table)
        try:
            db.execute(self._query).fetchall()
        finally:
            db.unregister("chunk")
        self._render_templates()
        values = [f"c{n}" for n in range(len(self._plan.values) + len(self._plan.segments))]
        joins = ""
        for index in self._rendered:
            values[index] = f"tpl{index}.value"
            joins += (
                f" LEFT JOIN tpl{index} ON tpl{index}.t IS NOT DISTINCT FROM r.c{index}.t"
                f" AND tpl{index}.s IS NOT DISTINCT FROM r.c{index}.s"
            )
        full = ["NULL"] * self._width
        for slot, expr in zip(self._slots, values):
            full[slot] = expr
        refused = " OR ".join(f"coalesce(tpl{i}.refused, false)" for i in self._rendered)
        refused = refused or "false"
        pos = f"({chunk.file} << 32) + ln"
        inserted = db.execute(
            f"INSERT INTO mapped SELECT {self._src}, email, {pos}, {pos}, {', '.join(full)} "
            f"FROM r{joins} WHERE ok AND NOT ({refused})"
        ).fetchall()[0]
        rest = db.execute(f"SELECT ln FROM r{joins} WHERE NOT ok OR ({refused}) ORDER BY ln")
        others.extend(row[0] for row in rest.fetchall())
        return int(inserted[0]) if inserted else 0

    def _render_templates(self) -> None:
        """Render each template once per distinct input (Python, exactly as `ProfileMapper`),
        into `tplN(t, s, value, refused)` for the join."""
        for index, cache in self._rendered.items():
            parts = self._plan.values[index].parts
            pairs = self._db.execute(
                f"SELECT DISTINCT c{index}.t, c{index}.s FROM r WHERE ok"
            ).fetchall()
            new = [pair for pair in pairs if pair not in cache]
            if not new:
                continue
            for kind, text in new:
                cache[(kind, text)] = self._render(index, parts, kind, text)
            rendered = pa.table(
                {
                    "t": [kind for kind, _ in new],
                    "s": [text for _, text in new],
                    "value": [cache[pair][0] for pair in new],
                    "refused": [cache[pair][1] for pair in new],
                }
            )
            self._db.register("rendered", rendered)
            try:
                self._db.execute(f"INSERT INTO tpl{index} SELECT * FROM rendered").fetchall()
            finally:
                self._db.unregister("rendered")

    def _render(
        self, index: int, parts: tuple[str | int, ...], kind: str | None, text: str | None
    ) -> tuple[str | None, bool]:
        record: dict[str, object] = {}
        if kind is not None:
            inner = record
            for part in parts[:-1]:
                inner = inner.setdefault(str(part), {})  # type: ignore[assignment]
            inner[str(parts[-1])] = text if kind == "VARCHAR" else None
        try:
            return self._mapper.map_value(index, record), False
        except RecordRejected:
            return None, True
