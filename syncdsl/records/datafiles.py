"""A source's data files: listed from its locations (files, folders, globs; local or remote), in a
stable order, and opened with their compression detected from the content.

Experience Platform exports NDJSON as gzip part files (`part-00000-tid-…-c000.json.gz`) written by
Spark under `<datasetId>/exportTime=YYYYMMDDHHMM/`, beside `_SUCCESS` markers and `.crc` checksums;
file-based destinations also offer bzip2 and zstd. The compression is read from the first bytes,
not the suffix, so a `.json` that is really gzip reads right; a file that ends inside its compressed
data is reported as truncated, never read as shorter.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from syncdsl.errors import SourceError
from syncdsl.lang import ir
from syncdsl.lang.datapath import is_glob, is_hidden, local_files

_CHUNK = 1 << 20
_REMOTE_BLOCK = 8 << 20

#: The first bytes of each compressed format (and of Parquet, which compresses inside itself).
MAGIC: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "bzip2": b"BZh",
    "zstd": b"\x28\xb5\x2f\xfd",
    "xz": b"\xfd7zXZ\x00",
    "lz4": b"\x04\x22\x4d\x18",
    "snappy": b"\xff\x06\x00\x00sNaPpY",
    "parquet": b"PAR1",
}
_STREAMED = ("gzip", "bzip2", "zstd", "xz")


@dataclass(frozen=True)
class DataFile:
    """One file to read: its name for people (and rejects) and where it is."""

    display: str  # "exports/exportTime=202611300000/part-00000.json.gz", "s3://bucket/key"
    target: str  # the local absolute path, or the URL
    remote: bool = False


def source_files(source: ir.Source) -> tuple[DataFile, ...]:
    """Every data file of `source`: its locations in the order written, each one's files by path;
    a file named twice is read once.

    Raises:
        SourceError: a location is missing, matches no data file, or cannot be listed.
    """
    files: list[DataFile] = []
    seen: set[str] = set()
    for location in source.locations:
        found = _remote_files(location) if location.remote else _local_files(location)
        if not found:
            what = "matches no data files" if is_glob(location.written) else "holds no data files"
            raise SourceError(f"source {source.name}: `{location.written}` {what}")
        for file in found:
            if file.target not in seen:
                seen.add(file.target)
                files.append(file)
    return tuple(files)


def _local_files(location: ir.DataLocation) -> list[DataFile]:
    try:
        found = local_files(location.written, Path(location.target), location.roots)
    except ValueError as error:
        raise SourceError(str(error)) from None
    except OSError as error:
        raise SourceError(
            f"{location.written}: cannot list it: {error.strerror or error}"
        ) from None
    return [DataFile(file.display, str(file.path)) for file in found]


def _remote_files(location: ir.DataLocation) -> list[DataFile]:
    url = location.written
    with _remote_errors(url, "list"):
        fs, path = remote_filesystem(url)
        protocol = url.split("://", 1)[0]
        if is_glob(path):
            base = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
            found = {p: info for p, info in fs.glob(path, detail=True).items()}
        elif fs.isdir(path):
            base = path.rstrip("/")
            found = fs.find(path, detail=True)
        else:
            info = fs.info(path)
            return [DataFile(url, url, remote=True)] if info.get("type") != "directory" else []
    files = []
    for name in sorted(found):
        if found[name].get("type") == "directory":
            continue
        relative = name[len(base) :].strip("/")
        if any(is_hidden(part) for part in relative.split("/")):
            continue
        full = f"{protocol}://{name}"
        files.append(DataFile(full, full, remote=True))
    return files


def remote_filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url` (credentials from the environment) and the path inside it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


@contextmanager
def _remote_errors(url: str, doing: str) -> Iterator[None]:
    try:
        yield
    except SourceError:
        raise
    except ImportError as error:
        raise SourceError(
            f"{url}: reading it needs a package that is not installed ({error.name or error}); "
            "pip install 'syncdsl[remote]'"
        ) from None
    except FileNotFoundError:
        raise SourceError(f"{url}: not found; check the bucket and the path") from None
    except PermissionError as error:
        raise SourceError(
            f"{url}: access denied ({error}); check the storage credentials in the environment"
        ) from None
    except Exception as error:  # noqa: BLE001 - storage clients raise their own kinds
        detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise SourceError(
            f"{url}: could not {doing} it: {detail}; check the storage credentials and the "
            "endpoint in the environment"
        ) from None


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


_DECOMPRESSORS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "bzip2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


def _zstd() -> _Decompressor:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


_DECOMPRESSORS["zstd"] = _zstd


class DataError(Exception):
    """A file's bytes end or break inside its compressed data: what is left cannot be read."""


