"""The intermediate representation of a syncdsl configuration: frozen dataclasses, each with its span."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syncdsl.errors import Span
from syncdsl.hubspot.tiers import API_PACK_DAILY, DEFAULT_API_VERSION, TIERS, TierLimits

DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_PROPERTY_GROUP = "syncdsl_audiences"
DEFAULT_TIER = "free"
DEFAULT_MASS_EXIT_THRESHOLD = 0.25
EXPORT_MODES: tuple[str, ...] = ("full", "incremental")

#: Audience statuses, as Experience Platform's segmentMembership reports them.
AUDIENCE_STATUSES: tuple[str, ...] = ("realized", "existing", "exited")


MAX_PROPERTY_NAME = 100


def derive_property_name(display_name: str) -> str:
    """HubSpot internal name for an audience: lowercase, runs of other characters -> `_`.

    "Newsletter Subscribers" -> "newsletter_subscribers". The result may still be invalid (empty,
    starting with a digit); validation reports that.
    """
    return re.sub(r"[^a-z0-9]+", "_", display_name.lower()).strip("_")[:MAX_PROPERTY_NAME]


@dataclass(frozen=True)
class FieldPath:
    """A path into a record: dots into nested JSON, or one CSV column name (parts of one)."""

    parts: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class LiteralValue:
    """A constant value: string, number or boolean."""

    value: str | int | float | bool
    span: Span


@dataclass(frozen=True)
class Template:
    """A Jinja template string ("{{ ... }}"), rendered per record in a sandbox."""

    source: str
    span: Span


Expr = FieldPath | LiteralValue | Template


@dataclass(frozen=True)
class PropertyMapping:
    """`hubspot_property = EXPR` inside a source's `map { }` block."""

    property: str
    expr: Expr
    span: Span


@dataclass(frozen=True)
class Destination:
    """The `destination hubspot { }` block."""

    token_env: str
    tier: str
    base_url: str
    property_group: str
    span: Span
    api_version: str = DEFAULT_API_VERSION
    api_packs: int = 0

    @property
    def limits(self) -> TierLimits:
        return TIERS[self.tier]

    @property
    def daily_limit(self) -> int:
        """The account's daily requests: the tier's, plus 1,000,000 per API limit increase pack."""
        return TIERS[self.tier].per_day + API_PACK_DAILY * self.api_packs


@dataclass(frozen=True)
class Source:
    """A `source NAME { }` block: a segmentation export (jsonl) or a custom upload (csv)."""

    name: str
    format: Literal["jsonl", "csv"]
    path: str  # as written, relative to the spec file
    resolved_path: Path  # absolute
    identity: FieldPath  # always the email identity
    mappings: tuple[PropertyMapping, ...]
    span: Span
    #: "full": the file is the whole membership (absent members exit); "incremental": only the
    #: profiles whose membership changed (absent ones keep their status).
    export: Literal["full", "incremental"] = "full"


@dataclass(frozen=True)
class PropertyDecl:
    """A `property "name" { }` block: a contact property syncdsl creates when it is missing."""

    name: str
    label: str
    type: str  # HubSpot type: string, number, date, datetime, bool, enumeration
    field_type: str  # HubSpot fieldType: text, number, date, booleancheckbox, select, ...
    options: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Audience:
    """An `audience "Display Name" { }` block: one enumeration contact property in HubSpot."""

    name: str  # display name, the property's label
    source: str
    segment: str | None  # segment id (jsonl sources); None for csv uploads
    property: str  # HubSpot internal name (derived from the display name unless given)
    adopt: bool
    mass_exit_threshold: float
    span: Span

    @builtins.property  # the field `property` above shadows the builtin in this class body
    def key(self) -> str:
        """The stable key that survives renames: the segment id, or the upload source."""
        return f"segment:{self.segment}" if self.segment else f"upload:{self.source}"


@dataclass(frozen=True)
class Spec:
    """One configuration: every `.sync` file of a file or a directory."""

    destination: Destination
    sources: tuple[Source, ...]
    audiences: tuple[Audience, ...]
    properties: tuple[PropertyDecl, ...]
    files: tuple[Path, ...]
    root: Path  # the directory that holds the configuration (state and lock file live here)

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)
