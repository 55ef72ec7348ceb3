"""What a template may turn into text: single values only, never a Python repr.

A dict or a list reaching a template's output (`{{ address }}`), a `~` concatenation or a string
filter (`| title`) would otherwise be sent to HubSpot as `{'a': 1}`, and an attribute that a
string lacks but has as a method (`{{ job.title }}` on `"CTO at Acme"`) as
`<built-in method title of str object at 0x…>`. Here each of them raises `TemplateValueError`,
which rejects the record. Containers stay usable through the filters made for them
(`{{ tags | join(', ') }}`, `| length`, `| first`, `| tojson`), and methods can still be called
(`{{ name.upper() }}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Undefined
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import SandboxedEnvironment

#: Filters that turn their input into text: a container or a method given to them is refused.
TEXT_FILTERS = (
    "capitalize",
    "center",
    "e",
    "escape",
    "forceescape",
    "indent",
    "lower",
    "replace",
    "safe",
    "string",
    "striptags",
    "title",
    "trim",
    "truncate",
    "upper",
    "urlize",
    "wordwrap",
)
_SCALARS = (str, int, float, type(None))  # bool is an int


class TemplateValueError(Exception):
    """A template made text of something that is not a single value; the message says what."""


def describe(value: object) -> str:
    """'an object', 'a list', 'a method'... for people."""
    if isinstance(value, BoundMethod):
        return f"the method {value.owner}.{value.name}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def check_scalar(value: Any) -> Any:
    """`value` when it is a single value (or undefined); raises TemplateValueError otherwise."""
    if isinstance(value, (*_SCALARS, Undefined)):
        return value
    if isinstance(value, BoundMethod):
        raise TemplateValueError(str(value._refusal()))
    raise TemplateValueError(
        f"{describe(value)} would be printed, not a single value (join a list with "
        "`| join(', ')`, pick one field of an object with `.name`)"
    )


def finalize(value: Any) -> Any:
    """The environment's `finalize`: JSON null renders empty, non-scalars are refused."""
    if value is None:
        return ""
    return check_scalar(value)


class BoundMethod:
    """A method reached by attribute access (`job.title`): it can be called, never printed."""

    __slots__ = ("function", "name", "owner")

    def __init__(self, function: Callable[..., Any], owner: str, name: str) -> None:
        self.function = function
        self.owner = owner
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # The sandbox's markers (unsafe_callable, alters_data, jinja_pass_arg) are the method's.
        if name in BoundMethod.__slots__:
            raise AttributeError(name)
        return getattr(self.function, name)

    def _refusal(self) -> TemplateValueError:
        return TemplateValueError(
            f"{self.name!r} is a method of {self.owner}, not a value: the record has no field "
            f"{self.name!r} there (call it with `{self.name}()` if that was meant)"
        )

    def __str__(self) -> str:
        raise self._refusal()

    def __repr__(self) -> str:
        return f"<method {self.name} of {self.owner}>"

    def __format__(self, spec: str) -> str:
        raise self._refusal()


def _text_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` refusing a container or a method as its input (after any Jinja context)."""
    if not hasattr(function, "jinja_pass_arg"):

        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            return function(check_scalar(value), *args, **kwargs)

        return checked

    def checked_with_context(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        return function(context, check_scalar(value), *args, **kwargs)

    checked_with_context.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return checked_with_context


def join_scalars(values: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`, refusing a container or a method among them."""
    return "".join(str(check_scalar(value)) for value in values)


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)  # autoescape blocks keep Jinja's Markup join
            return
        self.write("environment.join_scalars((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class ScalarSandbox(SandboxedEnvironment):
    """A sandbox whose templates only ever print single values (see the module docstring)."""

    code_generator_class = _CodeGenerator
    join_scalars = staticmethod(join_scalars)

    def __init__(self, **options: Any) -> None:
        options.setdefault("finalize", finalize)
        super().__init__(**options)
        for name in TEXT_FILTERS:
            self.filters[name] = _text_filter(self.filters[name])

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # The sandbox judges the method itself, never the wrapper.
        if isinstance(__obj, BoundMethod):
            __obj = __obj.function
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return _bound(super().getattr(obj, attribute), obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return _bound(value, obj, argument) if isinstance(argument, str) else value


def _bound(value: Any, obj: Any, name: str) -> Any:
    if callable(value) and not isinstance(value, (Undefined, BoundMethod)):
        return BoundMethod(value, f"a {type(obj).__name__}", name)
    return value
