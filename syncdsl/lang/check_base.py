"""What every check of `validate` shares: the diagnostics collector and its generic helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import nodes

from syncdsl.errors import Diagnostic, Span
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    StringValue,
    describe,
)
from syncdsl.lang.templates import TEMPLATE_ENVIRONMENT

MAX_NAME = 100
INTERNAL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TOP_BLOCKS = ("destination", "source", "audience", "property")
DESTINATION_ATTRIBUTES = (
    "token",
    "tier",
    "base_url",
    "property_group",
    "api_version",
    "api_packs",
    "max_new_contacts",
    "mode",
    "store",
    "store_key",
)
SOURCE_ATTRIBUTES = (
    "jsonl",
    "parquet",
    "csv",
    "identity",
    "export",
    "delimiter",
    "encoding",
    "consent",
    "consent_allow",
)
AUDIENCE_ATTRIBUTES = ("source", "segment", "property", "adopt", "mass_exit_threshold")
PROPERTY_ATTRIBUTES = ("label", "type", "field_type", "options")

#: HubSpot property type -> the field types it accepts; the first is the default.
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("text", "textarea", "phonenumber", "html", "file"),
    "number": ("number",),
    "date": ("date",),
    "datetime": ("date",),
    "bool": ("booleancheckbox",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "phone_number": ("phonenumber",),
}
DEFAULT_PROPERTY_TYPE = "string"


def unsafe_attribute(source: str) -> str | None:
    """Compile the template; return the first private attribute it names (`__class__`...), if any.

    The sandbox refuses these at render time; naming them here turns a per-record failure into
    one spec error.
    """
    TEMPLATE_ENVIRONMENT.from_string(source)
    tree = TEMPLATE_ENVIRONMENT.parse(source)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        if isinstance(name, str) and name.startswith("_"):
            return name
    return None


def is_template(text: str) -> bool:
    """A string is a Jinja template when it holds `{{` or `{%`; otherwise it is a literal."""
    return "{{" in text or "{%" in text


def untruncated_name(display_name: str) -> str:
    # ir.derive_property_name cuts at 100 characters; validation wants to see the whole name.
    return re.sub(r"[^a-z0-9]+", "_", display_name.lower()).strip("_")


def internal_name_problem(name: str) -> str | None:
    """Why `name` cannot be a HubSpot internal name, or None when it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; HubSpot allows at most {MAX_NAME}"
    if not INTERNAL_NAME.match(name):
        return "must start with a lowercase letter and hold only a-z, 0-9 and `_`"
    return None


def nowhere(file: str) -> Span:
    return Span(file, 0, 0, 0, 0)


def where_of(span: Span) -> str:
    return f"{span.file}:{span.line}"


@dataclass
class Checker:
    """Collects diagnostics while building the IR; nothing here raises."""

    root: Path
    data_root: Path | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, message))

    # -- generic shape ----------------------------------------------------------------------------

    def members(
        self,
        block: Block,
        where: str,
        *,
        attributes: Iterable[str],
        blocks: Iterable[str] = (),
        qualified: Iterable[str] = (),
    ) -> tuple[dict[str, Attribute], dict[str, list[Block]]]:
        """A block's attributes and sub-blocks by name; unknown, misplaced or repeated ones are errors."""
        attribute_names, block_names = tuple(attributes), tuple(blocks)
        seen: dict[str, Attribute] = {}
        nested: dict[str, list[Block]] = {name: [] for name in block_names}
        for item in block.items:
            if isinstance(item, Block):
                if item.type in attribute_names:
                    self.error(
                        item.type_span, f"`{item.type}` is an attribute: write `{item.type} = ...`"
                    )
                elif item.type not in block_names:
                    hint = did_you_mean(item.type, block_names + attribute_names)
                    self.error(item.type_span, f"unknown block `{item.type}` in {where}{hint}")
                else:
                    nested[item.type].append(item)
                continue
            if item.name in block_names:
                self.error(
                    item.name_span, f"`{item.name}` is a block: write `{item.name} {{ ... }}`"
                )
            elif item.name not in attribute_names:
                hint = did_you_mean(item.name, attribute_names + block_names)
                self.error(item.name_span, f"unknown attribute `{item.name}` in {where}{hint}")
            elif item.qualifier is not None and item.name not in qualified:
                assert item.qualifier_span is not None
                self.error(
                    item.qualifier_span,
                    f"`{item.name}` takes no qualifier: write `{item.name} = ...`",
                )
            elif item.name in seen:
                first = seen[item.name].span.line
                self.error(
                    item.name_span, f"`{item.name}` is set twice in {where} (first on line {first})"
                )
            else:
                seen[item.name] = item
        return seen, nested

    def string(self, attribute: Attribute, example: str) -> str | None:
        if isinstance(attribute.value, StringValue):
            return attribute.value.value
        found = describe(attribute.value)
        self.error(
            attribute.value.span,
            f'`{attribute.name}` takes a string, like `{attribute.name} = "{example}"`; found {found}',
        )
        return None

    def choice(
        self,
        attribute: Attribute | None,
        what: str,
        choices: Sequence[str],
        default: str,
        *,
        example: str | None = None,
        explain: str = "",
    ) -> str:
        """The attribute's value, one of `choices`; `default` when it is absent or wrong (a
        wrong one is reported, with a did-you-mean)."""
        if attribute is None:
            return default
        value = self.string(attribute, example or default)
        if value is None:
            return default
        if value in choices:
            return value
        self.error(
            attribute.value.span,
            f"unknown {what} `{value}`{did_you_mean(value, choices)}; use one of "
            f"{one_of(choices)}{explain}",
        )
        return default

    def internal_name(self, name: str, span: Span, what: str) -> bool:
        problem = internal_name_problem(name)
        if problem is not None:
            self.error(span, f"{what} `{name}` {problem}")
        return problem is None

    def no_label(self, block: Block) -> None:
        if block.label is not None and block.label_span is not None:
            self.error(
                block.label_span, f"a `{block.type}` block takes no name: write `{block.type} {{`"
            )
