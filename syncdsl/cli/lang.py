"""CLI commands for the .sync language: `validate` and `fmt`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syncdsl.cli.core import DataRoot, PathsArg, boundary
from syncdsl.errors import Diagnostic, Span, SpecError
from syncdsl.lang.diagnostics import spec_error
from syncdsl.lang.fmt import format_text
from syncdsl.lang.ir import Spec
from syncdsl.lang.load import load_spec, read_spec_text

#: This module's commands; `syncdsl.cli` adds them to the `syncdsl` app.
app = typer.Typer()


def _count(number: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {noun if number == 1 else plural}"


def summary(spec: Spec) -> str:
    """`2 files valid: 1 destination, 2 sources, 2 audiences` (and properties when declared)."""
    parts = [
        _count(1, "destination"),
        _count(len(spec.sources), "source"),
        _count(len(spec.audiences), "audience"),
    ]
    if spec.properties:
        parts.append(_count(len(spec.properties), "property"))
    return f"{_count(len(spec.files), 'file')} valid: {', '.join(parts)}"


@app.command()
@boundary
def validate(paths: PathsArg, data_root: DataRoot = None) -> None:
    """Check configurations' syntax and meaning (no network); exit 1 listing every error.

    Paths in one directory are one configuration; paths in several directories are validated
    as several configurations.
    """
    configurations: dict[Path, list[Path]] = {}
    for path in paths:
        root = path if path.is_dir() else path.parent
        configurations.setdefault(root.resolve(), []).append(path)
    failures: list[SpecError] = []
    for root, group in configurations.items():
        try:
            line = summary(load_spec(group, data_root=data_root))
        except SpecError as error:
            failures.append(error)
            continue
        typer.echo(line + (f" ({root})" if len(configurations) > 1 else ""))
    if failures:
        raise SpecError(
            [d for failure in failures for d in failure.diagnostics],
            "\n".join(failure.rendered for failure in failures),
        )


def _sync_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".sync" and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Diagnostic(Span(str(path), 0, 0, 0, 0), "no such file or directory"))
    unique = {file.resolve(): file for file in reversed(files)}
    return sorted(unique.values(), key=str), problems


@app.command("fmt")
@boundary
def fmt(
    paths: PathsArg,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 listing files that need fmt.")
    ] = False,
) -> None:
    """Rewrite .sync files in canonical layout (comments kept) and list the files it changed."""
    files, problems = _sync_files(paths)
    texts: dict[str, str] = {}
    changed: dict[Path, str] = {}
    for file in files:
        try:
            text = read_spec_text(file)
            texts[str(file)] = text
            formatted = format_text(text, str(file))
        except SpecError as error:
            problems.extend(error.diagnostics)
            continue
        if formatted != file.read_bytes().decode("utf-8", "replace"):
            changed[file] = formatted
    if problems:  # all or nothing: never rewrite half a configuration
        raise spec_error(problems, texts)
    for file, formatted in changed.items():
        if not check:
            file.write_text(formatted, encoding="utf-8")
        typer.echo(str(file))
    if check and changed:
        typer.echo(
            f"{_count(len(changed), 'file')} would be reformatted by `syncdsl fmt`.", err=True
        )
        raise typer.Exit(1)
