"""Syntax errors for people: what the parser expected, worded for the slip that was made.

Lark reports the parser state it failed in; examples of malformed snippets, grouped by state,
name the situation, and `syntax_diagnostic` words the message for it (with `file:line:col`).
"""

from __future__ import annotations

import functools
import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from syncdsl.errors import Diagnostic, Span
from syncdsl.lang.diagnostics import is_token_line, mask_strings
from syncdsl.lang.grammar import BLOCK_TYPES, parser

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


def point(file: str, line: int, column: int, width: int = 1) -> Span:
    return Span(file, line, column, line, column + width)


def syntax_diagnostic(error: UnexpectedInput, text: str, file: str) -> Diagnostic:
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
            return Diagnostic(point(file, line, column), message)
        last = text.rstrip("\n").split("\n")
        return Diagnostic(point(file, len(last), len(last[-1]) + 1), "unexpected end of file")
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
    return Diagnostic(point(file, error.line, column, width), message)


def _character_diagnostic(error: UnexpectedCharacters, text: str, file: str) -> Diagnostic:
    char = error.char
    where = point(file, error.line, error.column)
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


MAX_SYNTAX_ERRORS = 20
_HEADER_SLIPS = ("after_name", "after_two_names", "after_label")


def resume_line(error: UnexpectedInput, text: str) -> int | None:
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
