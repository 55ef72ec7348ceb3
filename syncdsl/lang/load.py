"""`.sync` files -> the validated Spec: which files a path names, reading them, then parse and
validate (every problem of every file reported in one SpecError)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from syncdsl.errors import Diagnostic, Span, SpecError
from syncdsl.lang.diagnostics import spec_error
from syncdsl.lang.ir import Spec
from syncdsl.lang.parse import parse_text
from syncdsl.lang.syntax import (
    Document,
)
from syncdsl.lang.syntax_errors import point
from syncdsl.lang.validate import build_spec


def _nowhere(path: str) -> Span:
    # Line 0: a problem with a path itself, rendered without a source line.
    return Span(path, 0, 0, 0, 0)


def spec_files(paths: Iterable[Path]) -> tuple[list[Path], Path | None, list[Diagnostic]]:
    """The .sync files named by `paths` (directories expand to their *.sync), and their directory."""
    files: list[Path] = []
    diagnostics: list[Diagnostic] = []
    roots: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix == ".sync" and p.is_file())
            if not found:
                diagnostics.append(
                    Diagnostic(_nowhere(str(path)), "no .sync files in this directory")
                )
            files.extend(found)
            roots.append(path)
        elif path.is_file():
            files.append(path)
            roots.append(path.parent)
        else:
            diagnostics.append(Diagnostic(_nowhere(str(path)), "no such file or directory"))
    unique: dict[Path, Path] = {}
    for file in files:
        unique.setdefault(file.resolve(), file)
    distinct_roots = {root.resolve() for root in roots}
    if len(distinct_roots) > 1:
        names = ", ".join(sorted(f"`{root}`" for root in {str(r) for r in roots}))
        diagnostics.append(
            Diagnostic(
                _nowhere(str(roots[0])),
                f"one configuration is one directory, but these paths span several: {names}",
            )
        )
    ordered = sorted(unique.values(), key=lambda p: str(p))
    return ordered, (roots[0].resolve() if roots else None), diagnostics


def read_spec_text(file: Path) -> str:
    """The text of a .sync file; SpecError when it cannot be read as UTF-8."""
    try:
        data = file.read_bytes()
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        return _not_utf8(str(file), data, error)
    except OSError as error:
        message = f"cannot read the file: {error.strerror or error}"
    raise spec_error([Diagnostic(_nowhere(str(file)), message)], {})


def _not_utf8(file: str, data: bytes, error: UnicodeDecodeError) -> str:
    """Raise a SpecError placing the first byte that is not UTF-8 at its line and column."""
    start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    column = len(data[start : error.start].decode("utf-8", "replace")) + 1
    message = f"not UTF-8 text (byte 0x{data[error.start]:02x}): save the file as UTF-8"
    text = data.decode("utf-8", "replace")
    raise spec_error([Diagnostic(point(file, line, column), message)], {file: text})


def load_spec(paths: list[Path], *, data_root: Path | None = None) -> Spec:
    """Parse and validate one configuration (files, or a directory of .sync files) into a Spec.

    Data files must lie inside the configuration's directory, or inside `data_root` (the
    operator's `--data-root`) when given.

    Raises:
        SpecError: with every problem found (syntax errors in any file, then meaning) rendered.
    """
    files, root, diagnostics = spec_files(paths)
    sources: dict[str, str] = {}
    documents: list[Document] = []
    for file in files:
        try:
            text = read_spec_text(file)
            sources[str(file)] = text
            documents.append(parse_text(text, str(file)))
        except SpecError as error:
            diagnostics.extend(error.diagnostics)
    if diagnostics or root is None:
        raise spec_error(diagnostics, sources)
    spec, problems = build_spec(
        documents, files=tuple(f.resolve() for f in files), root=root, data_root=data_root
    )
    if problems or spec is None:
        raise spec_error(problems, sources)
    return spec
