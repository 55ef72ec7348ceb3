"""Property schemas to and from HubSpot's JSON (the Property, PropertyGroup and Option shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema


def option_to_api(option: PropertyOption) -> dict[str, Any]:
    return {
        "label": option.label,
        "value": option.value,
        "displayOrder": option.display_order,
        "hidden": option.hidden,
    }


def property_to_api(prop: PropertySchema) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "fieldType": prop.field_type,
        "groupName": prop.group_name,
    }
    if prop.description:
        payload["description"] = prop.description
    if prop.options or prop.type == "enumeration":
        payload["options"] = [option_to_api(option) for option in prop.options]
    return payload


def property_from_api(item: Mapping[str, Any]) -> PropertySchema:
    """Lenient: HubSpot's GET carries fieldTypes and extras its create schema does not allow."""
    metadata = item.get("modificationMetadata") or {}
    options = tuple(
        PropertyOption(
            label=str(option.get("label") or option.get("value") or ""),
            value=str(option.get("value") or ""),
            display_order=int(option.get("displayOrder") or 0),
            hidden=bool(option.get("hidden")),
        )
        for option in item.get("options") or []
        if isinstance(option, dict)
    )
    return PropertySchema(
        name=str(item.get("name") or ""),
        label=str(item.get("label") or ""),
        type=str(item.get("type") or ""),
        field_type=str(item.get("fieldType") or ""),
        group_name=str(item.get("groupName") or ""),
        description=str(item.get("description") or ""),
        options=options,
        read_only=bool(metadata.get("readOnlyValue")) or bool(item.get("calculated")),
    )


def group_from_api(item: Mapping[str, Any]) -> PropertyGroup:
    order = item.get("displayOrder")
    return PropertyGroup(
        name=str(item.get("name") or ""),
        label=str(item.get("label") or ""),
        display_order=int(order) if isinstance(order, int) else -1,
    )