class _Decompressed(io.RawIOBase):
    """A compressed stream read as its plain bytes, every member or frame in turn (Spark and
    `cat a.gz b.gz` both make several). Ending inside a member raises DataError, never a quiet EOF.
    """

    def __init__(self, raw: BinaryIO, codec: str, name: str) -> None:
        self._raw = raw
        self._codec = codec
        self._name = name
        self._make = _DECOMPRESSORS[codec]
        self._engine = self._make()
        self._pending = b""
        self._started = False  # the current member has received bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if not self._fill():
                return 0
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _fill(self) -> bool:
        """Decompress more; False at the clean end of the data."""
        engine = self._engine
        if engine.eof:
            rest = engine.unused_data
            if not rest:
                rest = self._raw.read(_CHUNK)
                if not rest:
                    return False
            if not rest.strip(b"\x00"):  # zero padding after the last member
                return self._fill_padding()
            self._engine = self._make()
            self._started = False
            return self._feed(rest)
        chunk = self._raw.read(_CHUNK)
        if not chunk:
            if self._started:
                raise DataError(
                    f"the {self._codec} data ends early: the file is truncated (cut off during "
                    "the export or the copy); the records after this point are lost, so re-export "
                    "or copy it again"
                )
            return False
        return self._feed(chunk)

    def _fill_padding(self) -> bool:
        while chunk := self._raw.read(_CHUNK):
            if chunk.strip(b"\x00"):
                raise DataError(
                    f"bytes after the end of the {self._codec} data are not {self._codec}"
                )
        return False

    def _feed(self, data: bytes) -> bool:
        self._started = True
        try:
            self._pending = self._engine.decompress(data)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as error:
            raise DataError(
                f"the {self._codec} data is corrupt ({error}); the records after this point "
                "cannot be read, so re-export or copy the file again"
            ) from None
        except Exception as error:  # noqa: BLE001 - zstandard.ZstdError is its own kind
            raise DataError(
                f"the {self._codec} data is corrupt ({error}); the records after this point "
                "cannot be read, so re-export or copy the file again"
            ) from None
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


def detect(head: bytes) -> str | None:
    """The format the first bytes announce: gzip, bzip2, zstd, xz, lz4, snappy, parquet, or None
    (plain data)."""
    for name, magic in MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_raw(file: DataFile) -> BinaryIO:
    """The file's bytes as stored.

    Raises:
        SourceError: it cannot be opened.
    """
    if file.remote:
        with _remote_errors(file.display, "open"):
            fs, path = remote_filesystem(file.target)
            return fs.open(path, "rb", block_size=_REMOTE_BLOCK)  # type: ignore[no-any-return]
    try:
        return open(file.target, "rb")
    except FileNotFoundError:
        raise SourceError(
            f"{file.display}: file not found ({file.target}); check the path in the spec (it is "
            "relative to the .sync file)"
        ) from None
    except IsADirectoryError:
        raise SourceError(
            f"{file.display}: is a directory ({file.target}), expected a file"
        ) from None
    except OSError as error:
        raise SourceError(
            f"{file.display}: cannot read {file.target}: {error.strerror or error}"
        ) from None


def open_data(file: DataFile, format_: str) -> tuple[BinaryIO, str | None]:
    """The file's plain bytes (decompressed) and the compression found (None: plain).

    Raises:
        SourceError: it cannot be opened, or holds another format than `format_` says.
    """
    raw = open_raw(file)
    try:
        head = raw.read(16)
        raw.seek(0)
    except OSError as error:
        raw.close()
        raise SourceError(f"{file.display}: reading it failed: {error}") from None
    codec = detect(head)
    if codec == "parquet":
        raw.close()
        raise SourceError(
            f"{file.display}: is a Parquet file; declare the source with "
            f'`parquet = "…"` instead of `{format_}`'
        )
    if codec in ("lz4", "snappy"):
        raw.close()
        raise SourceError(
            f"{file.display}: is {codec}-compressed, which syncdsl reads only inside Parquet "
            "files; export NDJSON or CSV with gzip, bzip2 or zstd, or none"
        )
    if codec is None:
        return raw, None
    return io.BufferedReader(_Decompressed(raw, codec, file.display), _CHUNK), codec


def fingerprint(file: DataFile, digest: Any) -> None:
    """Feed what identifies `file`'s content into `digest`: every byte of a local file; a remote
    object's size and version tag (ETag, generation, MD5: re-reading a bucket costs money)."""
    digest.update(file.display.encode("utf-8", "surrogateescape") + b"\0")
    if file.remote:
        with _remote_errors(file.display, "read"):
            fs, path = remote_filesystem(file.target)
            info = fs.info(path)
        keys = ("size", "ETag", "etag", "generation", "md5Hash", "crc32c", "LastModified", "mtime")
        digest.update(repr([(key, str(info.get(key))) for key in keys if key in info]).encode())
        return
    with open_raw(file) as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)


def files_digest(files: tuple[DataFile, ...]) -> str:
    digest = hashlib.sha256()
    for file in files:
        fingerprint(file, digest)
    return digest.hexdigest()
