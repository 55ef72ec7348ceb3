"""Static checks of parsed .sync files, and construction of the IR when they all pass."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal as TypingLiteral

from jinja2 import TemplateError, nodes

from syncdsl.errors import Diagnostic, Span
from syncdsl.hubspot.tiers import API_VERSIONS, DEFAULT_API_VERSION, MAX_API_PACKS, TIERS
from syncdsl.lang.datapath import check_data_path, dangling_link
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.endpoint import spec_base_url_problem
from syncdsl.lang.ir import (
    DEFAULT_BASE_URL,
    DEFAULT_MASS_EXIT_THRESHOLD,
    DEFAULT_PROPERTY_GROUP,
    DEFAULT_TIER,
    EXPORT_MODES,
    Audience,
    Destination,
    Expr,
    FieldPath,
    LiteralValue,
    PropertyDecl,
    PropertyMapping,
    Source,
    Spec,
    Template,
    derive_property_name,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    BoolValue,
    CallValue,
    Document,
    ListValue,
    NumberValue,
    PathValue,
    StringValue,
    Value,
    describe,
)
from syncdsl.lang.template_limits import check_limits
from syncdsl.lang.templates import TEMPLATE_ENVIRONMENT

MAX_NAME = 100
INTERNAL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TOP_BLOCKS = ("destination", "source", "audience", "property")
DESTINATION_ATTRIBUTES = ("token", "tier", "base_url", "property_group", "api_version", "api_packs")
SOURCE_ATTRIBUTES = ("jsonl", "csv", "identity", "export")
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

# The mapping stage's own sandbox: compiling here catches syntax errors and unknown filters
# before any data is read, and a trial render the templates that go over its limits.
_TEMPLATES = TEMPLATE_ENVIRONMENT


def _unsafe_attribute(source: str) -> str | None:
    """Compile the template; return the first private attribute it names (`__class__`...), if any.

    The sandbox refuses these at render time; naming them here turns a per-record failure into
    one spec error.
    """
    _TEMPLATES.from_string(source)
    tree = _TEMPLATES.parse(source)
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


def _untruncated_name(display_name: str) -> str:
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


@dataclass
class _Checker:
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

    # -- destination ------------------------------------------------------------------------------

    def destination(self, block: Block) -> Destination:
        if block.label is None:
            self.error(block.type_span, "name the destination: write `destination hubspot {`")
        elif block.label != "hubspot":
            assert block.label_span is not None
            self.error(
                block.label_span,
                f"unsupported destination `{block.label}`: syncdsl writes to HubSpot; "
                "write `destination hubspot {`",
            )
        attrs, _ = self.members(block, "destination hubspot", attributes=DESTINATION_ATTRIBUTES)
        token_env = self.token(attrs.get("token"), block)
        tier = DEFAULT_TIER
        if "tier" in attrs and (value := self.string(attrs["tier"], "professional")) is not None:
            if value in TIERS:
                tier = value
            else:
                hint = did_you_mean(value, TIERS)
                self.error(
                    attrs["tier"].value.span,
                    f"unknown tier `{value}`{hint}; use one of {one_of(TIERS)}",
                )
        base_url = DEFAULT_BASE_URL
        if "base_url" in attrs and (value := self.string(attrs["base_url"], DEFAULT_BASE_URL)):
            if not re.match(r"^https?://[^\s/]+", value):
                self.error(
                    attrs["base_url"].value.span,
                    f"`base_url` must be an http(s) URL, like `{DEFAULT_BASE_URL}`",
                )
            elif (problem := spec_base_url_problem(value)) is not None:
                self.error(attrs["base_url"].value.span, problem)
            else:
                base_url = value.rstrip("/")
        group = DEFAULT_PROPERTY_GROUP
        if "property_group" in attrs:
            attribute = attrs["property_group"]
            value = self.string(attribute, DEFAULT_PROPERTY_GROUP)
            if value is not None and self.internal_name(
                value, attribute.value.span, "property group"
            ):
                group = value
        return Destination(
            token_env or "",
            tier,
            base_url,
            group,
            block.span,
            api_version=self.api_version(attrs.get("api_version")),
            api_packs=self.api_packs(attrs.get("api_packs")),
        )

    def api_version(self, attribute: Attribute | None) -> str:
        if attribute is None:
            return DEFAULT_API_VERSION
        value = self.string(attribute, DEFAULT_API_VERSION)
        if value is None:
            return DEFAULT_API_VERSION
        if value not in API_VERSIONS:
            hint = did_you_mean(value, API_VERSIONS)
            self.error(
                attribute.value.span,
                f"unknown HubSpot API version `{value}`{hint}; use one of {one_of(API_VERSIONS)} "
                f"(v1-v3 become unsupported in September 2027; `{DEFAULT_API_VERSION}` is current)",
            )
            return DEFAULT_API_VERSION
        return value

    def api_packs(self, attribute: Attribute | None) -> int:
        if attribute is None:
            return 0
        value = attribute.value
        if (
            isinstance(value, NumberValue)
            and not isinstance(value.value, bool)
            and value.value in range(MAX_API_PACKS + 1)
        ):
            return int(value.value)
        self.error(
            value.span,
            "`api_packs` is the number of API limit increase packs the account bought: 0, 1 or 2 "
            f"(each adds 1,000,000 requests a day on top of the tier); found {describe(value)}",
        )
        return 0

    def token(self, attribute: Attribute | None, block: Block) -> str | None:
        if attribute is None:
            self.error(
                block.type_span,
                'destination hubspot needs a token: add `token = env("HUBSPOT_TOKEN")`',
            )
            return None
        value = attribute.value
        if isinstance(value, StringValue):
            self.error(
                value.span,
                "never write the token in the file: read it from an environment variable "
                'with `token = env("HUBSPOT_TOKEN")`',
            )
            return None
        if not isinstance(value, CallValue) or value.name != "env":
            self.error(value.span, f'`token` must be `env("VARIABLE")`; found {describe(value)}')
            return None
        if len(value.args) != 1 or not isinstance(value.args[0], StringValue):
            self.error(value.span, 'env() takes one quoted variable name: `env("HUBSPOT_TOKEN")`')
            return None
        name = value.args[0].value
        if not ENV_NAME.match(name):
            self.error(value.args[0].span, f"`{name}` is not an environment variable name")
            return None
        return name

    # -- sources ----------------------------------------------------------------------------------

    def source(self, block: Block, spec_file: str) -> Source | None:
        name = block.label or ""
        if block.label is None:
            self.error(block.type_span, "name the source: write `source profiles {`")
        elif block.label_quoted:
            assert block.label_span is not None
            suggestion = name if IDENTIFIER.match(name) else "name"
            self.error(
                block.label_span,
                f"a source name is written without quotes: `source {suggestion} {{`",
            )
        where = f"source `{name}`"
        attrs, nested = self.members(
            block, where, attributes=SOURCE_ATTRIBUTES, blocks=("map",), qualified=("identity",)
        )
        data = self.data_file(attrs, block, where, spec_file)
        identity = self.identity(attrs.get("identity"), block, where)
        maps = nested["map"]
        for extra in maps[1:]:
            self.error(
                extra.type_span, f"{where} has more than one `map` block; merge them into one"
            )
        mappings = self.mappings(maps[0], where) if maps else ()
        export = self.export(attrs.get("export"))
        if data is None or identity is None:
            return None
        file_format, path, resolved = data
        return Source(name, file_format, path, resolved, identity, mappings, block.span, export)

    def export(self, attribute: Attribute | None) -> TypingLiteral["full", "incremental"]:
        if attribute is None:
            return "full"
        value = self.string(attribute, "incremental")
        if value == "incremental":
            return "incremental"
        if value is not None and value != "full":
            hint = did_you_mean(value, EXPORT_MODES)
            self.error(
                attribute.value.span,
                f"unknown export `{value}`{hint}; use one of {one_of(EXPORT_MODES)} "
                "(`incremental`: each file holds only the profiles whose membership changed)",
            )
        return "full"

    def data_file(
        self, attrs: dict[str, Attribute], block: Block, where: str, spec_file: str
    ) -> tuple[TypingLiteral["jsonl", "csv"], str, Path] | None:
        given = [attrs[kind] for kind in ("jsonl", "csv") if kind in attrs]
        if not given:
            self.error(
                block.type_span,
                f'{where} needs its data file: add `jsonl = "path"` or `csv = "path"`',
            )
            return None
        if len(given) > 1:
            later = max(given, key=lambda a: (a.span.line, a.span.column))
            self.error(later.name_span, f"{where} reads one file: keep `jsonl` or `csv`, not both")
            return None
        attribute = given[0]
        path = self.string(attribute, f"data/{block.label or 'export'}.{attribute.name}")
        if path is None:
            return None
        if not path.strip():
            self.error(attribute.value.span, f"`{attribute.name}` needs a file path")
            return None
        try:
            if "\x00" in path:
                raise ValueError("it holds a NUL character")
            checked = check_data_path(
                path, spec_file=Path(spec_file), configuration=self.root, data_root=self.data_root
            )
            if checked.resolved is not None:
                checked.resolved.exists()
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            shown = path[:80].replace("\x00", "\\0")
            self.error(attribute.value.span, f"data file path `{shown}` is unusable: {reason}")
            return None
        if checked.resolved is None:
            self.error(attribute.value.span, checked.problem or f"data file `{path}` is refused")
            return None
        resolved = checked.resolved
        if not resolved.exists():
            link = dangling_link(path, spec_file=Path(spec_file))
            self.error(
                attribute.value.span,
                f"data file `{path}` does not exist (paths are relative to the .sync file)"
                if link is None
                else f"data file `{path}` does not exist: `{link.name}` on its way is a symlink to "
                f"`{os.readlink(link)}`, which does not exist",
            )
            return None
        if not resolved.is_file():
            self.error(attribute.value.span, f"data file `{path}` is not a file")
            return None
        file_format: TypingLiteral["jsonl", "csv"] = "jsonl" if attribute.name == "jsonl" else "csv"
        return file_format, path, resolved

    def identity(self, attribute: Attribute | None, block: Block, where: str) -> FieldPath | None:
        if attribute is None:
            self.error(
                block.type_span,
                f"{where} needs an identity: add `identity email = FIELD` (HubSpot matches contacts "
                "by email)",
            )
            return None
        if attribute.qualifier is None:
            self.error(
                attribute.name_span,
                "say which identity: write `identity email = FIELD` (HubSpot matches contacts by email)",
            )
            return None
        if attribute.qualifier != "email":
            assert attribute.qualifier_span is not None
            self.error(
                attribute.qualifier_span,
                f"HubSpot takes email as the identity, not `{attribute.qualifier}`: write "
                f"`identity email = FIELD` and map `{attribute.qualifier}` in `map {{ }}`",
            )
            return None
        value = attribute.value
        if not isinstance(value, PathValue):
            message = f"the identity is a field path, not {describe(value)}"
            if isinstance(value, StringValue) and value.value:
                path = _path_text((value.value,))
                message += f"; write it without quotes: identity email = {path}"
                if path.startswith("`"):
                    message += " (backticks name a column with spaces or punctuation)"
            self.error(value.span, message)
            return None
        return FieldPath(value.parts, value.span)

    def mappings(self, block: Block, where: str) -> tuple[PropertyMapping, ...]:
        self.no_label(block)
        result: list[PropertyMapping] = []
        seen: dict[str, Attribute] = {}
        for item in block.items:
            if isinstance(item, Block):
                self.error(item.type_span, "`map` holds only `property = value` lines, not blocks")
                continue
            if item.qualifier is not None:
                assert item.qualifier_span is not None
                self.error(
                    item.qualifier_span, f"write `{item.name} = VALUE`: one property name per line"
                )
                continue
            if item.name == "email":
                self.error(
                    item.name_span,
                    "email is the identity; set it with `identity email = FIELD`",
                )
                continue
            if not self.internal_name(item.name, item.name_span, "HubSpot property"):
                continue
            if item.name in seen:
                first = seen[item.name].span.line
                self.error(
                    item.name_span,
                    f"`{item.name}` is mapped twice in {where} (first on line {first})",
                )
                continue
            seen[item.name] = item
            expr = self.expression(item.value, item.name)
            if expr is not None:
                result.append(PropertyMapping(item.name, expr, item.span))
        return tuple(result)

    def expression(self, value: Value, target: str) -> Expr | None:
        if isinstance(value, PathValue):
            return FieldPath(value.parts, value.span)
        if isinstance(value, StringValue):
            if not is_template(value.value):
                return LiteralValue(value.value, value.span)
            try:
                unsafe = _unsafe_attribute(value.value)
            except TemplateError as error:
                self.error(
                    value.span, f"the template for `{target}` does not compile: {error.message}"
                )
                return None
            except (RecursionError, MemoryError):
                self.error(value.span, f"the template for `{target}` is too deeply nested")
                return None
            if unsafe is not None:
                self.error(
                    value.span,
                    f"the template for `{target}` reaches for `{unsafe}`, which the sandbox "
                    "forbids (attributes starting with `_` could escape it)",
                )
                return None
            over = check_limits(_TEMPLATES, value.value)
            if over is not None:
                self.error(
                    value.span,
                    f"the template for `{target}` {over}, beyond what a template may do (see "
                    '"Template limits" in the README)',
                )
                return None
            return Template(value.value, value.span)
        if isinstance(value, NumberValue | BoolValue):
            return LiteralValue(value.value, value.span)
        self.error(
            value.span,
            f'`{target}` takes a field path, a literal or a "{{{{ template }}}}"; found {describe(value)}',
        )
        return None

    # -- audiences --------------------------------------------------------------------------------

    def audience(self, block: Block, sources: dict[str, Source | None]) -> Audience | None:
        display = block.label or ""
        if block.label is None:
            self.error(block.type_span, 'name the audience: write `audience "Display Name" {`')
            return None
        assert block.label_span is not None
        if not block.label_quoted:
            self.error(
                block.label_span, f'put the display name in quotes: `audience "{display}" {{`'
            )
            return None
        if not display.strip():
            self.error(block.label_span, "the audience display name is empty")
            return None
        where = f'audience "{display}"'
        attrs, _ = self.members(block, where, attributes=AUDIENCE_ATTRIBUTES)
        source_name = self.audience_source(attrs.get("source"), block, where, sources)
        source = sources.get(source_name) if source_name else None
        segment = self.segment(attrs.get("segment"), source, block, where)
        internal = self.audience_property(attrs.get("property"), block, display)
        adopt = False
        if "adopt" in attrs:
            if isinstance(attrs["adopt"].value, BoolValue):
                adopt = attrs["adopt"].value.value
            else:
                self.error(attrs["adopt"].value.span, "`adopt` takes `true` or `false`")
        threshold = self.threshold(attrs.get("mass_exit_threshold"))
        if source_name is None or internal is None or threshold is None:
            return None
        return Audience(display, source_name, segment, internal, adopt, threshold, block.span)

    def audience_source(
        self,
        attribute: Attribute | None,
        block: Block,
        where: str,
        sources: dict[str, Source | None],
    ) -> str | None:
        if attribute is None:
            self.error(block.type_span, f"{where} needs a source: add `source = SOURCE_NAME`")
            return None
        value = attribute.value
        if isinstance(value, StringValue) and IDENTIFIER.match(value.value):
            self.error(value.span, f"name the source without quotes: `source = {value.value}`")
            return None
        if not isinstance(value, PathValue) or len(value.parts) != 1:
            self.error(
                value.span, f"`source` takes the name of a source block; found {describe(value)}"
            )
            return None
        name = value.parts[0]
        if name not in sources:
            hint = did_you_mean(name, sources)
            known = f"; sources are {one_of(sources)}" if sources and not hint else ""
            self.error(value.span, f"unknown source `{name}`{hint}{known}")
            return None
        return name

    def segment(
        self, attribute: Attribute | None, source: Source | None, block: Block, where: str
    ) -> str | None:
        if source is None:  # unknown or broken source: reported already
            return (
                attribute.value.value
                if attribute and isinstance(attribute.value, StringValue)
                else None
            )
        if source.format == "csv":
            if attribute is not None:
                self.error(
                    attribute.name_span,
                    f"`segment` does not apply to csv source `{source.name}`: every row of an "
                    "upload is a member; remove it",
                )
            return None
        if attribute is None:
            self.error(
                block.type_span,
                f'{where} reads jsonl source `{source.name}` and needs `segment = "<segment id>"`',
            )
            return None
        value = self.string(attribute, "3f2a9c4e-6b1d-4e8a-9f0c-1a2b3c4d5e6f")
        if value is not None and (not value.strip() or "." in value):
            self.error(attribute.value.span, "`segment` must be a segment id (no dots, not empty)")
            return None
        return value

    def audience_property(
        self, attribute: Attribute | None, block: Block, display: str
    ) -> str | None:
        if attribute is not None:
            value = self.string(attribute, derive_property_name(display) or "my_audience")
            if value is not None and self.internal_name(value, attribute.value.span, "property"):
                return value
            return None
        assert block.label_span is not None
        derived = _untruncated_name(display)
        if not derived or not derived[0].isalpha():
            suggestion = f"audience_{derived}" if derived else "my_audience"
            self.error(
                block.label_span,
                f'cannot derive a HubSpot internal name from "{display}" (it must start with a '
                f'letter): add `property = "{suggestion}"`',
            )
            return None
        if len(derived) > MAX_NAME:
            self.error(
                block.label_span,
                f"the derived internal name is longer than {MAX_NAME} characters: add "
                f'`property = "{derived[:MAX_NAME].rstrip("_")}"`',
            )
            return None
        return derive_property_name(display)

    def threshold(self, attribute: Attribute | None) -> float | None:
        if attribute is None:
            return DEFAULT_MASS_EXIT_THRESHOLD
        value = attribute.value
        if isinstance(value, NumberValue) and 0 < value.value <= 1:
            return float(value.value)
        self.error(
            value.span,
            "`mass_exit_threshold` is the largest share of members that may exit in one run: "
            "a number above 0 and at most 1, like 0.25",
        )
        return None

    # -- property declarations --------------------------------------------------------------------

    def property_decl(self, block: Block) -> PropertyDecl | None:
        if block.label is None or not block.label_quoted:
            span = block.label_span or block.type_span
            self.error(span, 'name the property in quotes: `property "internal_name" {`')
            return None
        assert block.label_span is not None
        name = block.label
        valid_name = self.internal_name(name, block.label_span, "property name")
        attrs, _ = self.members(block, f'property "{name}"', attributes=PROPERTY_ATTRIBUTES)
        label = name
        if "label" in attrs:
            label = self.string(attrs["label"], name.replace("_", " ").title()) or name
        kind = DEFAULT_PROPERTY_TYPE
        if "type" in attrs and (value := self.string(attrs["type"], "string")) is not None:
            if value in FIELD_TYPES:
                kind = value
            else:
                hint = did_you_mean(value, FIELD_TYPES)
                self.error(
                    attrs["type"].value.span,
                    f"unknown type `{value}`{hint}; use one of {one_of(FIELD_TYPES)}",
                )
                return None
        field_type = self.field_type(attrs.get("field_type"), kind)
        options = self.options(attrs.get("options"), kind, block)
        if not valid_name or field_type is None or options is None:
            return None
        return PropertyDecl(name, label, kind, field_type, options, block.span)

    def field_type(self, attribute: Attribute | None, kind: str) -> str | None:
        allowed = FIELD_TYPES[kind]
        if attribute is None:
            return allowed[0]
        value = self.string(attribute, allowed[0])
        if value is not None and value not in allowed:
            hint = did_you_mean(value, allowed)
            self.error(
                attribute.value.span,
                f"field_type `{value}` does not fit type `{kind}`{hint}; use {one_of(allowed)}",
            )
            return None
        return value

    def options(
        self, attribute: Attribute | None, kind: str, block: Block
    ) -> tuple[str, ...] | None:
        if kind != "enumeration":
            if attribute is not None:
                self.error(
                    attribute.name_span,
                    f'`options` only apply to `type = "enumeration"`, not `{kind}`',
                )
                return None
            return ()
        if attribute is None:
            self.error(
                block.type_span, 'an enumeration needs its choices: add `options = ["a", "b"]`'
            )
            return None
        value = attribute.value
        if not isinstance(value, ListValue) or not value.items:
            self.error(value.span, 'options is a non-empty list of strings: `options = ["a", "b"]`')
            return None
        options: list[str] = []
        for item in value.items:
            if not isinstance(item, StringValue) or not item.value:
                self.error(item.span, f"an option is a non-empty string; found {describe(item)}")
            elif item.value in options:
                self.error(item.span, f'option "{item.value}" is listed twice')
            else:
                options.append(item.value)
        return tuple(options) if len(options) == len(value.items) else None


def _path_text(parts: tuple[str, ...]) -> str:
    return ".".join(part if IDENTIFIER.match(part) else f"`{part}`" for part in parts)


def _nowhere(file: str) -> Span:
    return Span(file, 0, 0, 0, 0)


def _where(span: Span) -> str:
    return f"{span.file}:{span.line}"


def build_spec(
    documents: list[Document],
    *,
    files: tuple[Path, ...],
    root: Path,
    data_root: Path | None = None,
) -> tuple[Spec | None, list[Diagnostic]]:
    """Check `documents` as one configuration; return the Spec, or None and every problem found.

    Data files must lie inside `root` or, when the operator allows one, `data_root`.
    """
    checker = _Checker(root, data_root)
    blocks: dict[str, list[Block]] = {kind: [] for kind in TOP_BLOCKS}
    for document in documents:
        for item in document.items:
            if isinstance(item, Attribute):
                checker.error(
                    item.name_span,
                    f"`{item.name}` is outside any block; attributes belong inside "
                    "`destination`, `source`, `audience` or `property` blocks",
                )
            elif item.type not in blocks:
                hint = did_you_mean(item.type, TOP_BLOCKS)
                checker.error(
                    item.type_span,
                    f"unknown block `{item.type}`{hint}; blocks are {one_of(TOP_BLOCKS)}",
                )
            else:
                blocks[item.type].append(item)
    anchor = documents[0].file if documents else str(root)
    destination = _one_destination(checker, blocks["destination"], anchor)
    sources = _sources(checker, blocks["source"], anchor)
    audiences = tuple(
        audience
        for block in blocks["audience"]
        if (audience := checker.audience(block, sources)) is not None
    )
    properties = tuple(
        decl for block in blocks["property"] if (decl := checker.property_decl(block)) is not None
    )
    _cross_checks(checker, audiences, properties, sources)
    if checker.diagnostics or destination is None:
        return None, checker.diagnostics
    spec = Spec(
        destination=destination,
        sources=tuple(source for source in sources.values() if source is not None),
        audiences=audiences,
        properties=properties,
        files=files,
        root=root,
    )
    return spec, []


def _one_destination(checker: _Checker, blocks: list[Block], anchor: str) -> Destination | None:
    if not blocks:
        checker.error(
            _nowhere(anchor),
            'no destination: add `destination hubspot { token = env("HUBSPOT_TOKEN") }`',
        )
        return None
    for extra in blocks[1:]:
        checker.error(
            extra.type_span,
            f"a configuration has exactly one destination; the first is at {_where(blocks[0].span)}",
        )
    return checker.destination(blocks[0])


def _sources(checker: _Checker, blocks: list[Block], anchor: str) -> dict[str, Source | None]:
    if not blocks:
        checker.error(
            _nowhere(anchor), 'no source: add a `source NAME { jsonl = "..." ... }` block'
        )
    sources: dict[str, Source | None] = {}
    first: dict[str, Block] = {}
    for block in blocks:
        name = block.label
        if name is not None and name in first:
            assert block.label_span is not None
            checker.error(
                block.label_span,
                f"source `{name}` is declared twice (first at {_where(first[name].span)})",
            )
            checker.source(block, block.span.file)
            continue
        source = checker.source(block, block.span.file)
        if name is not None:
            first[name] = block
            sources[name] = source
    return sources


def _cross_checks(
    checker: _Checker,
    audiences: tuple[Audience, ...],
    properties: tuple[PropertyDecl, ...],
    sources: dict[str, Source | None],
) -> None:
    by_property: dict[str, Audience] = {}
    by_key: dict[str, Audience] = {}
    for audience in audiences:
        other = by_property.get(audience.property)
        if other is not None:
            checker.error(
                audience.span,
                f'audiences "{other.name}" and "{audience.name}" both write HubSpot property '
                f'`{audience.property}`; give one a different `property = "..."`',
            )
        by_property.setdefault(audience.property, audience)
        twin = by_key.get(audience.key)
        if twin is not None:
            what = (
                f"segment `{audience.segment}`"
                if audience.segment
                else f"upload `{audience.source}`"
            )
            checker.error(
                audience.span,
                f'{what} already feeds audience "{twin.name}" ({_where(twin.span)}); '
                "one segment or upload feeds one audience",
            )
        by_key.setdefault(audience.key, audience)
    for source in sources.values():
        for mapping in source.mappings if source is not None else ():
            if mapping.property in by_property:
                owner = by_property[mapping.property].name
                checker.error(
                    mapping.span,
                    f'`{mapping.property}` is the property of audience "{owner}"; syncdsl manages it, '
                    "so it cannot be mapped too",
                )
    declared: dict[str, PropertyDecl] = {}
    for decl in properties:
        if decl.name in declared:
            checker.error(
                decl.span,
                f'property "{decl.name}" is declared twice (first at {_where(declared[decl.name].span)})',
            )
        elif decl.name in by_property:
            checker.error(
                decl.span,
                f'property "{decl.name}" belongs to audience "{by_property[decl.name].name}", '
                "which creates it; remove this declaration",
            )
        declared.setdefault(decl.name, decl)
