"""Map one source record to a contact: identity, expressions (paths, literals, Jinja), statuses."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError

from syncdsl.errors import Diagnostic, SpecError
from syncdsl.hubspot.schema import MAX_STRING_LENGTH, PropertySchema
from syncdsl.lang import ir
from syncdsl.lang.template_limits import TemplateLimitError, render_limited
from syncdsl.lang.template_values import TemplateValueError, check_scalar
from syncdsl.lang.templates import FAST_FILTERS, TEMPLATE_ENVIRONMENT
from syncdsl.records.identity import InvalidEmail, normalize_email
from syncdsl.records.values import NUL_REASON, CoercionError, coerce
from syncdsl.scrub import holds_secret, secrets_registered

AUDIENCE_STATUSES = frozenset(ir.AUDIENCE_STATUSES)
#: Names that are attributes of the values JSON can hold: Jinja would return the attribute
#: (e.g. `dict.items`), not the key, so such paths always go through Jinja itself.
_SHADOWED = frozenset(
    name for kind in (dict, list, str, int, float, bool, type(None)) for name in dir(kind)
)
_CONTAINERS = (dict, list)

Getter = Callable[[Mapping[str, object]], object]
TextGetter = Callable[[Mapping[str, object]], str]


class RecordRejected(Exception):
    """A record that cannot become a contact; `reason` says why, for the rejects file."""

    def __init__(self, reason: str, email: str | None = None) -> None:
        self.reason = reason
        self.email = email  # known when the identity was valid but something else was not
        super().__init__(reason)


@dataclass(frozen=True)
class MappedRecord:
    """One record as a contact: normalised email, coerced properties, audience statuses."""

    email: str
    properties: dict[str, str]
    audiences: dict[str, str]
    #: why the record is not exported (its consent): no properties, every audience `exited`
    withheld: str | None = None


def _path_getter(parts: tuple[str | int, ...], fmt: str) -> Getter:
    """A lookup for a field path: one dict key for csv, a walk into nested objects otherwise
    (`[N]` indexes a list; the namespace after `identityMap` matches in any letter case, as
    Experience Platform's namespaces do)."""
    if fmt == "csv" or len(parts) == 1:
        key = ".".join(str(part) for part in parts)
        return operator.methodcaller("get", key)
    if parts[0] == "identityMap" and isinstance(parts[1], str) and len(parts) > 2:
        return _identity_map_getter(parts[1], parts[2:])
    if len(parts) == 2 and all(isinstance(part, str) for part in parts):
        first, second = (str(part) for part in parts)

        def get2(record: Mapping[str, object]) -> object:
            inner = record.get(first)
            return inner.get(second) if type(inner) is dict else None

        return get2
    if len(parts) == 3 and all(isinstance(part, str) for part in parts):
        first, second, third = (str(part) for part in parts)

        def get3(record: Mapping[str, object]) -> object:
            inner = record.get(first)
            if type(inner) is not dict:
                return None
            inner = inner.get(second)
            return inner.get(third) if type(inner) is dict else None

        return get3
    return functools.partial(_walk, parts)


def _walk(parts: tuple[str | int, ...], value: object) -> object:
    for part in parts:
        if type(value) is dict:
            value = value.get(part)
        elif type(value) is list and type(part) is int:
            value = value[part] if part < len(value) else None
        elif (
            type(value) is list and type(part) is str and part.isdigit() and int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return None
    return value


def _identity_map_getter(namespace: str, rest: tuple[str | int, ...]) -> Getter:
    folded = namespace.lower()

    def get(record: Mapping[str, object]) -> object:
        identity_map = record.get("identityMap")
        if type(identity_map) is not dict:
            return None
        entries = identity_map.get(namespace)
        if entries is None:
            entries = next((v for k, v in identity_map.items() if str(k).lower() == folded), None)
        return _walk(rest, entries)

    return get


def _fast_template(source: str, fmt: str) -> TextGetter | None:
    """A pure-Python equivalent of `{{ a.b }}` / `{{ a.b | title }}`, or None if not that simple.

    Jinja costs ~10 µs a render; this shape is common enough (the reference spec uses it) to
    deserve a lookup. Equivalence with Jinja is property-tested.
    """
    shape = _template_shape(source)
    if shape is None:
        return None
    parts, filter_name = shape
    if fmt == "csv" and len(parts) > 1:
        return None
    return _fast_render(parts, filter_name)


def fast_template_shape(source: str) -> tuple[str, ...] | None:
    """The field path of a template of the simple shape `_fast_template` renders (its output
    depends on that one value only), or None."""
    shape = _template_shape(source)
    return shape[0] if shape is not None else None


def _template_shape(source: str) -> tuple[tuple[str, ...], str | None] | None:
    try:
        tree = TEMPLATE_ENVIRONMENT.parse(source)
    except TemplateSyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    outputs = tree.body[0].nodes
    if len(outputs) != 1:
        return None
    node = outputs[0]
    filter_name: str | None = None
    if isinstance(node, nodes.Filter):
        if node.name not in FAST_FILTERS or node.args or node.kwargs or node.dyn_args:
            return None
        if node.dyn_kwargs or node.node is None:
            return None
        filter_name, node = node.name, node.node
    parts: list[str] = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.name == "record":
        return None
    if node.name in TEMPLATE_ENVIRONMENT.globals:
        return None  # `range`, `dict`, `cycler`...: Jinja would find the global
    parts.append(node.name)
    parts.reverse()
    if any(part in _SHADOWED or part.startswith("_") for part in parts):
        return None
    return tuple(parts), filter_name


def _fast_render(parts: tuple[str, ...], filter_name: str | None) -> TextGetter:
    apply = TEMPLATE_ENVIRONMENT.filters[filter_name] if filter_name else None
    undefined_text = str(apply(ChainableUndefined()) if apply else ChainableUndefined())

    def render(record: Mapping[str, object]) -> str:
        value: object = record
        for part in parts:
            if type(value) is not dict or part not in value:
                return undefined_text
            value = value[part]
        if type(value) in _CONTAINERS:
            check_scalar(value)  # raises: Jinja refuses to print a container too
        if apply is not None:
            value = apply(value)
        return "" if value is None else str(value)

    return render


def _template_getter(template: ir.Template, prop: str, fmt: str) -> Getter:
    fast = _fast_template(template.source, fmt)
    if fast is not None:

        def render_fast(record: Mapping[str, object]) -> object:
            try:
                return fast(record).strip()
            except TemplateValueError as error:
                raise RecordRejected(f"template for {prop!r}: {error}") from None

        return render_fast
    try:
        compiled = TEMPLATE_ENVIRONMENT.from_string(template.source)
    except TemplateSyntaxError as error:
        raise SpecError(
            [Diagnostic(template.span, f"template for {prop!r} does not compile: {error.message}")]
        ) from None

    def render(record: Mapping[str, object]) -> object:
        try:
            if "record" in record:
                text = render_limited(compiled, record)
            else:
                text = render_limited(compiled, record, record=record)
        except TemplateLimitError as error:
            raise RecordRejected(f"template for {prop!r} {error}") from None
        except SecurityError as error:
            raise RecordRejected(
                f"template for {prop!r} tried to leave the sandbox: {error}"
            ) from error
        except TemplateValueError as error:
            raise RecordRejected(f"template for {prop!r}: {error}") from None
        except Exception as error:
            raise RecordRejected(
                f"template for {prop!r} failed: {type(error).__name__}: {error}"
            ) from error
        return text.strip()

    return render


def _referenced_paths(source: str) -> tuple[tuple[str, ...], ...]:
    """The record fields a template reads (`person.name.firstName`), longest paths only."""
    try:
        tree = TEMPLATE_ENVIRONMENT.parse(source)
    except TemplateSyntaxError:
        return ()
    roots = meta.find_undeclared_variables(tree) - set(TEMPLATE_ENVIRONMENT.globals)
    paths: set[tuple[str, ...]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        parts: list[str] = []
        while True:
            if isinstance(node, nodes.Getattr):
                parts.append(node.attr)
                node = node.node
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                parts.append(str(node.arg.value))
                node = node.node
            else:
                break
        if isinstance(node, nodes.Name) and node.name in roots:
            paths.add((node.name, *reversed(parts)))
    longest = {p for p in paths if not any(q != p and q[: len(p)] == p for q in paths)}
    return tuple(sorted(longest))


def _presence(template: ir.Template, fmt: str) -> Callable[[Mapping[str, object]], bool] | None:
    """For partial events: does a record hold at least one field this template reads?"""
    paths = _referenced_paths(template.source)
    if not paths:
        return None  # reads no field: a constant, rendered every time
    getters = [_path_getter(path if fmt != "csv" else (".".join(path),), fmt) for path in paths]
    return lambda record: any(getter(record) not in (None, "") for getter in getters)


def _expr_getter(mapping: ir.PropertyMapping, fmt: str, prop: PropertySchema | None) -> Getter:
    expr = mapping.expr
    if isinstance(expr, ir.FieldPath):
        return _path_getter(expr.parts, fmt)
    if isinstance(expr, ir.Template):
        return _template_getter(expr, mapping.property, fmt)
    try:
        constant = coerce(expr.value, prop)
    except CoercionError as error:
        raise SpecError(
            [Diagnostic(expr.span, f"value for {mapping.property!r} does not fit: {error}")]
        ) from None
    return lambda record: constant


class ProfileMapper:
    """Turns records of one source into contacts; every expression is compiled once, here."""

    def __init__(
        self,
        spec: ir.Spec,
        source: ir.Source,
        schema: Mapping[str, PropertySchema] | None = None,
    ) -> None:
        fmt = "nested" if source.nested else "csv"
        self.source = source
        self._identity_field = source.identity.text
        self.identities_skipped = 0  # other emails of profiles with several (identityMap)
        self._email: Getter = self._identity_getter(source.identity.parts, fmt)
        schema = schema or {}
        self._properties: tuple[tuple[str, Getter, PropertySchema | None], ...] = tuple(
            (
                mapping.property,
                _expr_getter(mapping, fmt, schema.get(mapping.property)),
                _coercible(schema.get(mapping.property)),
            )
            for mapping in source.mappings
        )
        self._presence = tuple(
            _presence(mapping.expr, fmt) if isinstance(mapping.expr, ir.Template) else None
            for mapping in source.mappings
        )
        audiences = [audience for audience in spec.audiences if audience.source == source.name]
        self._segments = tuple(
            (audience.property, audience.segment) for audience in audiences if source.nested
        )
        self._uploads = {audience.property: "realized" for audience in audiences if fmt == "csv"}
        self._upload_statuses: list[str | None] = list(self._uploads.values())
        self.consent = source.consent
        self._consent_getters = tuple(
            _path_getter(field_path.parts, fmt)
            for field_path in (source.consent.fields if source.consent else ())
        )
        self.consent_held = 0  # records read with a value in a consent field
        self._nothing: list[str | None] = [None] * len(self._properties)
        self._exits: list[str | None] = ["exited"] * len(self.audience_properties)

    def _identity_getter(self, parts: tuple[str | int, ...], fmt: str) -> Getter:
        """The email lookup; `identityMap.<Namespace>` takes the namespace's primary identity."""
        if fmt != "nested" or len(parts) != 2 or parts[0] != "identityMap":
            return _path_getter(parts, fmt)
        namespace = str(parts[1]).lower()

        def primary_identity(record: Mapping[str, object]) -> object:
            identity_map = record.get("identityMap")
            if type(identity_map) is not dict:
                return None
            entries = next(
                (v for k, v in identity_map.items() if str(k).lower() == namespace), None
            )
            if type(entries) is dict:
                entries = [entries]
            if type(entries) is not list:
                return None
            ids = [e for e in entries if type(e) is dict and e.get("id") not in (None, "")]
            if not ids:
                return None
            self.identities_skipped += len(ids) - 1
            return next((e for e in ids if e.get("primary") is True), ids[0])["id"]

        return primary_identity

    @property
    def segment_ids(self) -> tuple[str | None, ...]:
        """The segments whose statuses `map_row` returns, in order (jsonl and parquet)."""
        return tuple(segment for _, segment in self._segments)

    @property
    def property_names(self) -> tuple[str, ...]:
        """The mapped HubSpot properties, in the order `map_row` returns their values."""
        return tuple(name for name, _, _ in self._properties)

    @property
    def audience_properties(self) -> tuple[str, ...]:
        """The audience properties of this source, in the order `map_row` returns statuses."""
        if self._uploads:
            return tuple(self._uploads)
        return tuple(audience_property for audience_property, _ in self._segments)

    def map(self, record: Mapping[str, object], *, partial: bool = False) -> MappedRecord:
        """Map one record. Raises RecordRejected(reason) when it cannot become a contact.

        `partial` (stream events): a template is rendered only when the event holds at least
        one field it reads, so an event without them never overwrites what it made before; an
        event holding no consent field leaves consent as it was.
        """
        email, values, statuses, withheld = self.map_row(record, partial=partial)
        if partial and withheld is None:
            values = [
                None if present is not None and not present(record) else value
                for value, present in zip(values, self._presence)
            ]
        properties = {
            name: value for name, value in zip(self.property_names, values) if value is not None
        }
        audiences = {
            name: status
            for name, status in zip(self.audience_properties, statuses)
            if status is not None
        }
        return MappedRecord(email, properties, audiences, withheld)

    def map_row(
        self, record: Mapping[str, object], *, partial: bool = False
    ) -> tuple[str, list[str | None], list[str | None], str | None]:
        """`map` as positional lists (None: not sent / not a member), and why the record is
        withheld (None: it is not), for the bulk path. A withheld record sends no value and
        exits every audience of its source; its values are not read."""
        raw_email = self._email(record)
        if raw_email is None or raw_email == "":
            raise RecordRejected(f"no email: field {self._identity_field!r} is missing or empty")
        try:
            email = normalize_email(raw_email)
        except InvalidEmail as error:
            raise RecordRejected(str(error)) from None
        try:
            withheld = self._withheld(record, partial) if self.consent else None
            if withheld is not None:
                return email, self._nothing, self._exits, withheld
            return (*self._map_values(email, record), None)
        except RecordRejected as error:
            error.email = email
            raise

    def holds_consent(self, record: Mapping[str, object]) -> bool:
        """The record holds a value in one of the source's consent fields."""
        return any(getter(record) not in (None, "") for getter in self._consent_getters)

    def _withheld(self, record: Mapping[str, object], partial: bool) -> str | None:
        """Why the record's consent withholds it, or None (RecordRejected: a consent field
        holds something that is not a consent value)."""
        assert self.consent is not None
        values = tuple(getter(record) for getter in self._consent_getters)
        for field_path, value in zip(self.consent.fields, values):
            if value is not None and type(value) is not str:
                raise RecordRejected(
                    f"consent: `{field_path.text}` holds {_kind(value)}, not a consent value "
                    'like "y" or "n"'
                )
        if any(value is not None and value != "" for value in values):
            self.consent_held += 1
        elif partial:
            return None  # an event without consent fields: consent as it was
        return self.consent.withheld(values)

    def _map_values(
        self, email: str, record: Mapping[str, object]
    ) -> tuple[str, list[str | None], list[str | None]]:
        values: list[str | None] = []
        append = values.append
        for name, getter, prop in self._properties:
            value = getter(record)
            if value is None or value == "":
                append(None)
            elif type(value) is str and prop is None:
                append(_checked_text(name, value))
            elif type(value) is str and value.isspace():
                append(None)
            else:
                try:
                    append(coerce(value, prop))
                except CoercionError as error:
                    raise RecordRejected(f"property {name!r}: {error}") from None
        if secrets_registered():
            _refuse_secrets(self._properties, values)
        if self._segments:
            return email, values, self._statuses(record)
        return email, values, self._upload_statuses

    def map_value(self, index: int, record: Mapping[str, object]) -> str | None:
        """The value mapping `index` makes of `record` (None: nothing to send), exactly as
        `map_row` makes it. Raises RecordRejected when the record cannot become a contact."""
        name, getter, prop = self._properties[index]
        value = getter(record)
        if value is None or value == "":
            return None
        if type(value) is str and prop is None:
            text = _checked_text(name, value)
        elif type(value) is str and value.isspace():
            return None
        else:
            try:
                text = coerce(value, prop)
            except CoercionError as error:
                raise RecordRejected(f"property {name!r}: {error}") from None
        if text is not None and secrets_registered():
            _refuse_secrets(self._properties[index : index + 1], [text])
        return text

    def coerces(self, index: int) -> bool:
        """Whether mapping `index` goes to a typed property (number, date, ...), whose values
        `coerce` converts; False for plain text."""
        return self._properties[index][2] is not None

    def _statuses(self, record: Mapping[str, object]) -> list[str | None]:
        missing: list[str | None] = [None] * len(self._segments)
        membership = record.get("segmentMembership")
        if membership is None:
            membership = record.get("xdm:segmentMembership")
        if membership is None:
            return missing
        if type(membership) is not dict:
            raise RecordRejected("segmentMembership is not an object")
        ups = membership.get("ups")
        if ups is None:
            ups = membership.get("xdm:ups")
        if ups is None:
            return missing
        if type(ups) is not dict:
            raise RecordRejected("segmentMembership.ups is not an object")
        statuses: list[str | None] = []
        for _, segment in self._segments:
            entry = ups.get(segment)
            if entry is None:
                statuses.append(None)
                continue
            if type(entry) is not dict:
                raise RecordRejected(f"segment {segment}: membership is not an object")
            status = entry.get("status")
            if status is None:
                status = entry.get("xdm:status")
            if status is None:
                status = "realized"  # XDM's declared default for xdm:status
            if type(status) is not str or status not in AUDIENCE_STATUSES:
                status = _folded_status(segment, status)
            statuses.append(status)
        return statuses


def _kind(value: object) -> str:
    """What a JSON value is, for people."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _checked_text(name: str, value: str) -> str | None:
    """A plain-text value as sent: None when only whitespace; RecordRejected beyond HubSpot's
    length or holding NUL."""
    if value.isspace():
        return None
    if len(value) > MAX_STRING_LENGTH:
        raise RecordRejected(
            f"property {name!r}: {len(value):,} characters is longer than HubSpot's "
            f"limit of {MAX_STRING_LENGTH:,}"
        )
    if "\x00" in value:
        raise RecordRejected(f"property {name!r}: {NUL_REASON}")
    return value


def _refuse_secrets(
    properties: Sequence[tuple[str, Getter, PropertySchema | None]], values: list[str | None]
) -> None:
    """A value holding the HubSpot token (say, a data file read from the environment) is never
    sent to HubSpot, nor shown: the record is rejected, the token masked in its rejects line."""
    for (name, _, _), value in zip(properties, values):
        if value is not None and holds_secret(value):
            raise RecordRejected(f"property {name!r}: the value holds a secret (the HubSpot token)")


def _folded_status(segment: str | None, status: object) -> str:
    """A status written in another case or with spaces; RecordRejected for anything else."""
    folded = status.strip().lower() if isinstance(status, str) else None
    if folded in AUDIENCE_STATUSES:
        return folded
    shown = repr(status)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise RecordRejected(
        f"segment {segment}: status {shown} is not one of realized, existing, exited"
    )


def _coercible(prop: PropertySchema | None) -> PropertySchema | None:
    """None for plain-text properties, so the hot path can skip `coerce` for them."""
    if prop is None or prop.type in ("string", "phone_number"):
        return None
    return prop
