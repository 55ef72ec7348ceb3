"""`source NAME { ... }` blocks: data file, identity, export mode and mappings."""

from __future__ import annotations

import codecs
import importlib.util
import os
from pathlib import Path
from typing import Literal as TypingLiteral

from jinja2 import TemplateError

from syncdsl.lang.check_base import (
    IDENTIFIER,
    SOURCE_ATTRIBUTES,
    Checker,
    is_template,
    unsafe_attribute,
)
from syncdsl.lang.datapath import (
    check_data_path,
    dangling_link,
    glob_base,
    is_glob,
    local_files,
    remote_scheme,
)
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.ir import (
    CONSENT_VALUES,
    EXPORT_MODES,
    REMOTE_SCHEMES,
    SOURCE_FORMATS,
    Consent,
    DataLocation,
    Expr,
    FieldPath,
    LiteralValue,
    PropertyMapping,
    Source,
    SourceFormat,
    Template,
    path_text,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    BoolValue,
    CallValue,
    ListValue,
    NumberValue,
    PathValue,
    StringValue,
    Value,
    describe,
)
from syncdsl.lang.template_limits import check_limits
from syncdsl.lang.templates import TEMPLATE_ENVIRONMENT

#: `prop = fill_if_empty(EXPR)`: the property is written only when HubSpot holds no value.
FILL_IF_EMPTY = "fill_if_empty"
COMMON_ENCODINGS = ("utf-8", "utf-16", "latin-1", "cp1252", "iso-8859-15", "shift_jis")


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
        file_format, path, locations = data
        consent = self.consent(attrs, file_format)
        if file_format == "csv":
            self.no_indexes(identity, mappings, consent.fields if consent else ())
        delimiter, encoding = self.csv_options(attrs, file_format)
        return Source(
            name,
            file_format,
            path,
            locations,
            identity,
            mappings,
            block.span,
            export,
            delimiter=delimiter,
            encoding=encoding,
            consent=consent,
        )

    def no_indexes(
        self,
        identity: FieldPath,
        mappings: tuple[PropertyMapping, ...],
        more: tuple[FieldPath, ...] = (),
    ) -> None:
        paths = [identity, *(m.expr for m in mappings if isinstance(m.expr, FieldPath)), *more]
        for path in paths:
            if any(isinstance(part, int) for part in path.parts):
                self.error(
                    path.span,
                    f"`{path.text}` indexes a list, and a csv row holds none: name a column "
                    "(write a column with brackets in its name between backticks)",
                )

    def csv_options(
        self, attrs: dict[str, Attribute], file_format: SourceFormat
    ) -> tuple[str | None, str]:
        delimiter: str | None = None
        encoding = "utf-8"
        for name in ("delimiter", "encoding"):
            if name in attrs and file_format != "csv":
                self.error(
                    attrs[name].name_span,
                    f"`{name}` is for csv sources; {file_format} data has no {name} to set",
                )
        if file_format != "csv":
            return delimiter, encoding
        if "delimiter" in attrs:
            attribute = attrs["delimiter"]
            value = self.string(attribute, ";")
            if value is not None and (len(value) != 1 or value in '"\r\n'):
                self.error(
                    attribute.value.span,
                    "a delimiter is one character other than a quote or a line break, like "
                    '`delimiter = ";"` or `delimiter = "\\t"` (leave it out to detect it)',
                )
            elif value is not None:
                delimiter = value
        if "encoding" in attrs:
            attribute = attrs["encoding"]
            value = self.string(attribute, "utf-8")
            if value is not None:
                try:
                    encoding = codecs.lookup(value).name
                except LookupError:
                    hint = did_you_mean(value, COMMON_ENCODINGS)
                    self.error(
                        attribute.value.span,
                        f"unknown encoding `{value}`{hint}; use a name Python knows, like "
                        f"{one_of(COMMON_ENCODINGS)}",
                    )
        return delimiter, encoding

    def consent(self, attrs: dict[str, Attribute], file_format: SourceFormat) -> Consent | None:
        """`consent = FIELD` or a list of fields (`[]`: no consent rule), `consent_allow` the
        values that allow export. Default: Experience Platform's marketing consent for jsonl and
        Parquet, none for csv."""
        default = None if file_format == "csv" else Consent.platform_default()
        fields = default.fields if default is not None else ()
        if "consent" in attrs:
            attribute = attrs["consent"]
            value = attribute.value
            entries = value.items if isinstance(value, ListValue) else (value,)
            fields = ()
            for entry in entries:
                if isinstance(entry, PathValue):
                    fields += (FieldPath(entry.parts, entry.span),)
                    continue
                hint = ""
                if isinstance(entry, StringValue) and entry.value:
                    parts = tuple(entry.value.split("."))
                    shown = path_text(parts if all(parts) else (entry.value,))
                    hint = f"; write it without quotes: consent = {shown}"
                self.error(
                    entry.span,
                    "`consent` takes a field path or a list of them, like "
                    f"`consent = consents.marketing.email.val`; found {describe(entry)}{hint}",
                )
        allow: tuple[str, ...] | None = None
        if "consent_allow" in attrs:
            attribute = attrs["consent_allow"]
            value = attribute.value
            entries = value.items if isinstance(value, ListValue) else (value,)
            allowed = [e.value for e in entries if isinstance(e, StringValue) and e.value]
            if len(allowed) != len(entries) or not allowed:
                self.error(
                    value.span,
                    "`consent_allow` lists the values that allow export, like "
                    f'`consent_allow = ["y"]` (Experience Platform\'s: {one_of(CONSENT_VALUES)})',
                )
            elif not fields and "consent" not in attrs:
                self.error(
                    attribute.name_span,
                    "`consent_allow` needs consent fields to read: add `consent = FIELD` "
                    "(csv sources have none unless named)",
                )
            elif not fields and self.is_empty_list(attrs["consent"]):
                self.error(
                    attribute.name_span,
                    "`consent_allow` with `consent = []` (no consent rule) means nothing: name "
                    "the consent fields, or drop `consent_allow`",
                )
            else:
                allow = tuple(dict.fromkeys(allowed))
        return Consent(fields, allow, "consent" in attrs) if fields else None

    @staticmethod
    def is_empty_list(attribute: Attribute) -> bool:
        """The attribute is an empty list (written on purpose, not an error)."""
        return isinstance(attribute.value, ListValue) and not attribute.value.items

    def export(self, attribute: Attribute | None) -> TypingLiteral["full", "incremental"]:
        chosen = self.choice(
            attribute,
            "export",
            EXPORT_MODES,
            "full",
            example="incremental",
            explain=" (`incremental`: each file holds only the profiles whose membership changed)",
        )
        return "incremental" if chosen == "incremental" else "full"

    def data_file(
        self, attrs: dict[str, Attribute], block: Block, where: str, spec_file: str
    ) -> tuple[SourceFormat, str, tuple[DataLocation, ...]] | None:
        given = [attrs[kind] for kind in SOURCE_FORMATS if kind in attrs]
        if not given:
            self.error(
                block.type_span,
                f'{where} needs its data: add `jsonl = "path"`, `parquet = "path"` or '
                '`csv = "path"` (a file, a folder, a glob, or a list of them)',
            )
            return None
        if len(given) > 1:
            later = max(given, key=lambda a: (a.span.line, a.span.column))
            kinds = " or ".join(f"`{a.name}`" for a in sorted(given, key=lambda a: a.span.line))
            self.error(later.name_span, f"{where} reads one format: keep {kinds}, not both")
            return None
        attribute = given[0]
        example = f"data/{block.label or 'export'}.{attribute.name}"
        value = attribute.value
        entries = value.items if isinstance(value, ListValue) else (value,)
        if isinstance(value, ListValue) and not entries:
            self.error(value.span, f"`{attribute.name}` needs at least one path")
            return None
        locations: list[DataLocation] = []
        for entry in entries:
            if not isinstance(entry, StringValue):
                self.error(
                    entry.span,
                    f"`{attribute.name}` takes a path or a list of paths, like `{attribute.name} = "
                    f'"{example}"`; found {describe(entry)}',
                )
                continue
            location = self.location(entry, attribute.name, Path(spec_file))
            if location is not None:
                locations.append(location)
        if len(locations) != len(entries):
            return None
        file_format: SourceFormat = attribute.name  # type: ignore[assignment]
        shown = ", ".join(location.written for location in locations)
        return file_format, shown, tuple(locations)

    def location(self, entry: StringValue, kind: str, spec_file: Path) -> DataLocation | None:
        path = entry.value
        if not path.strip():
            self.error(entry.span, f"`{kind}` needs a file path")
            return None
        scheme = remote_scheme(path)
        if scheme is not None:
            return self.remote_location(entry, scheme)
        written = glob_base(path) if is_glob(path) else path
        try:
            if "\x00" in path:
                raise ValueError("it holds a NUL character")
            checked = check_data_path(
                written, spec_file=spec_file, configuration=self.root, data_root=self.data_root
            )
            if checked.resolved is not None:
                checked.resolved.exists()
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            shown = path[:80].replace("\x00", "\\0")
            self.error(entry.span, f"data file path `{shown}` is unusable: {reason}")
            return None
        if checked.resolved is None:
            problem = checked.problem or f"data file `{path}` is refused"
            self.error(entry.span, problem.replace(f"`{written}`", f"`{path}`", 1))
            return None
        resolved = checked.resolved
        if not resolved.exists():
            link = dangling_link(written, spec_file=spec_file)
            what = "folder" if is_glob(path) else "data file"
            self.error(
                entry.span,
                f"{what} `{written}` does not exist (paths are relative to the .sync file)"
                if link is None
                else f"{what} `{written}` does not exist: `{link.name}` on its way is a symlink "
                f"to `{os.readlink(link)}`, which does not exist",
            )
            return None
        roots = (self.root.resolve(),) + (
            (self.data_root.resolve(),) if self.data_root is not None else ()
        )
        pattern = Path(path).parts[len(Path(written).parts) if written != "." else 0 :]
        target = str(resolved.joinpath(*pattern))
        if not is_glob(path) and not resolved.is_file() and not resolved.is_dir():
            self.error(entry.span, f"data file `{path}` is not a file or a folder")
            return None
        try:
            files = local_files(path, Path(target), roots)
        except (OSError, ValueError) as error:
            self.error(entry.span, getattr(error, "strerror", None) or str(error))
            return None
        if not files:
            self.error(
                entry.span,
                f"`{path}` matches no data files"
                if is_glob(path)
                else f"folder `{path}` holds no data files (files named `_…`, `.…` or `*.crc` "
                "are not data)",
            )
            return None
        return DataLocation(path, target, roots)

    def remote_location(self, entry: StringValue, scheme: str) -> DataLocation | None:
        path = entry.value
        package = REMOTE_SCHEMES.get(scheme)
        if package is None:
            known = ", ".join(f"{name}://" for name in REMOTE_SCHEMES)
            self.error(
                entry.span,
                f"`{scheme}://` is not a storage syncdsl reads; use a local path or {known}",
            )
            return None
        bucket = path.split("://", 1)[1].split("/", 1)[0]
        if not bucket or "@" in bucket:
            self.error(
                entry.span,
                f"`{path}` needs a bucket (container) name, and no credentials: syncdsl reads "
                "them from the environment",
            )
            return None
        if importlib.util.find_spec(package) is None:
            self.error(
                entry.span,
                f"reading `{scheme}://` paths needs the `{package}` package: "
                f"pip install {package} (or syncdsl[remote])",
            )
            return None
        return DataLocation(path, path)

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
            value, fill = item.value, False
            if isinstance(value, CallValue) and value.name == FILL_IF_EMPTY:
                if len(value.args) != 1 or isinstance(value.args[0], CallValue):
                    self.error(
                        value.span,
                        f"`{FILL_IF_EMPTY}` takes one value: a field path, a literal or a "
                        f'template, like `{item.name} = {FILL_IF_EMPTY}("CDP")`',
                    )
                    continue
                value, fill = value.args[0], True
            expr = self.expression(value, item.name)
            if expr is not None:
                result.append(PropertyMapping(item.name, expr, item.span, fill))
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
        called = (
            f"; the one call a map takes is `{FILL_IF_EMPTY}(EXPR)`"
            if isinstance(value, CallValue)
            else ""
        )
        self.error(
            value.span,
            f'`{target}` takes a field path, a literal or a "{{{{ template }}}}"; found '
            f"{describe(value)}{called}",
        )
        return None
