"""The vectorised read of a jsonl or csv source. A jsonl source's lines stream into one DuckDB
query (read in blocks of megabytes while DuckDB maps the previous ones), where the field paths
become JSON-path expressions and the checks of `ProfileMapper` become column expressions with
the same rules; Python maps only the lines SQL cannot vouch for. A csv source's rows, as
Python's csv reader splits them, go through the same checks a batch at a time (`map_rows`).

A line is mapped in SQL only when the result is certainly what `ProfileMapper.map_row` makes of
it: strict JSON (DuckDB's parser accepts NaN, trailing commas and duplicate keys, Python's does
not, so such lines go to Python), text values (a number or a list goes to Python, which coerces
or refuses it), an email that matches the plain ASCII happy path of `normalize_email`, statuses
spelt exactly. Every other line, a line that is not valid UTF-8 among them, takes the Python
path with its exact reasons. `plan_columns` says which sources qualify at all: typed
properties and general Jinja templates keep the whole source in Python. An `identityMap.<ns>`
identity is read in SQL when the namespace holds one entry under the key spelt as in the spec (a
profile with several emails, or the key in another letter case, goes to Python, which picks the
primary one and counts the others).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from duckdb import sqltypes
from duckdb.func import FunctionNullHandling, PythonUDFType

from syncdsl.hubspot.schema import MAX_STRING_LENGTH
from syncdsl.lang import ir
from syncdsl.lang.ir import CONSENT_NO, consent_shown
from syncdsl.records.datafiles import DataError, open_data, source_files
from syncdsl.records.identity import MAX_EMAIL_LENGTH, MAX_LOCAL_LENGTH, TYPO_TLDS
from syncdsl.records.mapping import ProfileMapper, RecordRejected, fast_template_shape
from syncdsl.records.sources import ReadReport
from syncdsl.scrub import refused_secrets

#: Bytes of plain data per chunk handed to DuckDB (a few thousand profiles).
CHUNK_BYTES = 16 << 20
_BOM = b"\xef\xbb\xbf"
_SCAN_BATCH = 2048
#: Distinct inputs a template's renderings are kept for.
_RENDER_CACHE = 100_000
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
_ASCII_WHITESPACE = "chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
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
    """A source's mapping as SQL: over a column of JSON lines (jsonl), or over the columns
    Python's csv reader split a csv source's rows into (`columns` says which, in order)."""

    email_path: str
    email_parts: tuple[str | int, ...]
    values: tuple[_Value, ...]
    segments: tuple[str, ...]  # segment ids, in the mapper's status order
    objects: tuple[str, ...]  # every object along a path read: checked for duplicate keys
    columns: tuple[str, ...] = ()  # csv: the header columns read, as v0, v1, ...
    uploads: int = 0  # csv: the audiences every row is a `realized` member of
    consent: ir.Consent | None = None  # who may be exported
    consent_parts: tuple[tuple[str | int, ...], ...] = ()  # where each consent field is read
    namespace: str = ""  # `identityMap.<namespace>`: the email is its one entry's id


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
    """The SQL plan of a jsonl, parquet (its rows as JSON objects) or csv source, or None when
    the source must be mapped in Python."""
    if source.format == "csv":
        return _csv_plan(source, mapper)
    if source.format not in ("jsonl", "parquet"):
        return None
    identity = source.identity.parts
    namespace = ""
    if identity[0] == "identityMap":
        if len(identity) != 2 or not isinstance(identity[1], str) or not identity[1].isascii():
            return None  # `identityMap.Email[1].id` and the like: Python's lookup
        namespace = identity[1]
        identity = ("identityMap", namespace, 0, "id")
    email_path = _json_path(identity)
    if email_path is None:
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
    consent = source.consent
    fields = tuple(field_path.parts for field_path in consent.fields) if consent else ()
    if any(_json_path(parts) is None for parts in fields):
        return None
    return ColumnPlan(
        email_path,
        identity,
        tuple(values),
        ids,
        tuple(sorted(objects)),
        consent=consent,
        consent_parts=fields,
        namespace=namespace,
    )


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
    return _constant(index, mapper)


def _constant(index: int, mapper: ProfileMapper) -> _Value | None:
    """A literal mapping, as the value Python sends for it."""
    try:
        constant = mapper.map_value(index, {})
    except RecordRejected:
        return None  # every record is rejected: Python says why, once per record
    return _Value("constant", constant=constant)


def _csv_plan(source: ir.Source, mapper: ProfileMapper) -> ColumnPlan | None:
    """A csv source's plan: a field path names one column (`a.b` is the column "a.b"), each
    path is a 1-tuple of that name; every row is a member of each of its audiences."""

    def column(parts: Sequence[str | int]) -> str:
        return ".".join(str(part) for part in parts)

    values: list[_Value] = []
    for index, mapping in enumerate(source.mappings):
        expr = mapping.expr
        if mapper.coerces(index):
            return None
        if isinstance(expr, ir.FieldPath):
            values.append(_Value("path", parts=(column(expr.parts),)))
        elif isinstance(expr, ir.Template):
            shape = fast_template_shape(expr.source)
            if shape is None or len(shape) != 1:
                return None  # csv reads `{{ a.b }}` through Jinja: Python renders it
            values.append(_Value("template", parts=(shape[0],)))
        elif (constant := _constant(index, mapper)) is not None:
            values.append(constant)
        else:
            return None
    if len(values) > _MAX_COLUMNS:
        return None
    email = column(source.identity.parts)
    consent = source.consent
    fields = tuple((column(f.parts),) for f in consent.fields) if consent else ()
    read = [email, *(str(value.parts[0]) for value in values if value.kind != "constant")]
    read += [str(parts[0]) for parts in fields]
    uploads = len(mapper.audience_properties)
    return ColumnPlan(
        "",
        (email,),
        tuple(values),
        (),
        (),
        tuple(dict.fromkeys(read)),
        uploads,
        consent,
        fields,
    )


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


@dataclass(frozen=True)
class Leftover:
    """A line SQL leaves to Python: its position (file index << FILE_SHIFT | line), its bytes."""

    position: int
    raw: bytes

    @property
    def file(self) -> int:
        return self.position >> FILE_SHIFT

    @property
    def line(self) -> int:
        return self.position & LINE_MASK


def line_chunks(source: ir.Source, report: ReadReport) -> Iterator[LineChunk | BrokenData]:
    """Every file of `source`, in order, as chunks of whole lines."""
    files = source_files(source)
    report.files = len(files)
    for index, file in enumerate(files):
        if source.format == "parquet":
            from syncdsl.records.parquet import parquet_chunks

            yield from parquet_chunks(index, file)
            continue
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
            data, broken = _read_block(handle)
        except OSError as error:
            raise SourceError(f"{display}: reading it failed: {error}") from None
        if start and data.startswith(_BOM):
            data = b"   " + data[3:]  # JSON whitespace: offsets and columns stay put
        start = False
        if broken is not None:
            # As the line reader: the lines before the break count, the cut-off one is lost.
            data = rest + data
            lines = data.count(b"\n")
            if lines:
                yield _chunk(index, display, first, data[: data.rfind(b"\n") + 1])
            yield BrokenData(display, first + lines, str(broken))
            return
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


def _read_block(handle: Any) -> tuple[bytes, DataError | None]:
    """About CHUNK_BYTES of the stream, and the DataError that ended it early (compressed data
    that breaks off): raw reads one at a time, so the error loses nothing read before it."""
    parts: list[bytes] = []
    size = 0
    try:
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
    except DataError as error:
        return b"".join(parts), error
    return b"".join(parts), None


def _chunk(index: int, display: str, first: int, data: bytes) -> LineChunk:
    """`data` ends with a newline: every line in it, newline excluded."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    offsets = np.empty(len(ends) + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    return LineChunk(index, display, first, data, offsets)


