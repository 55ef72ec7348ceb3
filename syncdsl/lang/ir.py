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
    """A path into a record: dots into nested objects (ints index lists), or one CSV column name
    (parts of one)."""

    parts: tuple[str | int, ...]
    span: Span

    @property
    def text(self) -> str:
        """The path as written: `identityMap.Email[0].id` (backticks left out)."""
        return path_text(self.parts, quote=False)


def path_text(parts: tuple[str | int, ...], *, quote: bool = True) -> str:
    """A field path for people: dotted, `[N]` for list indexes, backticks around segments that
    are not identifiers (when `quote`)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        shown = part if not quote or _IDENTIFIER.match(part) else f"`{part}`"
        text += f".{shown}" if text else shown
    return text


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
    """`hubspot_property = EXPR` inside a source's `map { }` block (`fill_if_empty(EXPR)`:
    written only when HubSpot holds no value)."""

    property: str
    expr: Expr
    span: Span
    fill_if_empty: bool = False


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
    #: the most contacts one plan may create (None: the default, see `syncdsl.plan.guards`)
    max_new_contacts: int | None = None
    #: "upsert": create or update by email; "update_only": only update contacts HubSpot has
    mode: WriteMode = "upsert"
    #: where the state and stream queue live: a postgresql:// URL (None: SQLite files beside)
    store: str | None = None
    #: the configuration's name in a shared store (None: its directory's name)
    store_key: str | None = None

    @property
    def limits(self) -> TierLimits:
        return TIERS[self.tier]

    @property
    def daily_limit(self) -> int:
        """The account's daily requests: the tier's, plus 1,000,000 per API limit increase pack."""
        return TIERS[self.tier].per_day + API_PACK_DAILY * self.api_packs


#: How contacts are written: created or updated (by email), or only updated (by HubSpot id).
WRITE_MODES: tuple[str, ...] = ("upsert", "update_only")
WriteMode = Literal["upsert", "update_only"]

#: The formats a source's data may be in: Experience Platform's NDJSON and Parquet exports, and
#: custom uploads in CSV.
SOURCE_FORMATS: tuple[str, ...] = ("jsonl", "parquet", "csv")
SourceFormat = Literal["jsonl", "parquet", "csv"]
#: Remote storage schemes, read through fsspec, and the package each one needs.
REMOTE_SCHEMES: dict[str, str] = {
    "s3": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


@dataclass(frozen=True)
class DataLocation:
    """One entry of a source's data, as written: a file, a folder or a glob, local or remote."""

    written: str  # as the spec holds it: "exports/*/part-*.json.gz", "s3://bucket/exports/"
    target: str  # local: the absolute path or glob; remote: the URL
    #: local: the resolved directories every file read must stay inside (the configuration's
    #: directory, the operator's data root); empty for remote locations.
    roots: tuple[Path, ...] = ()

    @property
    def remote(self) -> bool:
        return not self.roots

    @classmethod
    def file(cls, written: str, path: Path) -> DataLocation:
        """One local file, read from where it is."""
        resolved = path.resolve()
        return cls(written, str(resolved), (resolved.parent,))


#: Experience Platform's marketing consent values (`consents.marketing.<channel>.val`).
CONSENT_VALUES: tuple[str, ...] = ("y", "n", "p", "u", "LI", "CT", "CP", "VI", "PI")
#: The value that withholds consent under the default rule (every other value allows).
CONSENT_NO = "n"


@dataclass(frozen=True)
class Consent:
    """Which records of a source may be exported: the consent fields read, and the values that
    allow export. Every field that holds a value must allow; a field without one is skipped.
    `allow` None: every value but `n` allows, and a record with no value at all is exported;
    otherwise a value must be listed, and a record with no value at all is not exported."""

    fields: tuple[FieldPath, ...]
    allow: tuple[str, ...] | None = None
    written: bool = False  # named in the spec (not Experience Platform's default)

    @classmethod
    def platform_default(cls) -> Consent:
        """Experience Platform's marketing consent: `any` (which overrides every channel), then
        the email channel."""
        return cls(
            tuple(
                FieldPath(("consents", "marketing", channel, "val"), Span("", 0, 0, 0, 0))
                for channel in ("any", "email")
            )
        )

    def withheld(self, values: tuple[object, ...]) -> str | None:
        """Why a record whose fields hold `values` (None: no value) is not exported, or None
        when it may be. Values are strings (the caller refuses others)."""
        present = [(f, v) for f, v in zip(self.fields, values) if v is not None and v != ""]
        for field_path, value in present:
            if (value == CONSENT_NO) if self.allow is None else (value not in self.allow):
                return f"consent withheld: {field_path.text} is {consent_shown(value)}"
        if self.allow is not None and not present:
            return f"consent withheld: no value in {', '.join(f.text for f in self.fields)}"
        return None


_CONSENT_SHOWN = re.compile(r"[A-Za-z0-9_-]{1,20}\Z")


def consent_shown(value: object) -> str:
    """A consent value in a reason: quoted when it looks like one, else `another value`."""
    text = str(value)
    return f'"{text}"' if _CONSENT_SHOWN.match(text) else "another value"


@dataclass(frozen=True)
class Source:
    """A `source NAME { }` block: an Experience Platform export (jsonl, parquet) or a custom
    upload (csv), read from one or more files."""

    name: str
    format: SourceFormat
    path: str  # as written, for people: "data/profiles.jsonl", or "a.json.gz, b/*.json.gz"
    locations: tuple[DataLocation, ...]
    identity: FieldPath  # always the email identity
    mappings: tuple[PropertyMapping, ...]
    span: Span
    #: "full": the file is the whole membership (absent members exit); "incremental": only the
    #: profiles whose membership changed (absent ones keep their status).
    export: Literal["full", "incremental"] = "full"
    #: csv: the field delimiter; None: detected from each file's header line.
    delimiter: str | None = None
    #: csv: the text encoding (a UTF-8 byte-order mark is accepted either way).
    encoding: str = "utf-8"
    #: who may be exported; None: everyone (csv by default, or `consent = []`)
    consent: Consent | None = None

    @property
    def nested(self) -> bool:
        """Records are nested objects with XDM fields (jsonl, parquet), not flat csv rows."""
        return self.format != "csv"


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
