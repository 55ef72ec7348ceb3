"""Property values: coercion to HubSpot's string form per type, and normalisation to compare."""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from syncdsl.hubspot.schema import MAX_STRING_LENGTH, PropertySchema

#: Why a value holding U+0000 is never sent: it is not text, and it marks a corrupt or binary input.
NUL_REASON = "holds a NUL character (\\x00), which is not text (a corrupt or binary input?)"
MS_PER_DAY = 86_400_000

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_EPOCH_MS = re.compile(r"-?\d{1,15}")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The values HubSpot can hold (README, Records): a number is a finite double, so its magnitude is
#: at most MAX_NUMBER and a non-zero one at least MIN_NUMBER; dates and datetimes are the instants
#: ISO 8601 writes with a four-digit year, 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
MAX_NUMBER = Decimal(repr(sys.float_info.max))
MIN_NUMBER = Decimal("5e-324")  # the smallest positive double (subnormal)
MIN_EPOCH_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_DATE_MS = MAX_EPOCH_MS - MAX_EPOCH_MS % MS_PER_DAY  # 9999-12-31


class CoercionError(ValueError):
    """A value that cannot become the property's type; the message names the reason."""


def coerce(value: object, prop: PropertySchema | None) -> str:
    """Turn a mapped value into HubSpot's string form for `prop`'s type (None: plain text).

    Raises:
        CoercionError: the value does not fit the type (the message says why).
    """
    if isinstance(value, (dict, list, tuple)):
        raise CoercionError(f"expected a single value, got {_kind(value)}")
    kind = _kind_of(prop)
    if kind == "number":
        text = _number(value)
    elif kind == "bool":
        text = _bool(value)
    elif kind == "date":
        text = str(_date_ms(value))
    elif kind == "datetime":
        text = str(_datetime_ms(value))
    elif kind == "enumeration":
        assert prop is not None
        text = _enumeration(value, prop)
    else:
        text = _text(value)
    if len(text) > MAX_STRING_LENGTH:
        raise CoercionError(
            f"{len(text):,} characters is longer than HubSpot's limit of {MAX_STRING_LENGTH:,}"
        )
    if "\x00" in text:
        raise CoercionError(NUL_REASON)
    return text


def normalize(value: str | None, prop: PropertySchema | None) -> str | None:
    """The canonical form of a value, so that HubSpot's value and a desired value compare equal.

    Never raises: a value that does not parse as its type is compared as it is.
    """
    if value is None or value == "":
        return None
    kind = _kind_of(prop)
    try:
        if kind == "number":
            return _number(value)
        if kind == "bool":
            return _bool(value)
        if kind == "date":
            return str(_date_ms(value, strict=False))
        if kind == "datetime":
            return str(_datetime_ms(value))
        if kind == "enumeration" and prop is not None and prop.field_type == "checkbox":
            return ";".join(sorted({part for part in value.split(";") if part}))
    except CoercionError:
        return value
    return value


def _kind_of(prop: PropertySchema | None) -> str:
    if prop is None:
        return "string"
    if prop.type == "bool":
        return "bool"
    if prop.type in ("number", "date", "datetime", "enumeration"):
        return prop.type
    return "string"


def _kind(value: object) -> str:
    return "an object" if isinstance(value, dict) else "a list"


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: object) -> str:
    if isinstance(value, bool):
        raise CoercionError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        if abs(value) > MAX_NUMBER:
            raise CoercionError(_number_range(_short(value), "larger than"))
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError(f"expected a finite number, got {value!r}")
        number = Decimal(repr(value))
    else:
        text = str(value).strip().replace("_", "?")  # Decimal accepts "1_000"; HubSpot does not
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise CoercionError(f"expected a number, got {str(value)!r}") from None
        if not number.is_finite():
            raise CoercionError(f"expected a finite number, got {str(value)!r}")
    if number == 0:
        return "0"
    # Checked before normalize(), which overflows past 1e999999, and before the plain form,
    # which would spell out every digit of 1e999999999.
    if number.adjusted() > 308 or abs(number) > MAX_NUMBER:
        raise CoercionError(_number_range(_short(value), "larger than"))
    if number.adjusted() < -324 or abs(number) < MIN_NUMBER:
        raise CoercionError(_number_range(_short(value), "closer to zero than"))
    return format(number.normalize(), "f")


