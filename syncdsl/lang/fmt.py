"""Canonical layout of .sync files (`syncdsl fmt`), keeping every comment.

The rules, like `terraform fmt`:
- two spaces of indent per block level; one item per line; `map { a = b }` opens onto lines;
- at the top level, exactly one blank line between items (a comment just above an item stays
  attached to it); inside a block, blank lines are kept but never more than one in a row, and
  never just after `{` or just before `}`;
- the `=` of consecutive `name = value` lines line up; a blank line, a block or a qualified
  attribute (`identity email = ...`) starts a new run;
- full-line comments keep their place, re-indented; a trailing comment keeps its column (so
  hand-aligned comment columns survive) unless the code now reaches it, then it moves to one
  space after the code;
- strings, numbers and names are written exactly as they were; a list written over several lines
  stays one element per line with a trailing comma, a one-line list stays on one line.
The result is idempotent, and `format_text` checks that it means the same as its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Token, Tree

from syncdsl.errors import Diagnostic, Span, SpecError
from syncdsl.lang.parse import parse_tree, paused_gc, tree_document
from syncdsl.lang.syntax import Attribute, Block, Document, Item, ListValue, Value

INDENT = "  "


@dataclass
class _Line:
    depth: int
    code: str = ""
    key: str | None = None  # set for `key = value` lines: the `=` is aligned within `group`
    group: int | None = None
    comment: str | None = None
    comment_column: int = 0  # 0-based column of the comment as written
    blank: bool = False


@dataclass(frozen=True)
class _Gap:
    """What a NL token held: the comment closing the previous line, then blank and comment lines."""

    trailing: str | None
    trailing_column: int
    lines: tuple[str | None, ...]  # None is a blank line, a string a full-line comment


def _gap(token: Token) -> _Gap:
    segments = token.value.split("\n")
    first = segments[0].rstrip()
    lines: list[str | None] = []
    for segment in segments[1:-1]:
        text = segment.strip()
        lines.append(text if text else None)
    return _Gap(first or None, (token.column or 1) - 1, tuple(lines))


def _is_nl(child: Any) -> bool:
    return isinstance(child, Token) and child.type == "NL"


class _Printer:
    """Walks Lark's concrete tree (NL tokens included) and lays out lines."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []
        self._groups = 0

    def _new_group(self) -> int:
        self._groups += 1
        return self._groups

    def _comment(self, depth: int, text: str) -> None:
        self.lines.append(_Line(depth, code=text))

    def _blank(self) -> None:
        if self.lines and not self.lines[-1].blank:
            self.lines.append(_Line(0, blank=True))

    def _attach(self, gap: _Gap, pending: list[str | None]) -> None:
        if gap.trailing is None:
            return
        if self.lines and not self.lines[-1].blank and self.lines[-1].comment is None:
            self.lines[-1].comment = gap.trailing
            self.lines[-1].comment_column = gap.trailing_column
        else:  # nothing on its line to trail (the start of the file): a full-line comment
            pending.append(gap.trailing)

    def sequence(self, children: list[Any], depth: int, *, top: bool, element: Any) -> None:
        """Lay out a body (or a list's elements): items, with the comments and blanks between."""
        pending: list[str | None] = []
        started = False
        group = self._new_group()
        for child in children:
            if _is_nl(child):
                gap = _gap(child)
                self._attach(gap, pending)
                pending.extend(gap.lines)
                continue
            if self._between(pending, depth, first=not started, top=top, closing=False):
                group = self._new_group()
            pending = []
            group = element(child, depth, group)
            started = True
        self._between(pending, depth, first=not started, top=top, closing=True)

    def _between(
        self, pending: list[str | None], depth: int, *, first: bool, top: bool, closing: bool
    ) -> bool:
        """Emit the comment and blank lines between two items; True if a blank line was kept."""
        events: list[str | None] = []
        for line in pending:
            if line is not None or (events and events[-1] is not None):
                events.append(line)  # drops leading blanks and collapses runs of them
        if pending and pending[0] is None and not first:
            events.insert(0, None)
        if top and not first and not closing and (not events or events[0] is not None):
            events.insert(0, None)  # exactly one blank line between top-level items
        while closing and events and events[-1] is None:
            events.pop()
        for line in events:
            if line is None:
                self._blank()
            else:
                self._comment(depth, line)
        return None in events

    def item(self, tree: Tree[Token], depth: int, group: int) -> int:
        if tree.data == "block":
            self.block(tree, depth)
            return self._new_group()
        return self.attribute(tree, depth, group)

    def block(self, tree: Tree[Token], depth: int) -> None:
        kind, *rest = tree.children
        header = str(kind)
        if rest and isinstance(rest[0], Token) and rest[0].type != "NL":
            header += f" {rest[0]}"
            rest = rest[1:]
        if not any(map(_has_content, rest)):
            self.lines.append(_Line(depth, code=header + " {}"))
            return
        self.lines.append(_Line(depth, code=header + " {"))
        self.sequence(rest, depth + 1, top=False, element=self.item)
        while self.lines and self.lines[-1].blank:
            self.lines.pop()
        self.lines.append(_Line(depth, code="}"))

    def attribute(self, tree: Tree[Token], depth: int, group: int) -> int:
        name, *middle, value = tree.children
        key = " ".join(str(part) for part in [name, *middle] if part is not None)
        aligned = len(middle) == 0
        if not aligned:
            group = self._new_group()
        line = _Line(depth, key=key, group=group)
        self.lines.append(line)
        if isinstance(value, Tree) and _multiline(value):
            line.code = "["
            self.sequence(value.children, depth + 1, top=False, element=self.list_element)
            self.lines.append(_Line(depth, code="]"))
            return self._new_group()
        line.code = _inline(value)
        return self._new_group() if not aligned else group

    def list_element(self, tree: Any, depth: int, group: int) -> int:
        if _multiline(tree):
            self.lines.append(_Line(depth, code="["))
            self.sequence(tree.children, depth + 1, top=False, element=self.list_element)
            self.lines.append(_Line(depth, code="],"))
        else:
            self.lines.append(_Line(depth, code=_inline(tree) + ","))
        return group


