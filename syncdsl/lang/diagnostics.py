"""Render spec diagnostics for people: `path:line:col: error: message`, the line, a caret."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

from syncdsl.errors import Diagnostic, Span, SpecError

# A token written as a literal must not be echoed back: mask every string on a `token = ...` line.
_TOKEN_LINE = re.compile(r"^\s*token\b")
_STRING = re.compile(r""""([^"\\\n]|\\.)*"?|'([^'\\\n]|\\.)*'?""")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ` (did you mean `x`?)` for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """`a`, `b` or `c`: a readable list of the valid choices."""
    quoted = [f"`{choice}`" for choice in choices]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def is_token_line(line: str) -> bool:
    """True for a `token = ...` line, whose strings may hold a secret."""
    return _TOKEN_LINE.match(line) is not None


def mask_strings(text: str) -> str:
    """Every string literal in `text` with its characters replaced by `*` (same width)."""
    return _STRING.sub(
        lambda m: m.group(0)[0] + "*" * max(len(m.group(0)) - 2, 0) + m.group(0)[0], text
    )


def _display_line(line: str) -> str:
    line = line.rstrip("\r")
    return mask_strings(line) if is_token_line(line) else line


def _caret(line: str, span: Span) -> str:
    start = max(span.column - 1, 0)
    # Keep tabs so the caret lines up under the column in any terminal.
    prefix = "".join(ch if ch == "\t" else " " for ch in line[:start]).ljust(start)
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = min(span.end_column, len(line) + 1) - span.column
    return prefix + "^" + "~" * max(width - 1, 0)


def render_one(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    """One diagnostic; with the source line and a caret when the file text is known."""
    span = diagnostic.span
    message = _LONG_QUOTE.sub(lambda m: m.group(0)[:120] + "...`", diagnostic.message)
    if span.line < 1:
        return f"{span.file}: {diagnostic.severity}: {message}"
    head = f"{span}: {diagnostic.severity}: {message}"
    text = sources.get(span.file)
    if text is None:
        return head
    # Lark counts lines by "\n" only, so split the same way (not str.splitlines).
    lines = text.split("\n")
    if span.line > len(lines):
        return head
    line, span = _window(_display_line(lines[span.line - 1]), span)
    return f"{head}\n{line}\n{_caret(line, span)}"


_LONG_QUOTE = re.compile(r"`[^`]{200,}`")
#: The most of one source line an error shows; a longer line is cut around the caret.
MAX_SHOWN = 160


def _window(line: str, span: Span) -> tuple[str, Span]:
    """The line cut to MAX_SHOWN characters around the span's column, and the span moved along."""
    if len(line) <= MAX_SHOWN:
        return line, span
    start = max(min(span.column - 1 - MAX_SHOWN // 4, len(line) - MAX_SHOWN), 0)
    shown = line[start : start + MAX_SHOWN]
    prefix = "..." if start else ""
    suffix = "..." if start + MAX_SHOWN < len(line) else ""
    shift = start - len(prefix)
    end_column = span.end_column - shift if span.end_line == span.line else span.end_column
    end_column = min(end_column, len(prefix) + len(shown) + 1)
    moved = Span(span.file, span.line, span.column - shift, span.line, end_column)
    return prefix + shown + suffix, moved


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return (span.file, span.line, span.column, diagnostic.message)


def render(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    """Every diagnostic, in file order, ready to print."""
    return "\n".join(render_one(d, sources) for d in sorted(diagnostics, key=sort_key))


def spec_error(diagnostics: list[Diagnostic], sources: Mapping[str, str]) -> SpecError:
    """A SpecError carrying `diagnostics` (sorted) and their rendered text."""
    ordered = sorted(diagnostics, key=sort_key)
    return SpecError(ordered, render(ordered, sources))
