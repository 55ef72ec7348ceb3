"""The one template sandbox: where `validate` checks templates and the mapping renders them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import ChainableUndefined
from jinja2.exceptions import SecurityError

from syncdsl.lang.template_limits import LimitedSandbox

#: Filters a plain `{{ a.b | f }}` template may use and still skip Jinja on the hot path.
FAST_FILTERS = ("title", "upper", "lower", "capitalize", "trim")


class _Sandbox(LimitedSandbox):
    """The sandbox, strict about escapes: an unsafe attribute raises instead of rendering empty.

    It only ever prints single values: a container or a method reaching text rejects the record.
    Its renders stay within the limits of `template_limits` (size, loops and calls, time).
    """

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _none_safe(function: Callable[..., Any]) -> Callable[..., Any]:
    """A string filter that keeps a JSON null empty, rather than rendering the text 'None'."""

    def wrapped(value: Any, *args: Any, **kwargs: Any) -> Any:
        return "" if value is None else function(value, *args, **kwargs)

    return wrapped


def _make_environment() -> _Sandbox:
    environment = _Sandbox(undefined=ChainableUndefined, autoescape=False)
    for name in FAST_FILTERS:
        environment.filters[name] = _none_safe(environment.filters[name])
    return environment


#: The environment every mapping template is compiled in (validate checks templates with it).
TEMPLATE_ENVIRONMENT: LimitedSandbox = _make_environment()
