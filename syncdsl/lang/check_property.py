"""`property NAME { ... }` blocks: declared HubSpot properties, their types and options."""

from __future__ import annotations

from syncdsl.lang.check_base import DEFAULT_PROPERTY_TYPE, FIELD_TYPES, PROPERTY_ATTRIBUTES, Checker
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.ir import (
    PropertyDecl,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    ListValue,
    StringValue,
    describe,
)


class PropertyChecks(Checker):
    """The checks of `property NAME { ... }` blocks."""

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
