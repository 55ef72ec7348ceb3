"""The syntax tree of a .sync file: generic blocks and attributes, before any meaning is checked."""

from __future__ import annotations

from dataclasses import dataclass

from syncdsl.errors import Span


@dataclass(frozen=True)
class StringValue:
    """A double-quoted string, escapes decoded."""

    value: str
    span: Span


@dataclass(frozen=True)
class NumberValue:
    value: int | float
    span: Span


@dataclass(frozen=True)
class BoolValue:
    value: bool
    span: Span


@dataclass(frozen=True)
class PathValue:
    """A dotted field path; backticked segments arrive without their backticks, list indexes
    (`[0]`) as ints."""

    parts: tuple[str | int, ...]
    span: Span


@dataclass(frozen=True)
class CallValue:
    """`name(arg, ...)`: `env("VAR")`, and `fill_if_empty(EXPR)` in a map."""

    name: str
    args: tuple[Value, ...]
    span: Span


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span


Value = StringValue | NumberValue | BoolValue | PathValue | CallValue | ListValue


@dataclass(frozen=True)
class Attribute:
    """`name = value`, or `name qualifier = value` (as in `identity email = ...`)."""

    name: str
    qualifier: str | None
    value: Value
    span: Span
    name_span: Span
    qualifier_span: Span | None


@dataclass(frozen=True)
class Block:
    """`type [label] { items }`; `label_quoted` tells `"name"` from a bare `name`."""

    type: str
    label: str | None
    label_quoted: bool
    items: tuple[Attribute | Block, ...]
    span: Span
    type_span: Span
    label_span: Span | None


Item = Attribute | Block


@dataclass(frozen=True)
class Document:
    """One parsed .sync file."""

    file: str
    items: tuple[Item, ...]


def describe(value: Value) -> str:
    """What kind of value this is, for error messages ("a string", "a field path", ...)."""
    kinds = {
        StringValue: "a string",
        NumberValue: "a number",
        BoolValue: "a boolean",
        PathValue: "a field path",
        CallValue: "a function call",
        ListValue: "a list",
    }
    return kinds[type(value)]
