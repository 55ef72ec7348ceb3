"""`audience "Name" { ... }` blocks: source, segment, property, mass-exit threshold."""

from __future__ import annotations

from syncdsl.lang.check_base import (
    AUDIENCE_ATTRIBUTES,
    IDENTIFIER,
    MAX_NAME,
    Checker,
    untruncated_name,
)
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.ir import (
    DEFAULT_MASS_EXIT_THRESHOLD,
    Audience,
    Source,
    derive_property_name,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    BoolValue,
    NumberValue,
    PathValue,
    StringValue,
    describe,
)


class AudienceChecks(Checker):
    """The checks of `audience "Name" { ... }` blocks."""

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
        if (
            not isinstance(value, PathValue)
            or len(value.parts) != 1
            or not isinstance(value.parts[0], str)
        ):
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
        derived = untruncated_name(display)
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
