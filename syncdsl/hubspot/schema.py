"""HubSpot's contact-property schema as syncdsl sees it (shared by sources, plan and the client)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The longest string value HubSpot stores in a property.
MAX_STRING_LENGTH = 65_536


@dataclass(frozen=True)
class PropertyOption:
    """One option of an enumeration property."""

    label: str
    value: str
    display_order: int = 0
    hidden: bool = False


@dataclass(frozen=True)
class PropertySchema:
    """A HubSpot contact property definition."""

    name: str
    label: str
    type: str  # string, number, date, datetime, bool, enumeration, phone_number
    field_type: str  # text, textarea, number, date, booleancheckbox, select, radio, checkbox, ...
    group_name: str = "contactinformation"
    description: str = ""
    options: tuple[PropertyOption, ...] = field(default_factory=tuple)
    read_only: bool = False  # modificationMetadata.readOnlyValue / calculated

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(option.value for option in self.options)


@dataclass(frozen=True)
class PropertyGroup:
    """A HubSpot property group."""

    name: str
    label: str
    display_order: int = -1
