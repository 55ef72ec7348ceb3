"""Parse one `.sync` text: Lark (LALR) -> concrete tree -> syntax nodes (`syncdsl.lang.syntax`).

On a syntax error the slip is worded by `syntax_errors`, and parsing resumes after it so that one
run reports several. `load` reads files and validates; `grammar` holds the parser."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError
from lark.tree import Meta

from syncdsl.errors import Diagnostic, Span
from syncdsl.lang.diagnostics import spec_error
from syncdsl.lang.grammar import parser
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    BoolValue,
    CallValue,
    Document,
    Item,
    ListValue,
    NumberValue,
    PathValue,
    StringValue,
    Value,
)
from syncdsl.lang.syntax_errors import MAX_SYNTAX_ERRORS, point, resume_line, syntax_diagnostic

#: Blocks, lists and calls nest at most this deep (deeper nesting is refused with its place).
MAX_NESTING = 50
#: The longest line a .sync file may hold: room for HubSpot's longest value (65,536 characters);
#: longer lines are refused before parsing, which keeps memory bounded.
MAX_LINE = 70_000


def _too_deep(text: str, file: str) -> Diagnostic | None:
    """The first line over MAX_LINE or bracket opened beyond MAX_NESTING, as a diagnostic."""
    depth = 0
    for line_no, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE:
            message = f"line too long ({len(line):,} characters; at most {MAX_LINE:,})"
            return Diagnostic(point(file, line_no, MAX_LINE + 1), message)
        for match in re.finditer(r'"([^"\\\n]|\\.)*"|`[^`\n]*`|(#|//).*|[{}\[\]()]', line):
            char = match.group(0)
            if char in "{[(":
                depth += 1
                if depth > MAX_NESTING:
                    message = f"blocks and lists nest at most {MAX_NESTING} deep"
                    return Diagnostic(point(file, line_no, match.start() + 1), message)
            elif char in "}])":
                depth = max(depth - 1, 0)
    return None


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parse builds its (acyclic) tree.

    A tree of N lines is ~10 N objects that all survive; each full collection walks them all, and
    the bigger the file the more of them run, so with the collector on a parse grows faster than
    the file (about 2.5x the time for 2x the audiences, issue 13). Nothing is leaked: the collector
    runs again, as it was, when the parse ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_tree(text: str, file: str) -> Tree[Token]:
    """Parse `text` into Lark's concrete tree (NL tokens keep the comments); SpecError if invalid.

    After a syntax error on a self-contained line, that line is blanked and parsing resumes, so
    one run reports several independent slips.
    """
    deep = _too_deep(text, file)
    if deep is not None:
        raise spec_error([deep], {file: text})
    diagnostics: list[Diagnostic] = []
    attempt = text
    blanked: set[int] = set()
    while len(diagnostics) < MAX_SYNTAX_ERRORS:
        try:
            with paused_gc():
                tree = parser().parse(_prepare(attempt))
        except UnexpectedInput as error:
            diagnostics.append(syntax_diagnostic(error, attempt, file))
            line = resume_line(error, attempt)
            if line is None or line in blanked:
                break
            blanked.add(line)
            lines = attempt.split("\n")
            lines[line - 1] = ""
            attempt = "\n".join(lines)
        except RecursionError:
            diagnostics.append(Diagnostic(point(file, 1, 1), "the file nests too deeply to parse"))
            break
        else:
            if not diagnostics:
                return tree
            break
    raise spec_error(diagnostics, {file: text})


def _prepare(text: str) -> str:
    # Every item ends with a new line; make sure the last one has one.
    return text if text.endswith("\n") else text + "\n"


# --- tree -> syntax nodes ------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r"}


class _ToSyntax(Transformer[Token, Any]):
    """Lark tree -> syntax dataclasses; bad string escapes become diagnostics, not exceptions."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    def _span(self, meta: Meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> Span:
        assert token.line is not None and token.column is not None
        end_line = token.end_line if token.end_line is not None else token.line
        end_column = token.end_column if token.end_column is not None else token.column + 1
        return Span(self.file, token.line, token.column, end_line, end_column)

    def _unescape(self, token: Token) -> str:
        raw = token.value[1:-1]

        def replace(match: re.Match[str]) -> str:
            escape = match.group(1)
            if escape.startswith("u") and len(escape) == 5:
                return chr(int(escape[1:], 16))
            if escape in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[escape]
            column = (token.column or 1) + 1 + match.start()
            span = point(self.file, token.line or 1, column, 2)
            self.diagnostics.append(
                Diagnostic(
                    span, f'unknown escape `\\{escape}` in string; use \\" \\\\ \\n \\t or \\uXXXX'
                )
            )
            return escape

        decoded = _ESCAPE.sub(replace, raw)
        try:  # join \uD83D\uDE00-style surrogate pairs into one character
            return decoded.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            message = "invalid \\u escape: a lone surrogate is not a character"
            self.diagnostics.append(Diagnostic(self._token_span(token), message))
            return decoded.encode("utf-8", "replace").decode("utf-8")

    @v_args(meta=True)
    def start(self, meta: Meta, children: list[Any]) -> tuple[Item, ...]:
        return tuple(child for child in children if not isinstance(child, Token))

    @v_args(meta=True)
    def block(self, meta: Meta, children: list[Any]) -> Block:
        kind = children[0]
        label: Token | None = None
        if len(children) > 1 and isinstance(children[1], Token) and children[1].type != "NL":
            label = children[1]
        items = tuple(child for child in children[1:] if not isinstance(child, Token))
        label_text: str | None = None
        if label is not None:
            label_text = self._unescape(label) if label.type == "STRING" else str(label)
        return Block(
            type=str(kind),
            label=label_text,
            label_quoted=label is not None and label.type == "STRING",
            items=items,
            span=self._span(meta),
            type_span=self._token_span(kind),
            label_span=self._token_span(label) if label is not None else None,
        )

    @v_args(meta=True)
    def attribute(self, meta: Meta, children: list[Any]) -> Attribute:
        name, *middle, value = children
        qualifier: Token | None = middle[0] if middle else None
        return Attribute(
            name=str(name),
            qualifier=str(qualifier) if qualifier is not None else None,
            value=value,
            span=self._span(meta),
            name_span=self._token_span(name),
            qualifier_span=self._token_span(qualifier) if qualifier is not None else None,
        )

    @v_args(meta=True)
    def string(self, meta: Meta, children: list[Token]) -> StringValue:
        return StringValue(self._unescape(children[0]), self._span(meta))

    @v_args(meta=True)
    def number(self, meta: Meta, children: list[Token]) -> NumberValue:
        raw = str(children[0])
        value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        return NumberValue(value, self._span(meta))

    @v_args(meta=True)
    def true(self, meta: Meta, children: list[Token]) -> BoolValue:
        return BoolValue(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta: Meta, children: list[Token]) -> BoolValue:
        return BoolValue(False, self._span(meta))

    @v_args(meta=True)
    def path(self, meta: Meta, children: list[Token]) -> PathValue:
        parts = tuple(
            int(part[1:-1])
            if part.type == "INDEX"
            else part[1:-1]
            if part.type == "QUOTED_NAME"
            else str(part)
            for part in children
        )
        return PathValue(parts, self._span(meta))

    @v_args(meta=True)
    def call(self, meta: Meta, children: list[Any]) -> CallValue:
        name, *args = children
        return CallValue(str(name), tuple(args), self._span(meta))

    @v_args(meta=True)
    def list(self, meta: Meta, children: list[Any]) -> ListValue:
        items: tuple[Value, ...] = tuple(c for c in children if not isinstance(c, Token))
        return ListValue(items, self._span(meta))


def parse_text(text: str, file: str) -> Document:
    """Parse one file's text into its syntax tree; SpecError lists every syntax problem found."""
    text = text.removeprefix("\ufeff")
    return tree_document(parse_tree(text, file), text, file)


def tree_document(tree: Tree[Token], text: str, file: str) -> Document:
    """The syntax tree of `text` from its already parsed Lark tree (`parse_tree`); SpecError for a
    bad string escape."""
    transformer = _ToSyntax(file)
    try:
        with paused_gc():
            items = transformer.transform(tree)
    except VisitError as error:  # our transformer does not raise on purpose; never show Lark's
        raise error.orig_exc from None
    except RecursionError:
        items = ()
        transformer.diagnostics.append(
            Diagnostic(point(file, 1, 1), "the file nests too deeply to parse")
        )
    if transformer.diagnostics:
        raise spec_error(transformer.diagnostics, {file: text})
    return Document(file=file, items=items)