def _has_content(child: Any) -> bool:
    if not _is_nl(child):
        return True
    gap = _gap(child)
    return gap.trailing is not None or any(line is not None for line in gap.lines)


def _multiline(value: Any) -> bool:
    return isinstance(value, Tree) and value.data == "list" and any(map(_is_nl, value.children))


def _inline(value: Any) -> str:
    if isinstance(value, Token):
        return str(value)
    kind = value.data
    if kind in ("string", "number"):
        return str(value.children[0])
    if kind in ("true", "false"):
        return str(kind)
    if kind == "path":
        text = ""
        for part in value.children:
            text += str(part) if part.type == "INDEX" or not text else f".{part}"
        return text
    elements = [_inline(child) for child in value.children if not _is_nl(child)]
    if kind == "call":
        return f"{elements[0]}({', '.join(elements[1:])})"
    return "[" + ", ".join(elements) + "]"


def _render(lines: list[_Line]) -> str:
    widths: dict[int, int] = {}
    for line in lines:
        if line.key is not None and line.group is not None:
            widths[line.group] = max(widths.get(line.group, 0), len(line.key))
    while lines and lines[-1].blank:
        lines.pop()
    out: list[str] = []
    for line in lines:
        if line.blank:
            out.append("")
            continue
        code = INDENT * line.depth
        if line.key is not None:
            width = (
                widths.get(line.group, len(line.key)) if line.group is not None else len(line.key)
            )
            code += f"{line.key.ljust(width)} = {line.code}"
        else:
            code += line.code
        if line.comment is not None:
            column = max(line.comment_column, len(code) + 1)
            code = code.ljust(column) + line.comment
        out.append(code)
    return "\n".join(out) + "\n" if out else ""


def _comments(tree: Tree[Token]) -> list[str]:
    found: list[str] = []
    for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "NL"):
        gap = _gap(token)
        found.extend(line for line in (gap.trailing, *gap.lines) if line)
    return found


def _shape(document: Document) -> Any:
    """A document without positions, to compare meaning before and after formatting."""

    def value(node: Value) -> Any:
        if isinstance(node, ListValue):
            return ("list", tuple(value(v) for v in node.items))
        fields = {k: v for k, v in vars(node).items() if k != "span"}
        if "args" in fields:
            fields["args"] = tuple(value(v) for v in fields["args"])
        return (type(node).__name__, tuple(sorted(fields.items())))

    def item(node: Item) -> Any:
        if isinstance(node, Attribute):
            return ("attribute", node.name, node.qualifier, value(node.value))
        assert isinstance(node, Block)
        return ("block", node.type, node.label, node.label_quoted, tuple(map(item, node.items)))

    return tuple(map(item, document.items))


def format_text(text: str, file: str = "<text>") -> str:
    """The canonical layout of one file's text; SpecError if it does not parse."""
    text = text.removeprefix("\ufeff")
    with paused_gc():  # every object made here is acyclic and lives until the end (see paused_gc)
        tree = parse_tree(text, file)
        before = _shape(tree_document(tree, text, file))
        printer = _Printer()
        printer.sequence(list(tree.children), 0, top=True, element=printer.item)
        formatted = _render(printer.lines)
        # A formatter must never change meaning or drop a comment; refuse rather than corrupt.
        # Each text is parsed once: its tree gives both its meaning and its comments.
        after = parse_tree(formatted, file)
        same = before == _shape(tree_document(after, formatted, file))
        kept = _comments(tree) == _comments(after)
    if not same or not kept:
        span = Span(file, 0, 0, 0, 0)
        message = "fmt cannot lay out this file without changing it; please report this file"
        raise SpecError([Diagnostic(span, message)])
    return formatted
