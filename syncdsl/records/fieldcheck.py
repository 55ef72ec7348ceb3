"""Mappings that would silently write nothing: csv columns the header lacks (an error, found
before the first row), jsonl field paths no record holds (a warning, found after reading)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from syncdsl.errors import Diagnostic
from syncdsl.lang import ir
from syncdsl.lang.diagnostics import spec_error
from syncdsl.records.sources import csv_headers


def check_csv_headers(spec: ir.Spec) -> None:
    """Raise SpecError when a csv source's identity or a mapping names a column its header lacks.

    Each error points at the field path in the .sync file, with a did-you-mean (a column that
    differs only in letter case first, then the closest spelling).
    """
    problems: list[Diagnostic] = []
    for source in spec.sources:
        if source.format != "csv":
            continue
        for file, header in csv_headers(source):
            if header is None:
                continue
            for role, path in _paths(source):
                column = path.text
                if column in header:
                    continue
                problems.append(
                    Diagnostic(
                        path.span,
                        f"{role}: column `{column}` is not in the header of {file} "
                        f"({_shown(header)}){suggest_column(column, header)}",
                    )
                )
            if problems:
                break  # the first file that lacks a column says enough
    if problems:
        raise spec_error(problems, _texts(d.span.file for d in problems))


def _paths(source: ir.Source) -> Iterable[tuple[str, ir.FieldPath]]:
    yield "identity email", source.identity
    for mapping in source.mappings:
        if isinstance(mapping.expr, ir.FieldPath):
            yield f"map {mapping.property}", mapping.expr
    for field_path in source.consent.fields if source.consent else ():
        yield "consent", field_path


def suggest_column(column: str, header: list[str]) -> str:
    """` (did you mean `X`?)`: a same-letters-other-case column first, then the closest one."""
    folded = [name for name in header if name.casefold() == column.casefold()]
    if folded:
        return f"; did you mean `{folded[0]}`? (column names are case-sensitive)"
    lowered = {name.casefold(): name for name in header}
    close = difflib.get_close_matches(column.casefold(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean `{lowered[close[0]]}`?" if close else ""


def _shown(header: list[str]) -> str:
    names = ", ".join(f"`{name}`" for name in header[:12])
    return "columns: " + names + (", …" if len(header) > 12 else "")


def _texts(files: Iterable[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for file in set(files):
        try:
            texts[file] = Path(file).read_text(encoding="utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def missing_consent_warning(source: ir.Source, consent: ir.Consent, records: int) -> str:
    """The warning for consent fields that none of a source's records holds a value at."""
    fields = ", ".join(f"`{f.text}`" for f in consent.fields)
    effect = (
        "so every record is withheld"
        if consent.allow is not None
        else "so no record's consent is checked"
    )
    return (
        f"{consent.fields[0].span}: source {source.name}: none of the {records:,} records "
        f"mapped has a value at {fields} (consent), {effect}; check the field path"
    )


def missing_path_warning(
    source: ir.Source, mapping: ir.PropertyMapping, records: int, mapped: int
) -> str:
    """The warning for a jsonl or parquet field path that none of a source's records holds a value at."""
    assert isinstance(mapping.expr, ir.FieldPath)
    path = mapping.expr.text
    read = f"{records:,} records read" if mapped == records else f"{mapped:,} records mapped "
    read += "" if mapped == records else f"(of {records:,} read)"
    return (
        f"{mapping.expr.span}: source {source.name}: none of the {read} has a value "
        f"at `{path}` (mapped to {mapping.property}), so nothing is written to it; check the "
        "field path"
    )
