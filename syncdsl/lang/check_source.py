"""`source NAME { ... }` blocks: data file, identity, export mode and mappings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal as TypingLiteral

from jinja2 import TemplateError

from syncdsl.lang.check_base import (
    IDENTIFIER,
    SOURCE_ATTRIBUTES,
    Checker,
    is_template,
    path_text,
    unsafe_attribute,
)
from syncdsl.lang.datapath import check_data_path, dangling_link
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.ir import (
    EXPORT_MODES,
    Expr,
    FieldPath,
    LiteralValue,
    PropertyMapping,
    Source,
    Template,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    BoolValue,
    NumberValue,
    PathValue,
    StringValue,
    Value,
    describe,
)
from syncdsl.lang.template_limits import check_limits
from syncdsl.lang.templates import TEMPLATE_ENVIRONMENT


class SourceChecks(Checker):
    """The checks of `source NAME { ... }` blocks."""

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
                path = path_text((value.value,))
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
                unsafe = unsafe_attribute(value.value)
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
            over = check_limits(TEMPLATE_ENVIRONMENT, value.value)
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