#: Where a line is: its file's index above these bits, its line number below.
FILE_SHIFT = 32
LINE_MASK = (1 << FILE_SHIFT) - 1
_RENDERED = duckdb.struct_type({"value": sqltypes.VARCHAR, "refused": sqltypes.BOOLEAN})
BATCH_SCHEMA = pa.schema([("ln", pa.int64()), ("b", pa.large_binary())])


def chunk_batches(chunk: LineChunk) -> list[pa.RecordBatch]:
    """The chunk as (ln, b) rows for DuckDB: each line's position and its bytes, newline
    included (JSON whitespace); SQL decodes them, a line that is not UTF-8 goes to Python."""
    count = len(chunk.offsets) - 1
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(chunk.offsets), pa.py_buffer(chunk.data)]
    )
    first = (chunk.file << FILE_SHIFT) + chunk.first
    numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
    # Batches of a few thousand rows: DuckDB maps batches in parallel.
    table = pa.table([numbers, lines], schema=BATCH_SCHEMA)
    batches: list[pa.RecordBatch] = table.to_batches(max_chunksize=_SCAN_BATCH)
    return batches


def line_batches(data: bytes) -> list[pa.RecordBatch]:
    """Newline-separated `data` as (ln, b) rows, as `chunk_batches` gives a file's chunk."""
    return chunk_batches(_chunk(0, "", 1, data + b"\n"))


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


