"""HubSpot's input rules: emails, property values by type, and property definitions."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncdsl.emulator.bodies import error, iso_from_ms, iso_now, validation_error

MAX_STRING_LENGTH = 65_536
MAX_PROPERTY_NAME_LENGTH = 100
DAY_MS = 86_400_000

#: Valid type -> fieldType pairs for creating a property (HUBSPOT.md §1.6, properties guide).
FIELD_TYPES: dict[str, frozenset[str]] = {
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "enumeration": frozenset(
        {"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"}
    ),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "string": frozenset(
        {"file", "text", "textarea", "calculation_equation", "html", "phonenumber"}
    ),
    "number": frozenset({"number", "calculation_equation"}),
    "phone_number": frozenset({"phonenumber"}),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TLD = re.compile(r"^[A-Za-z]{2,63}$")
# HubSpot rejected "gmail.con" and "example.lcom" in live runs (HUBSPOT.md §2.2): it knows real
# top-level domains. Without the full list we reject the usual typos of .com/.net/.org.
_TYPO_TLDS = frozenset(
    {"con", "cmo", "ocm", "comm", "lcom", "coom", "vom", "xom", "cpm", "clm", "nte", "ney", "ogr"}
)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_DIGITS = re.compile(r"^-?\d{1,18}$")
# What a HubSpot number (a double) and date (a four-digit ISO 8601 year) can hold: out of range
# is a 400 naming the value, never a 500 (the same ranges as syncdsl.records.values).
_MAX_NUMBER = Decimal(repr(sys.float_info.max))
_MIN_NUMBER = Decimal("5e-324")
_MIN_EPOCH_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_valid_email(email: str) -> bool:
    """Strict like HubSpot's INVALID_EMAIL: one @, sane local part, real-looking domain."""
    if not email or len(email) > 254 or email.count("@") != 1:
        return False
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in email):
        return False
    local, domain = email.split("@")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return False
    tld = labels[-1]
    return bool(_TLD.match(tld)) and tld.lower() not in _TYPO_TLDS


def email_problem(email: str, input_id: str | None) -> dict[str, Any]:
    return {
        "name": "email",
        "error": "INVALID_EMAIL",
        "message": f"Email address {email} is invalid",
        "id": input_id,
    }


def _problem(name: str, code: str, message: str) -> dict[str, Any]:
    return {"name": name, "error": code, "message": message}


def check_value(
    definition: Mapping[str, Any], value: Any
) -> tuple[str | None, dict[str, Any] | None]:
    """Validate one property value; return (normalized value, None) or (None, problem).

    An empty string clears the property and is always valid for writable properties.
    Date values come back as YYYY-MM-DD and datetimes as ISO 8601 UTC, as HubSpot reads them.
    """
    name = definition["name"]
    if definition.get("modificationMetadata", {}).get("readOnlyValue"):
        return None, _problem(
            name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
        )
    if not isinstance(value, str):
        if value is None:
            return "", None  # HubSpot treats null like "" (clears the value)
        return None, _problem(name, "INVALID_TYPE", f"{value!r} is not a string for {name}")
    if value == "":
        return "", None
    checker = _CHECKERS.get(definition["type"], _check_string)
    return checker(definition, value)


