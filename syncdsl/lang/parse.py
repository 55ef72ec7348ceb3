"""Parse .sync files: Lark (LALR) text -> syntax tree -> validated IR, with readable syntax errors."""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta

from syncdsl.errors import Diagnostic, Span, SpecError
from syncdsl.lang.diagnostics import is_token_line, mask_strings, spec_error
from syncdsl.lang.ir import Spec
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

#: Block types the language knows; syntax messages use them to guess what was meant.
BLOCK_TYPES = ("destination", "source", "audience", "property", "map")

_REPO_GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "sync.lark"


def _grammar_text() -> str:
    # Wheels carry the grammar inside the package (hatch force-include); editable installs and
    # source checkouts read it from the repository's grammar/ directory.
    packaged = resources.files("syncdsl") / "grammar" / "sync.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return _REPO_GRAMMAR.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    """The .sync parser, built once per process."""
    return Lark(_grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False)


# --- syntax errors -------------------------------------------------------------------------------

# Malformed snippets, grouped by the parser state they fail in; `match_examples` finds the group
# whose state matches the user's error, and `_friendly` words the message for that situation.
_EXAMPLES: dict[str, list[str]] = {
    "after_name": [
        "tier 1\n",
        "tier\n",
        "x {\n  tier 1\n}\n",
        "x { tier 1 }\n",
        "x {\n  y = 1\n  tier\n}\n",
    ],
    "after_two_names": [
        "source profiles\n{\n}\n",
        "x {\n  firstname person.name\n}\n",
        "x {\n  identity email Email\n}\n",
        "x {\n  a b 1\n}\n",
    ],
    "after_label": [
        'tier "free"\n',
        'x {\n  tier "free"\n}\n',
        'x {\n  y = 1\n  tier "free"\n}\n',
    ],
    "after_equals": ["a =\n", "x {\n  a =\n}\n", "x {\n  a = }\n", "a = {\n}\n"],
    "after_value": [
        'a = "x" y\n',
        "a = 1 y\n",
        "a = b y\n",
        "a = b.c y\n",
        "a = f() y\n",
        "a = [] y\n",
        "a = true y\n",
        "a = false y\n",
        "a = `x` y\n",
        'x {\n  a = "x" y\n}\n',
        "x {\n  a = b y\n}\n",
    ],
    "item_start": [
        "}\n",
        "x {\n}\n}\n",
        "= 1\n",
        "x {\n  = 1\n}\n",
        '"a" = 1\n',
        "x {\n  y = 1\n  = 2\n}\n",
    ],
    "after_block": ["x {\n} y = 1\n", "x {\n  y {\n  } z = 1\n}\n"],
    "after_dot": ["a = b.\n", "a = b.1\n"],
    "in_list": ["a = [1 2]\n", "a = [1, 2\n", "a = [\n1\n2]\n", "a = [, ]\n"],
    "in_call": ['a = env("X"\n', "a = env(\n", 'a = env("X" "Y")\n'],
}

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "QUOTED_NAME": "a `backticked` name",
    "NL": "a new line",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "EQUAL": "`=`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "$END": "the end of the file",
}


def _state_number(error: UnexpectedInput) -> int | None:
    state = getattr(error, "state", None)
    return getattr(state, "position", state if isinstance(state, int) else None)


@functools.lru_cache(maxsize=1)
def _labels_by_state() -> dict[int, str]:
    """LR state -> example label. Lark 1.3's match_examples compares whole parser stacks, so the
    same slip one block deeper would not match; the LR state alone does."""
    labels: dict[int, str] = {}
    for label, examples in _EXAMPLES.items():
        for example in examples:
            try:
                parser().parse(example)
            except UnexpectedToken as error:
                number = _state_number(error)
                if number is not None:
                    labels.setdefault(number, label)
    return labels


def _label_from_accepts(accepts: set[str]) -> str | None:
    if {"EQUAL", "LBRACE"} <= accepts:
        return "after_name" if "STRING" in accepts else "after_two_names"
    if accepts == {"LBRACE"}:
        return "after_label"
    if {"NUMBER", "TRUE"} <= accepts:
        return "after_equals"
    if "NL" in accepts and "NAME" not in accepts:
        return "after_value"
    if "NAME" in accepts and accepts & {"RBRACE", "$END"}:
        return "item_start"
    if accepts and accepts <= {"NAME", "QUOTED_NAME"}:
        return "after_dot"
    return None


def _label(error: UnexpectedToken, text: str) -> str | None:
    """Which common slip this is: by bracket context, then by example, then by what was expected."""
    lines = text.split("\n")
    before = "\n".join([*lines[: error.line - 1], lines[error.line - 1][: error.column - 1]])
    opened = _unclosed(before)
    if opened is not None and opened[2] in "[(":
        return "in_list" if opened[2] == "[" else "in_call"
    try:
        label = error.match_examples(parser().parse, _EXAMPLES, use_accepts=True)
    except TypeError:  # Lark 1.3 formats a ParserState with %d in a debug message
        label = None
    if label is None:
        number = _state_number(error)
        label = _labels_by_state().get(number) if number is not None else None
    return label or _label_from_accepts(set(error.accepts or error.expected))


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    if token.type == "NL":
        return (
            "a comment" if token.value.lstrip().startswith(("#", "//")) else "the end of the line"
        )
    return f"`{token.value}`" if "`" not in token.value else f"'{token.value}'"


def _expected(error: UnexpectedToken) -> str:
    words = sorted(
        {_TERMINAL_WORDS.get(name, f"`{name}`") for name in error.accepts or error.expected}
    )
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _line_words(text: str, line: int, column: int) -> list[str]:
    lines = text.split("\n")
    before = lines[line - 1][: column - 1] if 0 < line <= len(lines) else ""
    return before.split()


def _friendly(label: str | None, error: UnexpectedToken, text: str) -> str:
    token = error.token
    found = _describe_token(token)
    words = _line_words(text, error.line, error.column)
    head = " ".join(words)
    first = words[0] if words else ""
    if label == "after_name" and first:
        if first in BLOCK_TYPES:
            return f"expected `{{` after `{head}` (a block opens on the same line)"
        return f"missing `=` after `{first}`: write `{first} = VALUE`"
    if label == "after_two_names" and len(words) >= 2:
        if first == "identity":
            return f"expected `=` after `{head}`: write `identity email = FIELD`"
        if first in BLOCK_TYPES:
            return f"expected `{{` after `{head}` (a block opens on the same line)"
        return f"missing `=` between `{first}` and `{words[1]}`"
    if label == "after_label" and first:
        if first in BLOCK_TYPES:
            return f"expected `{{` after `{head}` (a block opens on the same line)"
        return f"missing `=` after `{first}`: write `{first} = {' '.join(words[1:])}`"
    if label == "after_equals":
        if token.type == "LBRACE":
            name = first or "name"
            return f"a block takes no `=`: write `{name} {{`"
        return f"missing value after `=`, found {found}"
    if label in ("after_value", "after_block"):
        if token.type == "RBRACE":
            return "unmatched `}`: there is no open block to close"
        if token.type == "COMMA":
            return "unexpected `,`: attributes are separated by new lines, not commas"
        return f"expected a new line before {found}: write one attribute or block per line"
    if label == "item_start":
        if token.type == "RBRACE":
            return "unmatched `}`: there is no open block to close"
        return f"expected an attribute or block name, found {found}"
    if label == "after_dot":
        return f"expected a field name after `.`, found {found} (backtick names like `Zip Code`)"
    if label == "in_list":
        return f"unexpected {found} in the list: separate values with `,` and close it with `]`"
    if label == "in_call":
        return f'unexpected {found} in the call: write `env("VARIABLE")`'
    return f"unexpected {found}; expected {_expected(error)}"


def _unclosed(text: str) -> tuple[int, int, str] | None:
    """The innermost bracket still open at the end of `text`: (line, column, char)."""
    stack: list[tuple[int, int, str]] = []
    closing = {"}": "{", "]": "[", ")": "("}
    line_no = 1
    for line in text.split("\n"):
        for match in re.finditer(r'"([^"\\\n]|\\.)*"|`[^`\n]*`|(#|//).*|[{}\[\]()]', line):
            char = match.group(0)
            if char in "{[(":
                stack.append((line_no, match.start() + 1, char))
            elif char in closing and stack and stack[-1][2] == closing[char]:
                stack.pop()
        line_no += 1
    return stack[-1] if stack else None


def _point(file: str, line: int, column: int, width: int = 1) -> Span:
    return Span(file, line, column, line, column + width)


def _syntax_diagnostic(error: UnexpectedInput, text: str, file: str) -> Diagnostic:
    diagnostic = _describe_syntax_error(error, text, file)
    lines = text.split("\n")
    on_token_line = 0 < diagnostic.span.line <= len(lines) and is_token_line(
        lines[diagnostic.span.line - 1]
    )
    if isinstance(error, UnexpectedToken) and on_token_line:
        # Never echo what may be a literal token back to the terminal.
        return Diagnostic(diagnostic.span, mask_strings(diagnostic.message))
    return diagnostic


def _describe_syntax_error(error: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(error, UnexpectedCharacters):
        return _character_diagnostic(error, text, file)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    if token.type == "$END":
        opened = _unclosed(text)
        if opened is not None:
            line, column, char = opened
            pair = {"{": "}", "[": "]", "(": ")"}[char]
            what = {"{": "block", "[": "list", "(": "call"}[char]
            message = f"unclosed `{char}`: this {what} is never closed with `{pair}`"
            return Diagnostic(_point(file, line, column), message)
        last = text.rstrip("\n").split("\n")
        return Diagnostic(_point(file, len(last), len(last[-1]) + 1), "unexpected end of file")
    label = _label(error, text)
    message = _friendly(label, error, text)
    width = max(len(token.value), 1) if token.type != "NL" else 1
    column = error.column
    words = _line_words(text, error.line, error.column)
    if message.startswith("missing `=` between") and len(words) >= 2:
        # The caret goes where `=` belongs: under the word that should follow it.
        source_line = text.split("\n")[error.line - 1]
        after_first = source_line.index(words[0]) + len(words[0])
        column = source_line.index(words[1], after_first) + 1
        width = len(words[1])
    return Diagnostic(_point(file, error.line, column, width), message)


def _character_diagnostic(error: UnexpectedCharacters, text: str, file: str) -> Diagnostic:
    char = error.char
    where = _point(file, error.line, error.column)
    if char == '"':
        message = 'unclosed string: a string ends with `"` on the same line'
    elif char == "'":
        message = "strings use double quotes (\"), not single quotes (')"
    elif char == "`":
        message = "unclosed backtick name: write `Column Name` on one line"
    elif char == ":":
        message = "unexpected `:`: attributes are written `name = value`"
    elif char == "\r":
        message = "stray carriage return (\\r): save the file with plain \\n or \\r\\n line ends"
    elif char.isprintable() and not char.isspace():
        message = f"unexpected character `{char}`"
    else:
        message = f"unexpected character {char!r}"
    return Diagnostic(where, message)


_MAX_SYNTAX_ERRORS = 20
_HEADER_SLIPS = ("after_name", "after_two_names", "after_label")


def _resume_line(error: UnexpectedInput, text: str) -> int | None:
    """The line to blank out so parsing can go on to later errors, or None when that would only
    report consequences of this one (brackets, end of file, a block header split over lines)."""
    if isinstance(error, UnexpectedToken):
        if error.token.type in ("$END", "LBRACE", "RBRACE"):
            return None
        words = _line_words(text, error.line, error.column)
        header = bool(words) and words[0] in BLOCK_TYPES
        if error.token.type == "NL" and header and _label(error, text) in _HEADER_SLIPS:
            return None
    lines = text.split("\n")
    if not 0 < error.line <= len(lines):
        return None
    brackets = re.sub(r'"([^"\\\n]|\\.)*"|`[^`\n]*`|(#|//).*', "", lines[error.line - 1])
    if any(brackets.count(o) != brackets.count(c) for o, c in ("{}", "[]", "()")):
        return None
    return int(error.line)


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
            return Diagnostic(_point(file, line_no, MAX_LINE + 1), message)
        for match in re.finditer(r'"([^"\\\n]|\\.)*"|`[^`\n]*`|(#|//).*|[{}\[\]()]', line):
            char = match.group(0)
            if char in "{[(":
                depth += 1
                if depth > MAX_NESTING:
                    message = f"blocks and lists nest at most {MAX_NESTING} deep"
                    return Diagnostic(_point(file, line_no, match.start() + 1), message)
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
    while len(diagnostics) < _MAX_SYNTAX_ERRORS:
        try:
            with paused_gc():
                tree = parser().parse(_prepare(attempt))
        except UnexpectedInput as error:
            diagnostics.append(_syntax_diagnostic(error, attempt, file))
            line = _resume_line(error, attempt)
            if line is None or line in blanked:
                break
            blanked.add(line)
            lines = attempt.split("\n")
            lines[line - 1] = ""
            attempt = "\n".join(lines)
        except RecursionError:
            diagnostics.append(Diagnostic(_point(file, 1, 1), "the file nests too deeply to parse"))
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
            span = _point(self.file, token.line or 1, column, 2)
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
        parts = tuple(part[1:-1] if part.type == "QUOTED_NAME" else str(part) for part in children)
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
            Diagnostic(_point(file, 1, 1), "the file nests too deeply to parse")
        )
    if transformer.diagnostics:
        raise spec_error(transformer.diagnostics, {file: text})
    return Document(file=file, items=items)


# --- files -> Spec -------------------------------------------------------------------------------


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
    raise spec_error([Diagnostic(_point(file, line, column), message)], {file: text})


def load_spec(paths: list[Path], *, data_root: Path | None = None) -> Spec:
    """Parse and validate one configuration (files, or a directory of .sync files) into a Spec.

    Data files must lie inside the configuration's directory, or inside `data_root` (the
    operator's `--data-root`) when given.

    Raises:
        SpecError: with every problem found (syntax errors in any file, then meaning) rendered.
    """
    from syncdsl.lang.validate import build_spec  # validate builds on parse's output

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