def _number_range(shown: str, how: str) -> str:
    return (
        f"the number {shown} is {how} HubSpot can hold (a number's magnitude must be between "
        "5e-324 and 1.7976931348623157e308, or 0)"
    )


def _short(value: object) -> str:
    text = str(value).strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _bool(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    if text in _TRUE:
        return "true"
    if text in _FALSE:
        return "false"
    raise CoercionError(f"expected true/false (or yes/no, 1/0), got {str(value)!r}")


def _epoch_ms(value: object) -> int | None:
    """An integer epoch-milliseconds value, if `value` is one (int or digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _EPOCH_MS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _date_ms(value: object, *, strict: bool = True) -> int:
    millis = _epoch_ms(value)
    if millis is None:
        text = str(value).strip()
        if _DATE_ONLY.fullmatch(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise CoercionError(f"expected a date (YYYY-MM-DD), got {text!r}") from None
            return (day - _EPOCH.date()).days * MS_PER_DAY
        millis = _iso_ms(text, "a date (YYYY-MM-DD)")
    _check_range(millis, value, "date")
    if strict and millis % MS_PER_DAY:
        raise CoercionError(
            f"a date must be midnight UTC; {str(value)!r} has a time of day (map it to a datetime "
            "property or drop the time)"
        )
    return millis - millis % MS_PER_DAY if not strict else millis


def _datetime_ms(value: object) -> int:
    millis = _epoch_ms(value)
    if millis is None:
        text = str(value).strip()
        if _DATE_ONLY.fullmatch(text):
            return _date_ms(text)
        millis = _iso_ms(text, "an ISO 8601 datetime or epoch milliseconds")
    _check_range(millis, value, "datetime")
    return millis


def _check_range(millis: int, value: object, kind: str) -> None:
    high = MAX_DATE_MS if kind == "date" else MAX_EPOCH_MS
    if MIN_EPOCH_MS <= millis <= high:
        return
    last = "9999-12-31" if kind == "date" else "9999-12-31T23:59:59.999Z"
    first = "0001-01-01" if kind == "date" else "0001-01-01T00:00:00.000Z"
    raise CoercionError(
        f"the {kind} {_short(value)} is out of the range HubSpot can hold: {first} to {last} "
        f"(epoch milliseconds {MIN_EPOCH_MS} to {high})"
    )


def _iso_ms(text: str, expected: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CoercionError(f"expected {expected}, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # HubSpot reads offset-less times as UTC
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _enumeration(value: object, prop: PropertySchema) -> str:
    text = _bool(value) if isinstance(value, bool) else _text(value).strip()
    if prop.field_type == "checkbox":
        parts = [part for part in text.split(";") if part.strip()]
        chosen = [_option(part.strip(), prop) for part in parts]
        return (";" if text.startswith(";") else "") + ";".join(chosen)
    return _option(text, prop)


def _option(text: str, prop: PropertySchema) -> str:
    values = prop.option_values
    if text in values:
        return text
    folded = text.casefold()
    for option in prop.options:
        if option.label.casefold() == folded or option.value.casefold() == folded:
            return option.value
    if prop.field_type == "booleancheckbox":
        try:
            as_bool = _bool(text)
        except CoercionError:
            pass
        else:
            if as_bool in values:
                return as_bool
    shown = ", ".join(repr(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    raise CoercionError(f"{text!r} is not one of the options ({shown or 'none defined'})")


def iso_form(value: str | None, type_: str | None) -> str | None:
    """The ISO 8601 form of a date or datetime value for people (`1985-03-04`,
    `2026-12-02T10:00:00Z`); None when the value is not one (other types, unparseable)."""
    if value is None or type_ not in ("date", "datetime"):
        return None
    try:
        millis = _datetime_ms(value)
    except CoercionError:
        return None
    try:
        moment = _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return None
    if type_ == "date":
        return moment.date().isoformat()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"