def _check_string(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    name = definition["name"]
    if len(value) > MAX_STRING_LENGTH:
        return None, _problem(
            name, "INVALID_LENGTH", f"{name} is longer than {MAX_STRING_LENGTH} characters"
        )
    if name == "email" and not is_valid_email(value):
        return None, _problem(name, "INVALID_EMAIL", f"Email address {value} is invalid")
    return (value.lower() if name == "email" else value), None


def _check_number(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    name = definition["name"]
    if not _NUMBER.match(value):
        return None, _problem(name, "INVALID_INTEGER", f"{value} was not a valid number.")
    magnitude = abs(Decimal(value))
    if magnitude > _MAX_NUMBER or (magnitude and magnitude < _MIN_NUMBER):
        return None, _problem(
            name, "INVALID_INTEGER", f"{_short(value)} is out of range for a number."
        )
    return value, None


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def _in_range(epoch_ms: int) -> bool:
    return _MIN_EPOCH_MS <= epoch_ms <= _MAX_EPOCH_MS


def _check_bool(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    if value in ("true", "false"):
        return value, None
    name = definition["name"]
    return None, _problem(
        name, "INVALID_BOOLEAN", f'{value} is not a valid boolean for {name}: use "true" or "false"'
    )


def _check_enumeration(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    allowed = [option["value"] for option in definition.get("options", [])]
    multi = definition.get("fieldType") == "checkbox"
    # Multi-checkbox values are ;-separated; a leading ; appends (the store merges it).
    parts = [part for part in value.split(";") if part] if multi else [value]
    bad = [part for part in parts if part not in allowed]
    if not bad and parts:
        return value, None
    shown = bad[0] if bad else value
    return None, _problem(
        definition["name"],
        "INVALID_OPTION",
        f"{shown} was not one of the allowed options: [{', '.join(allowed)}]",
    )


def _date_problem(name: str, value: str, why: str) -> tuple[None, dict[str, Any]]:
    return None, _problem(name, "INVALID_DATE", f"{value} is not a valid date for {name}: {why}")


def _check_date(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    name = definition["name"]
    if value.lstrip("-").isdigit():
        if not _EPOCH_DIGITS.match(value) or not _in_range(int(value)):
            return _date_problem(name, _short(value), "the date is out of range")
        epoch_ms = int(value)
        if epoch_ms % DAY_MS:
            return _date_problem(name, value, "epoch milliseconds must be at midnight UTC")
        return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).date().isoformat(), None
    if _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            return _date_problem(name, value, "no such day")
    moment = _parse_iso(value)
    if moment is None:
        return _date_problem(name, value, "use YYYY-MM-DD or epoch milliseconds at midnight UTC")
    if moment.time() != datetime.min.time():
        return _date_problem(name, value, "the time is not midnight UTC")
    return moment.date().isoformat(), None


def _check_datetime(
    definition: Mapping[str, Any], value: str
) -> tuple[str | None, dict[str, Any] | None]:
    name = definition["name"]
    if value.lstrip("-").isdigit():
        if not _EPOCH_DIGITS.match(value) or not _in_range(int(value)):
            return None, _problem(
                name, "INVALID_DATE", f"{_short(value)} is out of range for a datetime: {name}"
            )
        return iso_from_ms(int(value)), None
    moment = _parse_iso(value)
    if moment is None:
        return None, _problem(
            name,
            "INVALID_DATE",
            f"{_short(value)} is not a valid datetime for {name}: use ISO 8601 (years 0001-9999) "
            "or epoch milliseconds",
        )
    return iso_from_ms((moment - _EPOCH) // timedelta(milliseconds=1)), None


def _parse_iso(value: str) -> datetime | None:
    """The UTC instant of an ISO 8601 value, or None (also when UTC falls outside years 1-9999)."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


_CHECKERS = {
    "string": _check_string,
    "phone_number": _check_string,
    "number": _check_number,
    "bool": _check_bool,
    "enumeration": _check_enumeration,
    "date": _check_date,
    "datetime": _check_datetime,
}


# --- property definitions -------------------------------------------------------------------


def check_property_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise validation_error("Property name is required and must be a string.")
    if len(name) > MAX_PROPERTY_NAME_LENGTH:
        raise validation_error(
            f"Property name {name!r} is longer than {MAX_PROPERTY_NAME_LENGTH} characters."
        )
    if not _NAME.match(name):
        raise validation_error(
            f"Property name {name!r} is invalid: use lowercase letters, digits and underscores, "
            "starting with a letter."
        )


def display_order(raw: Any) -> int:
    """A displayOrder: an integer (or its digits), else a 400 rather than a crash."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"-?\d{1,9}", raw.strip()):
        return int(raw)
    raise validation_error(f"displayOrder must be an integer, got {str(raw)[:40]!r}.")


def check_type_pair(type_: Any, field_type: Any) -> None:
    if not isinstance(type_, str) or type_ not in FIELD_TYPES:
        raise validation_error(
            f"Invalid property type {type_!r}: use one of {', '.join(sorted(FIELD_TYPES))}."
        )
    if not isinstance(field_type, str) or field_type not in FIELD_TYPES[type_]:
        raise validation_error(
            f"Field type {field_type!r} is not valid for property type {type_!r}: use one of "
            f"{', '.join(sorted(FIELD_TYPES[type_]))}."
        )


def normalize_options(options: Any, *, required: bool) -> list[dict[str, Any]]:
    """Check an options list (label and value required, values unique) and fill defaults."""
    if options is None:
        options = []
    if not isinstance(options, list):
        raise validation_error("options must be a list of {label, value} objects.")
    if required and not options:
        raise validation_error("Enumeration properties must have at least one option.")
    seen: set[str] = set()
    normalized = []
    for index, option in enumerate(options):
        if not isinstance(option, dict):
            raise validation_error(f"options[{index}] must be an object.")
        label, value = option.get("label"), option.get("value")
        if not isinstance(label, str) or not label or not isinstance(value, str) or not value:
            raise validation_error(f"options[{index}] needs a non-empty label and value.")
        if value in seen:
            raise validation_error(f"Duplicate option value {value!r}.")
        seen.add(value)
        entry = {
            "label": label,
            "value": value,
            "displayOrder": display_order(option.get("displayOrder", index)),
            "hidden": bool(option.get("hidden", False)),
        }
        if option.get("description"):
            entry["description"] = str(option["description"])
        normalized.append(entry)
    return normalized


def build_property(body: Any, groups: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a PropertyCreate body; return the stored Property (raises ApiError 400)."""
    if not isinstance(body, dict):
        raise validation_error("The property definition must be a JSON object.")
    missing = [f for f in ("name", "label", "type", "fieldType", "groupName") if not body.get(f)]
    if missing:
        raise validation_error(f"Missing required field(s): {', '.join(missing)}.")
    check_property_name(body["name"])
    if not isinstance(body["label"], str):
        raise validation_error("label must be a string.")
    check_type_pair(body["type"], body["fieldType"])
    check_group(body["groupName"], groups)
    is_enum = body["type"] == "enumeration"
    options = normalize_options(body.get("options"), required=is_enum)
    if options and not is_enum and body["type"] != "bool":
        raise validation_error(f"Only enumeration properties take options, not {body['type']!r}.")
    now = iso_now()
    return {
        "updatedAt": now,
        "createdAt": now,
        "name": body["name"],
        "label": str(body["label"]),
        "type": body["type"],
        "fieldType": body["fieldType"],
        "description": str(body.get("description") or ""),
        "groupName": body["groupName"],
        "options": options,
        "displayOrder": display_order(body.get("displayOrder", -1)),
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
        "hidden": bool(body.get("hidden", False)),
        "hubspotDefined": False,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
        "formField": bool(body.get("formField", False)),
        "dataSensitivity": str(body.get("dataSensitivity") or "non_sensitive"),
        "archived": False,
    }


def check_group(group_name: Any, groups: Mapping[str, Any]) -> None:
    if not isinstance(group_name, str) or group_name not in groups:
        raise validation_error(
            f"Property group {group_name!r} does not exist. Create it first with "
            "POST /crm/v3/properties/contacts/groups."
        )


_UPDATABLE = (
    "label",
    "description",
    "groupName",
    "displayOrder",
    "hidden",
    "formField",
    "type",
    "fieldType",
    "options",
)


def apply_property_update(
    current: dict[str, Any], body: Any, groups: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate a PropertyUpdate body against `current`; return the updated Property."""
    if not isinstance(body, dict):
        raise validation_error("The property update must be a JSON object.")
    if "name" in body and body["name"] != current["name"]:
        raise validation_error("A property's internal name cannot be changed.")
    changes = {key: body[key] for key in _UPDATABLE if key in body}
    if current.get("modificationMetadata", {}).get("readOnlyDefinition") and changes:
        raise error(
            400,
            "VALIDATION_ERROR",
            f"{current['name']} is a HubSpot-defined property; its definition is read-only.",
        )
    if "displayOrder" in changes:
        changes["displayOrder"] = display_order(changes["displayOrder"])
    if "label" in changes and not isinstance(changes["label"], str):
        raise validation_error("label must be a string.")
    updated = dict(current)
    updated.update({k: v for k, v in changes.items() if k != "options"})
    check_type_pair(updated["type"], updated["fieldType"])
    check_group(updated["groupName"], groups)
    if "options" in changes:
        updated["options"] = normalize_options(
            changes["options"], required=updated["type"] == "enumeration"
        )
    elif updated["type"] == "enumeration" and not updated.get("options"):
        raise validation_error("Enumeration properties must have at least one option.")
    updated["updatedAt"] = iso_now()
    return updated


def check_group_create(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
        raise validation_error("A property group needs a name and a label.")
    check_property_name(body["name"])
    return {
        "name": body["name"],
        "label": str(body["label"]),
        "displayOrder": display_order(body.get("displayOrder", -1)),
        "archived": False,
    }
