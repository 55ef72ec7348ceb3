"""What one template render may cost: bounded values, loops, calls, output and time.

The sandbox keeps templates from escaping; these limits keep them from exhausting the machine
(`{{ 'x' * 10**9 }}`, `{{ 999 ** 999 ** 999 }}`, `'x'.ljust(10**9)`, nested loops). Operations
that could build something huge from small arguments are checked *before* they run (a width, a
repetition count, an exponent); every render counts its loop iterations and calls and watches a
wall-clock deadline; its output stops at HubSpot's string limit. Crossing a limit raises
`TemplateLimitError`: at run time that rejects the record, at validate time (`check_limits`, a
trial render of the template with no fields) it is a spec error.

Templates are compiled without Jinja's optimizer, which would otherwise evaluate constant
expressions at compile time, before any of these checks could run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from string import Formatter
from typing import Any, cast

from jinja2 import Template, nodes
from jinja2.compiler import Frame
from jinja2.utils import generate_lorem_ipsum

from syncdsl.hubspot.schema import MAX_STRING_LENGTH
from syncdsl.lang.template_values import BoundMethod, ScalarSandbox, _CodeGenerator

#: The most characters a render may output: HubSpot's limit for a string property.
MAX_OUTPUT = MAX_STRING_LENGTH
#: The longest string (characters) or list (items) a template may build on the way.
MAX_VALUE = 1_000_000
#: The largest integer (in bits) a template may compute; a double tops out at 1,024.
MAX_INT_BITS = 4_096
#: The most numbers one `range()` may hold (Jinja's own sandbox allows 100,000).
MAX_RANGE = 10_000
#: Loop iterations plus calls (macros, methods, globals) one render may make.
MAX_STEPS = 100_000
#: Wall-clock time one render may take.
MAX_RENDER_MS = 1_000
#: `lipsum()` paragraphs and words per paragraph.
MAX_LIPSUM_PARAGRAPHS = 20
MAX_LIPSUM_WORDS = 100


#: What a template can make long: measured before an operation that could lengthen it.
_SEQUENCES = (str, bytes, list, tuple)
#: The widest `tojson(indent=...)`: each nesting level of each line repeats it.
MAX_JSON_INDENT = 16


class TemplateLimitError(Exception):
    """A template went over one of the limits; the message says which, as `it ...`."""


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self, steps: int, deadline: float) -> None:
        self.steps = steps
        self.deadline = deadline


_BUDGET: ContextVar[_Budget | None] = ContextVar("syncdsl_template_budget", default=None)


def _spend(budget: _Budget) -> None:
    budget.steps -= 1
    if budget.steps < 0:
        raise TemplateLimitError(f"makes more than {MAX_STEPS:,} loop iterations and calls")
    if time.monotonic() > budget.deadline:
        raise TemplateLimitError(f"took longer than {MAX_RENDER_MS:,} ms")


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        _spend(budget)


def guard_loop(iterable: Iterable[Any]) -> Iterable[Any]:
    """Every `{% for %}` iterates through this: each iteration is a step of the budget."""
    budget = _BUDGET.get()
    if budget is None:
        return iterable
    return _counted(iterable, budget)


def _counted(iterable: Iterable[Any], budget: _Budget) -> Iterator[Any]:
    for item in iterable:
        _spend(budget)
        yield item


def render_limited(template: Template, context: Mapping[str, Any], **extra: Any) -> str:
    """Render within the budget; raises TemplateLimitError past a limit."""
    budget = _Budget(MAX_STEPS, time.monotonic() + MAX_RENDER_MS / 1000)
    token = _BUDGET.set(budget)
    pieces = cast(Generator[str, None, None], template.generate(context, **extra))
    try:
        out: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(f"produced more than {MAX_OUTPUT:,} characters")
            out.append(piece)
        if time.monotonic() > budget.deadline:
            raise TemplateLimitError(f"took longer than {MAX_RENDER_MS:,} ms")
        text = "".join(out)
        if not text.isascii() and not _is_text(text):
            raise TemplateLimitError(
                "makes a lone surrogate (a \\ud800-\\udfff escape), which is not a character"
            )
        return text
    finally:
        pieces.close()
        _BUDGET.reset(token)


def _is_text(text: str) -> bool:
    """Whether `text` is encodable: no lone surrogate, as a string literal's escape can make."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- sizes ----------------------------------------------------------------------------------------