def _unique_keys(objects: Sequence[str], document: str = "j") -> str:
    """SQL: no object at these JSON paths of `document` (the line) holds a key twice (Python
    keeps the last, DuckDB's path functions the first)."""
    keys = ", ".join(_literal(p) for p in objects)
    return (
        f"list_bool_and(list_transform(json_keys({document}, [{keys}]), lambda keys: keys IS NULL"
        " OR len(keys) = len(list_distinct(keys))))"
    )


def _indexed(paths: Sequence[tuple[str | int, ...]]) -> bool:
    return any(isinstance(part, int) for parts in paths for part in parts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _struct_access(parts: tuple[str | int, ...]) -> str:
    expr = "st"
    for part in parts:
        expr = f"struct_extract({expr}, {_literal(str(part))})"
    return expr


def _not_blank(value: str, trimmed: str) -> str:
    """The value as sent: NULL when empty or only whitespace (`str.isspace`). `trimmed` is the
    value without leading ASCII whitespace: its first character decides cheaply; a Unicode
    space there takes a regex."""
    spaces = ", ".join(str(c) for c in _PY_SPACE_CODES)
    return (
        f"CASE WHEN {trimmed} = '' THEN NULL WHEN unicode({trimmed}) NOT IN ({spaces})"
        f" THEN {value} WHEN regexp_matches({value}, {_literal('[^' + _PY_SPACE + ']')})"
        f" THEN {value} END"
    )


def _leaf_type(leaf: str) -> str:
    """The JSON type of a leaf `from_json` read as JSON text, by its first character (only
    'VARCHAR', 'NULL', 'OBJECT' and 'ARRAY' are told apart from the rest)."""
    return (
        f"CASE WHEN {leaf} IS NULL THEN 'NULL' WHEN starts_with({leaf}, '\"') THEN 'VARCHAR'"
        f" WHEN starts_with({leaf}, '{{') THEN 'OBJECT' WHEN starts_with({leaf}, '[') THEN 'ARRAY'"
        " ELSE 'OTHER' END"
    )


def _leaf_text(leaf: str) -> str:
    """A string leaf's value: its text between the quotes, unescaped only when it has a
    backslash (NULL for a leaf that is not a string)."""
    return (
        f"CASE WHEN NOT starts_with({leaf}, '\"') THEN NULL"
        f" WHEN contains({leaf}, '\\') THEN {leaf}->>'$' ELSE {leaf}[2:-2] END"
    )


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A UDF's argument as one array (DuckDB may hand it over in chunks)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _absent(kind: str) -> str:
    """The JSON value at a path is missing or null (Python's `.get` gives None)."""
    return f"({kind} IS NULL OR {kind} = 'NULL')"


class ChunkMapper:
    """Maps the lines of one source in SQL, into rows of the staging table `mapped`
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
        #: per template mapping: (json type, text) -> (value, refused), rendered by Python
        self._rendered: dict[int, dict[tuple[str | None, str | None], tuple[str | None, bool]]] = {
            i: {} for i, value in enumerate(plan.values) if value.kind == "template"
        }
        for index in self._rendered:
            connection.create_function(
                self._function(index),
                self._renderer(index),
                [sqltypes.VARCHAR, sqltypes.VARCHAR],
                _RENDERED,
                type=PythonUDFType.ARROW,
                null_handling=FunctionNullHandling.SPECIAL,
            )
        self._query = self._query_text()
        self.consent_held = 0  # rows SQL mapped with a value in a consent field

    def _function(self, index: int) -> str:
        """The SQL function rendering the template of mapping `index`."""
        return f"syncdsl_template_{self._src}_{index}"

    def _strict_paths(self) -> list[tuple[str | int, ...]]:
        """The paths a clean line usually has all of: `from_json_strict` refuses a duplicate
        key on them in one pass (a line it fails on is checked key by key)."""
        plan = self._plan
        paths = [value.parts for value in plan.values if value.kind != "constant"]
        paths += [("segmentMembership", "ups", segment, "status") for segment in plan.segments]
        email = plan.email_parts
        if plan.namespace:  # the namespace's list parsed as JSON, its entry read from that
            email = email[:2]
        return [email, *paths]

    def _query_text(self) -> str:
        """One query over the stream, in layers that each compute their columns once (DuckDB
        evaluates a call again at every use inside a CASE): the line checks, one strict parse
        (a line it refuses: one parse for the types and one for the texts at every path read),
        the values, their checks, the templates."""
        plan = self._plan
        kinds: dict[tuple[str | int, ...], str] = {}
        texts: dict[tuple[str | int, ...], str] = {}

        def kind(parts: tuple[str | int, ...]) -> str:
            """The column holding the JSON type at `parts` (NULL: no such path)."""
            return kinds.setdefault(parts, f"k{len(kinds)}")

        def text(parts: tuple[str | int, ...]) -> str:
            """The column holding the value at `parts` as text (a string unescaped)."""
            return texts.setdefault(parts, f"x{len(texts)}")

        e = plan.email_parts
        email_type, email_text = kind(e), text(e)
        oks = [
            "clean",
            f"{email_type} = 'VARCHAR'",
            f"regexp_full_match({email_text}, {_literal(_EMAIL)})",
            f"length(email) <= {MAX_EMAIL_LENGTH}",
            f"strpos(email, '@') <= {MAX_LOCAL_LENGTH + 1}",
            f"NOT list_contains([{', '.join(_literal(t) for t in sorted(TYPO_TLDS))}], "
            "regexp_extract(email, '[.]([a-z]+)$', 1))",
        ]
        # Consent: the fields' types and texts are `q0`, `y0`, ...; `w` says why a record is
        # withheld. A withheld record's values and statuses are not read (so not checked).
        consent = plan.consent
        oks += [
            f"(q{n} IS NULL OR q{n} IN ('VARCHAR', 'NULL'))" for n in range(len(plan.consent_parts))
        ]
        if plan.namespace:
            entries = ("identityMap", plan.namespace)
            oks += [f"{kind(entries)} = 'ARRAY'", f"{kind((*entries, 1))} IS NULL", "iclean"]
        if consent is not None:
            oks.append("cclean")
        base = len(oks)
        trimmed: list[str] = []  # per text value: its text with leading ASCII whitespace gone
        rendered: list[str] = []  # per template: Python's rendering, value and refusal
        columns: list[str] = []
        for value in plan.values:
            if value.kind == "constant":
                columns.append("NULL" if value.constant is None else _literal(value.constant))
                continue
            t, v = kind(value.parts), text(value.parts)
            oks.append(f"({t} IS NULL OR {t} IN ('VARCHAR', 'NULL'))")
            if value.kind == "template":
                rendered.append(f"{self._function(len(columns))}({t}, {v})")
                columns.append(f"struct_extract(tpl{len(rendered) - 1}, 'value')")
                continue
            oks.append(f"length(coalesce({v}, '')) <= {MAX_STRING_LENGTH}")
            oks.append(f"strpos(coalesce({v}, ''), chr(0)) = 0")
            oks.extend(
                f"strpos(coalesce({v}, ''), {_literal(secret)}) = 0" for secret in refused_secrets()
            )
            trimmed.append(f"ltrim({v}, {_ASCII_WHITESPACE}) AS r{len(trimmed)}")
            columns.append(_not_blank(v, f"r{len(trimmed) - 1}"))
        if plan.segments:
            columns += self._statuses(kind, text, oks)
        columns += ["'realized'"] * plan.uploads

        strict_paths = self._strict_paths()
        # `from_json_strict` vouches only for the objects it walks: not with list indexes.
        strict = not _indexed(strict_paths)
        structure = _literal(json.dumps(_structure(strict_paths)))
        parse = f"try(from_json_strict(j, {structure}))" if strict else "NULL"
        strict_leaves = set(strict_paths) if strict else set()
        strict_nodes = {parts[:n] for parts in strict_leaves for n in range(1, len(parts))}
        keys_ok = _unique_keys(plan.objects)

        # A path under a parsed leaf (a JSON text): read from the leaf, by the rest of the path.
        under: dict[tuple[str | int, ...], tuple[str, tuple[str | int, ...]]] = {}
        for parts in (*kinds, *texts):
            for leaf in strict_leaves:
                if len(leaf) < len(parts) and parts[: len(leaf)] == leaf:
                    under[parts] = (_struct_access(leaf), parts[len(leaf) :])
        # Inside such a leaf, no object along a path read holds a key twice.
        inner: dict[str, set[str]] = {}
        for text_of_leaf, rest in under.values():
            inner.setdefault(text_of_leaf, set()).update(_prefixes(rest))
        leaves_ok = " AND ".join(
            _unique_keys(sorted(paths), text_of_leaf)
            for text_of_leaf, paths in sorted(inner.items())
        )

        def from_leaf(function: str, parts: tuple[str | int, ...]) -> str:
            text_of_leaf, rest = under[parts]
            return f"{function}({text_of_leaf}, {_literal(_json_path(rest) or '$')})"

        # A line `from_json_strict` reads (every path present, no duplicate key on one) takes
        # its types and texts from the parsed leaves; the others are read path by path.
        unpacked = ""
        for n, (parts, column) in enumerate(kinds.items()):
            if parts in strict_leaves:
                known = _leaf_type(_struct_access(parts))
            elif parts in strict_nodes:
                known = "'OBJECT'"
            elif parts in under:
                known = from_leaf("json_type", parts)
            else:
                known = "NULL"  # a path beside the ones parsed: not needed when they are there
            unpacked += f", CASE WHEN st IS NOT NULL THEN {known} ELSE kt[{n + 1}] END AS {column}"
        for n, (parts, column) in enumerate(texts.items()):
            if parts in strict_leaves:
                known = _leaf_text(_struct_access(parts))
            elif parts in under:
                known = from_leaf("json_extract_string", parts)
            else:
                known = "NULL"
            unpacked += f", CASE WHEN st IS NOT NULL THEN {known} ELSE xt[{n + 1}] END AS {column}"
        kind_paths = ", ".join(_literal(_json_path(p) or "$") for p in kinds)
        text_paths = ", ".join(_literal(_json_path(p) or "$") for p in texts)
        strip = "^" + _ASCII_SPACE[:-1] + "+|" + _ASCII_SPACE[:-1] + "+$"
        ok = " AND ".join(f"({condition})" for condition in oks[:base])
        if consent is not None:
            checked = " AND ".join(f"({condition})" for condition in oks[base:]) or "true"
            ok += f" AND (w IS NOT NULL OR ({checked}))"
            sent = "ok AND w IS NULL"
        else:
            ok = " AND ".join(f"({condition})" for condition in oks)
            sent = "ok"
        templates = "".join(
            f", CASE WHEN {sent} THEN {call} END AS tpl{n}" for n, call in enumerate(rendered)
        )
        accepted = "ok" + "".join(
            f" AND NOT coalesce(struct_extract(tpl{n}, 'refused'), false)"
            for n in range(len(rendered))
        )
        values = len(plan.values)
        if consent is not None:
            columns = [
                f"CASE WHEN w IS NULL THEN {expr} END"
                if n < values
                else f"CASE WHEN w IS NULL THEN {expr} ELSE 'exited' END"
                for n, expr in enumerate(columns)
            ] + ["w"]
        selected = "".join(
            f", CASE WHEN accepted THEN {expr} END AS c{n}" for n, expr in enumerate(columns)
        )
        consent_front = self._consent_columns() if consent is not None else ("", "", "")
        held = (
            " OR ".join(f"coalesce(y{n} <> '', false)" for n in range(len(plan.consent_parts)))
            or "false"
        )
        if plan.columns:
            front = self._csv_front(kinds, texts)
        else:
            front = (
                # The line: strict JSON as Python reads it, short enough for Python's parser.
                "text AS NOT MATERIALIZED (SELECT ln, b, try(decode(b)) AS j FROM chunk), "
                "lines AS NOT MATERIALIZED (SELECT ln, b, j, coalesce(json_valid(j) AND length(j) < "
                f"{_DEEP_LINE} AND NOT regexp_matches(j, {_literal(_TRAILING_COMMA)})"
                f" AND NOT (contains(j, '\\u') AND regexp_matches(j, {_literal(_SURROGATE)})),"
                " false) AS valid FROM text WHERE j IS NULL OR NOT regexp_full_match(j,"
                " '[ \\t\\r\\n]*')), "
                # No duplicate key along a path read; the types and texts at every path.
                "strict AS NOT MATERIALIZED (SELECT ln, b, j, valid,"
                f" CASE WHEN valid THEN {parse} END AS st FROM lines), "
                "parsed AS NOT MATERIALIZED (SELECT ln, b, valid, st,"
                f" CASE WHEN NOT valid THEN false WHEN st IS NOT NULL THEN {leaves_ok or 'true'}"
                f" WHEN json_type(j) = 'OBJECT' THEN {keys_ok} ELSE false END AS clean,"
                f" CASE WHEN valid AND st IS NULL THEN json_type(j, [{kind_paths}]) END AS kt,"
                f" CASE WHEN valid AND st IS NULL THEN json_extract_string(j, [{text_paths}])"
                f" END AS xt{consent_front[0]}{self._namespace_clean()} FROM strict), "
                f"leaves AS NOT MATERIALIZED (SELECT ln, b, valid, clean{unpacked}"
                f"{consent_front[1]}{', iclean' if plan.namespace else ''} FROM parsed), "
            )
        return (
            "CREATE OR REPLACE TEMP TABLE r AS WITH "
            + front
            + "prepared AS NOT MATERIALIZED (SELECT *,"
            f" lower(regexp_replace({email_text}, {_literal(strip)}, '', 'g')) AS email"
            + consent_front[2]
            + "".join(f", {expr}" for expr in trimmed)
            + " FROM leaves), "
            f"checked AS NOT MATERIALIZED (SELECT *, coalesce(valid AND {ok}, false) AS ok"
            " FROM prepared), "
            f"rendered AS NOT MATERIALIZED (SELECT *{templates} FROM checked), "
            f"decided AS NOT MATERIALIZED (SELECT *, {accepted} AS accepted FROM rendered) "
            f"SELECT ln, CASE WHEN accepted THEN email END AS email, accepted{selected},"
            f" CASE WHEN NOT accepted THEN b END AS raw, {held} AS held FROM decided"
        )

    def _namespace_clean(self) -> str:
        """`iclean`: no other key of `identityMap` is the namespace in another letter case
        (Python takes the first that folds to it; a key beyond printable ASCII, whose case
        folding SQL and Python may not share, goes to Python too)."""
        namespace = self._plan.namespace
        if not namespace:
            return ""
        same, folded = _literal(namespace), _literal(namespace.lower())
        keys = f"json_keys(j, {_literal(_json_path(('identityMap',)) or '$')})"
        return (
            f", CASE WHEN valid THEN coalesce(list_bool_and(list_transform({keys}, lambda k:"
            f" k = {same} OR (regexp_full_match(k, '[ -~]*') AND lower(k) <> {folded}))),"
            " false) END AS iclean"
        )

    def _consent_columns(self) -> tuple[str, str, str]:
        """The consent fields: (what `parsed` extracts from a jsonl line, what `leaves`
        unpacks, the reason `prepared` computes). A line that cannot hold them (no key of their
        first part, no escape) skips the extraction; one that may is checked for duplicate keys
        along them, as Python keeps the last. csv rows bring them as columns."""
        plan = self._plan
        withheld = f", {self._withheld()} AS w"
        if plan.columns:
            return "", "", withheld
        paths = ", ".join(_literal(_json_path(parts) or "$") for parts in plan.consent_parts)
        firsts = sorted({str(parts[0]) for parts in plan.consent_parts})
        maybe = " OR ".join(f"contains(j, {_literal(json.dumps(first))})" for first in firsts)
        maybe = f"valid AND ({maybe} OR contains(j, '\\u'))"
        objects = sorted({"$"} | {p for parts in plan.consent_parts for p in _prefixes(parts)})
        unique = _unique_keys(objects)
        parsed = (
            f", CASE WHEN {maybe} THEN json_type(j, [{paths}]) END AS ck"
            f", CASE WHEN {maybe} THEN json_extract_string(j, [{paths}]) END AS cx"
            f", CASE WHEN {maybe} THEN coalesce({unique}, false) ELSE true END AS cclean"
        )
        leaves = "".join(
            f", ck[{n + 1}] AS q{n}, cx[{n + 1}] AS y{n}" for n in range(len(plan.consent_parts))
        )
        return parsed, leaves + ", cclean", withheld

    def _withheld(self) -> str:
        """Why a row's consent withholds it (NULL: it does not), as `Consent.withheld` says."""
        consent = self._plan.consent
        assert consent is not None
        texts = [field_path.text for field_path in consent.fields]
        if consent.allow is None:
            cases = "".join(
                f" WHEN y{n} = {_literal(CONSENT_NO)} THEN "
                + _literal(f"consent withheld: {text} is {consent_shown(CONSENT_NO)}")
                for n, text in enumerate(texts)
            )
            return f"CASE{cases} END"
        allowed = ", ".join(_literal(value) for value in consent.allow)
        cases = ""
        for n, text in enumerate(texts):
            shown = (
                f"CASE WHEN regexp_full_match(y{n}, '[A-Za-z0-9_-]{{1,20}}')"
                f" THEN '\"' || y{n} || '\"' ELSE 'another value' END"
            )
            cases += (
                f" WHEN y{n} <> '' AND y{n} NOT IN ({allowed})"
                f" THEN {_literal(f'consent withheld: {text} is ')} || {shown}"
            )
        present = " OR ".join(f"coalesce(y{n} <> '', false)" for n in range(len(texts)))
        nothing = _literal(f"consent withheld: no value in {', '.join(texts)}")
        return f"CASE{cases} WHEN NOT ({present}) THEN {nothing} END"

    def _csv_front(
        self, kinds: dict[tuple[str | int, ...], str], texts: dict[tuple[str | int, ...], str]
    ) -> str:
        """A csv source's rows as the leaves: every column read holds text (a row the reader
        could not split into the header's columns never reaches SQL)."""
        names = {name: f"v{n}" for n, name in enumerate(self._plan.columns)}
        unpacked = "".join(
            f", CASE WHEN {names[str(parts[0])]} IS NOT NULL THEN 'VARCHAR' END AS {column}"
            for parts, column in kinds.items()
        )
        unpacked += "".join(
            f", {names[str(parts[0])]} AS {column}" for parts, column in texts.items()
        )
        for n, parts in enumerate(self._plan.consent_parts):
            value = names[str(parts[0])]
            unpacked += (
                f", CASE WHEN {value} IS NOT NULL THEN 'VARCHAR' END AS q{n}, {value} AS y{n}"
            )
        if self._plan.consent is not None:
            unpacked += ", true AS cclean"
        return (
            "leaves AS NOT MATERIALIZED (SELECT ln, NULL::BLOB AS b, true AS valid, true AS clean"
            f"{unpacked} FROM chunk), "
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

    def map_source(self, batches: Iterator[pa.RecordBatch]) -> tuple[int, Iterator[Leftover]]:
        """Stage every line of `batches` SQL maps, in one query over the whole stream (while
        DuckDB maps a batch, the next is read); return how many, and the other non-blank
        lines, ascending by position, for Python to map."""
        try:
            inserted = self._stage(pa.RecordBatchReader.from_batches(BATCH_SCHEMA, batches))
            self._db.execute(
                "CREATE OR REPLACE TABLE rest AS SELECT ln, raw FROM r WHERE NOT accepted"
            ).fetchall()
            self._db.execute("DROP TABLE r").fetchall()
        finally:
            self.close()
        return inserted, self._leftovers()

    def map_rows(self, rows: Sequence[tuple[int, Mapping[str, object]]]) -> tuple[int, set[int]]:
        """Stage the csv rows (position, fields) SQL maps; return how many, and the positions
        of the others, for Python to map."""
        columns = self._plan.columns
        try:
            table = pa.table(
                [pa.array([position for position, _ in rows], pa.int64())]
                + [pa.array([fields.get(c) for _, fields in rows], pa.string()) for c in columns],
                names=["ln", *(f"v{n}" for n in range(len(columns)))],
            )
        except (pa.ArrowException, UnicodeEncodeError):  # text arrow cannot hold: Python's
            return 0, {position for position, _ in rows}
        inserted = self._stage(table)
        refused = self._db.execute("SELECT ln FROM r WHERE NOT accepted").fetchall()
        self._db.execute("DROP TABLE r").fetchall()
        return inserted, {ln for (ln,) in refused}

    def _stage(self, chunk: pa.RecordBatchReader | pa.Table) -> int:
        """Map `chunk` into temp table `r`; insert the accepted rows into `mapped`."""
        db = self._db
        db.register("chunk", chunk)
        try:
            db.execute(self._query).fetchall()
        finally:
            db.unregister("chunk")
        full = ["NULL"] * self._width
        for n, slot in enumerate(self._slots):
            full[slot] = f"c{n}"
        inserted = db.execute(
            f"INSERT INTO mapped SELECT {self._src}, email, ln, ln, {', '.join(full)} "
            "FROM r WHERE accepted"
        ).fetchall()[0]
        if self._plan.consent is not None:
            (held,) = db.execute("SELECT count(*) FROM r WHERE accepted AND held").fetchall()[0]
            self.consent_held += int(held)
        return int(inserted[0]) if inserted else 0

    def close(self) -> None:
        """Drop the template functions from the connection (once)."""
        for index in self._rendered:
            self._db.remove_function(self._function(index))
        self._rendered = {}

    def _leftovers(self) -> Iterator[Leftover]:
        cursor = self._db.cursor()
        try:
            cursor.execute("SELECT ln, raw FROM rest ORDER BY ln")
            while rows := cursor.fetchmany(_SCAN_BATCH):
                for ln, raw in rows:
                    yield Leftover(ln, raw)
        finally:
            cursor.close()
            self._db.execute("DROP TABLE IF EXISTS rest").fetchall()

    def _renderer(self, index: int) -> Callable[[pa.Array, pa.Array], pa.Array]:
        """The SQL function rendering template `index` for a batch of (json type, text)
        inputs, each distinct input once (Python, exactly as `ProfileMapper`)."""
        cache = self._rendered[index]
        parts = self._plan.values[index].parts

        def render(kinds: pa.Array, texts: pa.Array) -> pa.Array:
            if len(cache) > _RENDER_CACHE:
                cache.clear()  # a template over unique values: bounded memory
            # Each distinct (type, text) of the batch once: dictionary codes, then np.unique.
            kind_codes = _array(kinds).dictionary_encode()
            text_codes = _array(texts).dictionary_encode()
            kind_values = kind_codes.dictionary.to_pylist()
            text_values = text_codes.dictionary.to_pylist()
            width = len(text_values) + 1
            pairs = (
                pc.fill_null(kind_codes.indices, -1).to_numpy().astype(np.int64) + 1
            ) * width + (pc.fill_null(text_codes.indices, -1).to_numpy() + 1)
            distinct, positions = np.unique(pairs, return_inverse=True)
            results = []
            for pair in distinct.tolist():
                k, t = divmod(pair, width)
                key = (kind_values[k - 1] if k else None, text_values[t - 1] if t else None)
                result = cache.get(key)
                if result is None:
                    result = cache[key] = self._render(index, parts, *key)
                results.append(result)
            take = pa.array(positions.reshape(-1))
            return pa.StructArray.from_arrays(
                [
                    pa.array([value for value, _ in results], pa.string()).take(take),
                    pa.array([refused for _, refused in results], pa.bool_()).take(take),
                ],
                names=["value", "refused"],
            )

        return render

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
