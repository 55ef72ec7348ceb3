"""`Spilled`: the long lists of a plan (its contact changes, its adoptions), held on disk.

A first plan of a million profiles has a million change records; as Python objects they would
take gigabytes. A `SpillWriter` keeps the first `SPILL_AT` records in memory, and past that
writes every record as one compact JSON line to an unnamed temporary file (in `$TMPDIR`; the
file has no name, so it goes with the process even after a kill -9). The `Spilled` sequence it
makes decodes a record only when it is read: iterating streams the file, indexing seeks.

Each record has a kind (a change's action): the writer counts the records of each kind and
keeps the first `HEAD` of each in memory, for the plan's summary and its first lines per kind.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any, Generic, TypeVar, overload

import orjson

T = TypeVar("T")

SPILL_AT = 5_000  # records held in memory before the writer moves them to disk
HEAD = 100  # first records of each kind kept in memory (a plan shows the first 20 or 50)
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one record becomes a JSON value and back, and what kind it is."""

    encode: Callable[[T], Any]
    decode: Callable[[Any], T]
    kind: Callable[[T], str] = lambda record: ""


class Spilled(Sequence[T]):
    """An immutable sequence of records, in memory or in a temporary file (see the module)."""

    __slots__ = ("_codec", "_counts", "_file", "_heads", "_memory", "_offsets")

    def __init__(
        self,
        codec: Codec[T],
        memory: tuple[T, ...] | None,
        file: IO[bytes] | None,
        offsets: array[int],
        counts: dict[str, int],
        heads: dict[str, tuple[T, ...]],
    ) -> None:
        self._codec = codec
        self._memory = memory
        self._file = file
        self._offsets = offsets  # the start of each line, then the end of the last
        self._counts = counts
        self._heads = heads

    @classmethod
    def of(cls, codec: Codec[T], records: Iterable[T] = ()) -> Spilled[T]:
        writer = SpillWriter(codec)
        writer.extend(records)
        return writer.close()

    def map(self, function: Callable[[T], T]) -> Spilled[T]:
        """The same records, each through `function` as it is read (it keeps each one's kind);
        nothing is rewritten on disk."""
        decode = self._codec.decode
        codec = Codec(self._codec.encode, lambda data: function(decode(data)), self._codec.kind)
        return Spilled(
            codec,
            None if self._memory is None else tuple(map(function, self._memory)),
            self._file,
            self._offsets,
            self._counts,
            {kind: tuple(map(function, head)) for kind, head in self._heads.items()},
        )

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def __len__(self) -> int:
        return len(self._memory) if self._memory is not None else len(self._offsets) - 1

    def kind_count(self, kind: str) -> int:
        """How many records are of this kind (a change's action)."""
        return self._counts.get(kind, 0)

    def first_of(self, kind: str, limit: int | None) -> Iterator[T]:
        """The first `limit` records of this kind (None: all of them), in order."""
        head = self._heads.get(kind, ())
        if limit is not None and (limit <= len(head) or len(head) == self.kind_count(kind)):
            return iter(head[:limit])
        return islice((r for r in self if self._codec.kind(r) == kind), limit)

    def __iter__(self) -> Iterator[T]:
        if self._memory is not None:
            return iter(self._memory)
        return self._stream()

    def _stream(self) -> Iterator[T]:
        assert self._file is not None
        fd, decode = self._file.fileno(), self._codec.decode
        position, end, rest = 0, self._offsets[-1], b""
        while position < end:
            chunk = os.pread(fd, min(_READ_SIZE, end - position), position)
            if not chunk:
                raise OSError("the plan's temporary file was cut short")
            position += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield decode(orjson.loads(line))
        if rest:
            yield decode(orjson.loads(rest))

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if self._memory is not None:
            return self._memory[index]
        if isinstance(index, slice):
            return tuple(self._at(i) for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._at(index)

    def _at(self, index: int) -> T:
        assert self._file is not None
        start, end = self._offsets[index], self._offsets[index + 1]
        line = os.pread(self._file.fileno(), end - start, start)
        return self._codec.decode(orjson.loads(line))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = "on disk" if self.on_disk else "in memory"
        return f"Spilled({len(self):,} records {where})"

    def __bool__(self) -> bool:
        return len(self) > 0


class SpillWriter(Generic[T]):
    """Appends records, in memory up to SPILL_AT, then to an unnamed temporary file."""

    def __init__(self, codec: Codec[T], *, spill_at: int | None = None) -> None:
        self._codec = codec
        self._spill_at = SPILL_AT if spill_at is None else spill_at
        self._memory: list[T] = []
        self._file: IO[bytes] | None = None
        self._offsets = array("Q", [0])
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._counts: dict[str, int] = {}
        self._heads: dict[str, list[T]] = {}

    def append(self, record: T) -> None:
        kind = self._codec.kind(record)
        count = self._counts.get(kind, 0)
        self._counts[kind] = count + 1
        if count < HEAD:
            self._heads.setdefault(kind, []).append(record)
        if self._file is None:
            self._memory.append(record)
            if len(self._memory) > self._spill_at:
                # the file lives as long as the Spilled list made from it (it closes on GC)
                self._file = tempfile.TemporaryFile(prefix="syncdsl-plan-")  # noqa: SIM115
                for held in self._memory:
                    self._write(held)
                self._memory = []
            return
        self._write(record)

    def extend(self, records: Iterable[T]) -> None:
        for record in records:
            self.append(record)

    def _write(self, record: T) -> None:
        line = orjson.dumps(self._codec.encode(record)) + b"\n"
        self._buffer.append(line)
        self._buffered += len(line)
        self._offsets.append(self._offsets[-1] + len(line))
        if self._buffered >= _READ_SIZE:
            self._flush()

    def _flush(self) -> None:
        assert self._file is not None
        self._file.write(b"".join(self._buffer))
        self._buffer, self._buffered = [], 0

    def close(self) -> Spilled[T]:
        heads = {kind: tuple(records) for kind, records in self._heads.items()}
        if self._file is None:
            return Spilled(self._codec, tuple(self._memory), None, array("Q"), self._counts, heads)
        self._flush()
        self._file.flush()
        return Spilled(self._codec, None, self._file, self._offsets, self._counts, heads)