def _too_long(length: int, what: str = "a string") -> TemplateLimitError:
    unit = "items" if what == "a list" else "characters"
    return TemplateLimitError(f"builds {what} of more than {MAX_VALUE:,} {unit}")


def _check_length(length: object, what: str = "a string") -> None:
    if isinstance(length, int) and length > MAX_VALUE:
        raise _too_long(length, what)


def _kind(value: object) -> str:
    return "a string" if isinstance(value, (str, bytes)) else "a list"


def check_size(value: Any) -> Any:
    """`value`, unless it is a string, list or integer over the limits."""
    if isinstance(value, _SEQUENCES):
        if len(value) > MAX_VALUE:
            raise _too_long(len(value), _kind(value))
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"builds a number of more than {MAX_INT_BITS:,} bits")
    return value


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(f"builds a number of more than {MAX_INT_BITS:,} bits")


def _check_width(text: str, what: str) -> None:
    """Refuse a width or precision over MAX_VALUE written in a format spec."""
    for digits in re.findall(r"\d+", text):
        if len(digits) > 7 or int(digits) > MAX_VALUE:
            raise TemplateLimitError(
                f"asks {what} for a width of more than {MAX_VALUE:,} characters"
            )


def _check_arguments(values: Iterable[object], what: str) -> None:
    for value in values:
        if isinstance(value, int) and value > MAX_VALUE:
            raise TemplateLimitError(
                f"asks {what} for a width of more than {MAX_VALUE:,} characters"
            )
        if isinstance(value, str):
            _check_width(value, what)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_percent(fmt: str, args: object) -> None:
    """`fmt % args`: no width or precision over MAX_VALUE, written or taken by `*`."""
    starred = False
    for match in _PERCENT.finditer(fmt):
        for part in match.groups():
            if part == "*":
                starred = True
            elif part:
                _check_width(part, "`%`")
    if starred:
        values = args if isinstance(args, tuple) else (args,)
        _check_arguments(values, "`%`")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    try:
        fields = list(Formatter().parse(fmt))
    except ValueError:
        return  # Python raises the same when it formats
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:  # the width comes from an argument
            _check_arguments((*args, *kwargs.values()), "`format`")
        _check_width(re.sub(r"\{[^}]*\}", "", spec), "`format`")


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _replaced_length(text: str | bytes, old: object, new: object, count: object) -> int:
    if not (type(old) is type(text) is type(new)):  # str with str, bytes with bytes
        return 0  # Python refuses the call itself
    found = cast(Any, text).count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def check_call(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a method call that would build a value over the limits; returns the arguments
    to call with (an iterable given to `join` is read into a list first, to be measured)."""
    owner = getattr(getattr(function, "__wrapped__", function), "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(owner, (str, bytes)):
        if name in ("ljust", "rjust", "center", "zfill"):
            _check_length(_argument(args, kwargs, 0, "width"))
        elif name == "expandtabs":
            tabsize = _argument(args, kwargs, 0, "tabsize")
            if isinstance(tabsize, int):
                tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
                _check_length((tabs + 1) * tabsize + len(owner))
        elif name == "replace":
            old, new = _argument(args, kwargs, 0, "old"), _argument(args, kwargs, 1, "new")
            _check_length(_replaced_length(owner, old, new, _argument(args, kwargs, 2, "count")))
        elif name == "join" and args:
            items = list(args[0])
            strings = sum(len(item) for item in items if isinstance(item, (str, bytes)))
            _check_length(strings + len(owner) * len(items))
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            _check_length(len(owner) * longest)
        elif name in ("format", "format_map") and isinstance(owner, str):
            values = args[0] if name == "format_map" and args else kwargs
            _check_format(owner, args if name == "format" else (), values)
    elif isinstance(owner, list) and name == "extend" and args:
        items = list(args[0])  # read first: it may be a generator over this very list
        _check_length(len(owner) + len(items), "a list")
        return (items, *args[1:])
    return args


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `a * n`, `a ** b`, `a + b` or `s % args` that would build a value too large."""
    if operator == "**":
        integers = type(left) in (int, bool) and type(right) in (int, bool)
        if integers and right > 0 and abs(left) > 1:
            _check_bits(right * left.bit_length())
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            _check_bits(left.bit_length() + right.bit_length())
        elif isinstance(left, _SEQUENCES) and isinstance(right, int):
            _check_length(len(left) * right, _kind(left))
        elif isinstance(right, _SEQUENCES) and isinstance(left, int):
            _check_length(len(right) * left, _kind(right))
    elif operator == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _check_length(len(left) + len(right), _kind(left))
    elif operator == "%" and isinstance(left, (str, bytes)):
        check_percent(left if isinstance(left, str) else left.decode("latin-1"), right)


# -- filters and globals --------------------------------------------------------------------------


def limited_range(*args: int) -> range:
    """`range()` of at most MAX_RANGE numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimitError(f"makes a range of more than {MAX_RANGE:,} numbers")
    return numbers


def limited_lipsum(
    n: int = 5, html: bool = True, min: int = 20, max: int = 100
) -> str:  # Jinja's names
    """`lipsum()` of at most MAX_LIPSUM_PARAGRAPHS paragraphs of MAX_LIPSUM_WORDS words."""
    if isinstance(n, int) and n > MAX_LIPSUM_PARAGRAPHS:
        raise TemplateLimitError(f"asks for more than {MAX_LIPSUM_PARAGRAPHS} lipsum paragraphs")
    if isinstance(max, int) and max > MAX_LIPSUM_WORDS:
        raise TemplateLimitError(
            f"asks for lipsum paragraphs of more than {MAX_LIPSUM_WORDS} words"
        )
    return str(generate_lorem_ipsum(n, html, min, max))


def _lines(text: object) -> int:
    return str(text).count("\n") + 1


#: Pre-checks for the filters that can build much more than they are given: (input, args,
#: kwargs) -> the length of what they would build, checked against MAX_VALUE.
_FILTER_GROWTH: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], object]] = {
    "center": lambda value, args, kwargs: _argument(args, kwargs, 0, "width"),
    "indent": lambda value, args, kwargs: _indent_length(
        value, _argument(args, kwargs, 0, "width")
    ),
    "replace": lambda value, args, kwargs: _replaced_length(
        str(value),
        _argument(args, kwargs, 0, "old"),
        _argument(args, kwargs, 1, "new"),
        _argument(args, kwargs, 2, "count"),
    ),
    "wordwrap": lambda value, args, kwargs: _wrapped_length(
        value, _argument(args, kwargs, 2, "wrapstring")
    ),
    "batch": lambda value, args, kwargs: _argument(args, kwargs, 0, "linecount"),
    "slice": lambda value, args, kwargs: _argument(args, kwargs, 0, "slices"),
    "truncate": lambda value, args, kwargs: len(str(_argument(args, kwargs, 2, "end") or "")),
    "urlize": lambda value, args, kwargs: (
        len(str(value))
        * (1 + len(str(_argument(args, kwargs, 2, "target") or "")))
        * (1 + len(str(_argument(args, kwargs, 3, "rel") or "")))
    ),
    "tojson": lambda value, args, kwargs: _json_indent(_argument(args, kwargs, 0, "indent")),
}


def _json_indent(indent: object) -> int:
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise TemplateLimitError(f"asks `tojson` for an indent of more than {MAX_JSON_INDENT}")
    if isinstance(indent, str) and len(indent) > MAX_JSON_INDENT:
        raise TemplateLimitError(f"asks `tojson` for an indent of more than {MAX_JSON_INDENT}")
    return 0


def _wrapped_length(value: object, wrapstring: object) -> object:
    if not isinstance(wrapstring, str):
        return 0  # the newline: at most doubles the text
    return len(str(value)) * (1 + len(wrapstring))


def _indent_length(value: object, width: object) -> object:
    if isinstance(width, int):
        return len(str(value)) + _lines(value) * width
    if isinstance(width, str):
        return len(str(value)) + _lines(value) * len(width)
    return 0


def _growth_checked(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    growth = _FILTER_GROWTH[name]
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0  # the context Jinja passes first

    what = "a list" if name in ("batch", "slice") else "a string"

    def checked(*args: Any, **kwargs: Any) -> Any:
        value = args[skip] if len(args) > skip else None
        _check_length(growth(value, args[skip + 1 :], kwargs), what)
        return check_size(function(*args, **kwargs))

    if skip:
        checked.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


def _collected(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`join` and `sum`: read the input into a list, and measure it, before combining it."""
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0

    def checked(*args: Any, **kwargs: Any) -> Any:
        head, value, rest = args[:skip], args[skip] if len(args) > skip else (), args[skip + 1 :]
        items = list(value)
        total = sum(len(item) for item in items if isinstance(item, _SEQUENCES))
        if name == "join":
            separator = _argument(rest, kwargs, 0, "d")
            total += len(items) * (len(separator) if isinstance(separator, str) else 0)
        lists = any(isinstance(item, (list, tuple)) for item in items)
        _check_length(total, "a list" if lists else "a string")
        return check_size(function(*head, items, *rest, **kwargs))

    if skip:
        checked.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


def _format_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_percent(str(value), tuple(kwargs.values()) if kwargs else args)
        return check_size(function(value, *args, **kwargs))

    return checked


# -- the environment ------------------------------------------------------------------------------


_GUARD = nodes.EnvironmentAttribute("guard_loop")


class _LimitedCodeGenerator(_CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not (isinstance(node.iter, nodes.Call) and node.iter.node == _GUARD):
            node.iter = nodes.Call(_GUARD, [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if node.node != _GUARD:
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        self.write("environment.guard_loop(")  # ours: called directly, not through the sandbox
        self.visit(node.args[0], frame)
        self.write(")")


class LimitedSandbox(ScalarSandbox):
    """A ScalarSandbox whose renders stay within the limits of this module."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    guard_loop = staticmethod(guard_loop)

    def __init__(self, **options: Any) -> None:
        options.setdefault("optimized", False)  # no constant folding before the checks run
        super().__init__(**options)
        self.globals["range"] = limited_range
        self.globals["lipsum"] = limited_lipsum
        for name in _FILTER_GROWTH:
            self.filters[name] = _growth_checked(name, self.filters[name])
        for name in ("join", "sum"):
            self.filters[name] = _collected(name, self.filters[name])
        self.filters["format"] = _format_checked(self.filters["format"])

    def join_scalars(self, values: tuple[Any, ...]) -> str:
        return str(check_size(super().join_scalars(values)))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        function = __obj.function if isinstance(__obj, BoundMethod) else __obj
        args = check_call(function, args, kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        check_binop(operator_name, left, right)
        return check_size(super().call_binop(context, operator_name, left, right))


def check_limits(environment: LimitedSandbox, source: str) -> str | None:
    """A trial render with no fields: the limit it goes over (`it ...`), or None.

    Any other failure is left to run time, where real records give the template its values.
    """
    try:
        template = environment.from_string(source)
        render_limited(template, {"record": {}})
    except TemplateLimitError as error:
        return str(error)
    except Exception:  # noqa: BLE001 - any other failure is judged per record, at run time
        return None
    return None
