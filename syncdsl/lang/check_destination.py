"""The `destination hubspot { ... }` block: token, tier, base URL, API version and packs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from syncdsl.hubspot.tiers import API_VERSIONS, DEFAULT_API_VERSION, MAX_API_PACKS, TIERS
from syncdsl.lang.check_base import DESTINATION_ATTRIBUTES, ENV_NAME, Checker
from syncdsl.lang.endpoint import spec_base_url_problem
from syncdsl.lang.ir import (
    DEFAULT_BASE_URL,
    DEFAULT_PROPERTY_GROUP,
    DEFAULT_TIER,
    WRITE_MODES,
    Destination,
    WriteMode,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    CallValue,
    NumberValue,
    StringValue,
    describe,
)

STORE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class DestinationChecks(Checker):
    """The checks of the `destination hubspot { ... }` block."""

    def destination(self, block: Block) -> Destination:
        if block.label is None:
            self.error(block.type_span, "name the destination: write `destination hubspot {`")
        elif block.label != "hubspot":
            assert block.label_span is not None
            self.error(
                block.label_span,
                f"unsupported destination `{block.label}`: syncdsl writes to HubSpot; "
                "write `destination hubspot {`",
            )
        attrs, _ = self.members(block, "destination hubspot", attributes=DESTINATION_ATTRIBUTES)
        token_env = self.token(attrs.get("token"), block)
        tier = self.choice(
            attrs.get("tier"), "tier", tuple(TIERS), DEFAULT_TIER, example="professional"
        )
        base_url = DEFAULT_BASE_URL
        if "base_url" in attrs and (value := self.string(attrs["base_url"], DEFAULT_BASE_URL)):
            if not re.match(r"^https?://[^\s/]+", value):
                self.error(
                    attrs["base_url"].value.span,
                    f"`base_url` must be an http(s) URL, like `{DEFAULT_BASE_URL}`",
                )
            elif (problem := spec_base_url_problem(value)) is not None:
                self.error(attrs["base_url"].value.span, problem)
            else:
                base_url = value.rstrip("/")
        group = DEFAULT_PROPERTY_GROUP
        if "property_group" in attrs:
            attribute = attrs["property_group"]
            value = self.string(attribute, DEFAULT_PROPERTY_GROUP)
            if value is not None and self.internal_name(
                value, attribute.value.span, "property group"
            ):
                group = value
        return Destination(
            token_env or "",
            tier,
            base_url,
            group,
            block.span,
            api_version=self.api_version(attrs.get("api_version")),
            api_packs=self.api_packs(attrs.get("api_packs")),
            max_new_contacts=self.max_new_contacts(attrs.get("max_new_contacts")),
            mode=self.mode(attrs.get("mode")),
            store=self.store(attrs.get("store")),
            store_key=self.store_key(attrs.get("store_key")),
        )

    def store(self, attribute: Attribute | None) -> str | None:
        if attribute is None:
            return None
        value = self.string(attribute, "postgresql://syncdsl@db.example.com/syncdsl")
        if value is None:
            return None
        if value == "sqlite":
            return value
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            parts, password = None, None
        if parts is None or parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            self.error(
                attribute.value.span,
                "`store` is a PostgreSQL database, like "
                '`store = "postgresql://syncdsl@db.example.com:5432/syncdsl"` '
                '(or `"sqlite"`: the files beside the configuration, the default)',
            )
            return None
        if password is not None:
            self.error(
                attribute.value.span,
                "never write the database password in the file: leave it out of the URL and "
                "set PGPASSWORD in the environment (or use ~/.pgpass)",
            )
            return None
        return value

    def store_key(self, attribute: Attribute | None) -> str | None:
        if attribute is None:
            return None
        value = self.string(attribute, "brand-a")
        if value is not None and not STORE_KEY.match(value):
            self.error(
                attribute.value.span,
                "`store_key` names this configuration in a shared store: letters, digits, "
                '`.`, `_` and `-`, up to 100 characters, like `store_key = "brand-a"`',
            )
            return None
        return value

    def mode(self, attribute: Attribute | None) -> WriteMode:
        chosen = self.choice(
            attribute,
            "mode",
            WRITE_MODES,
            "upsert",
            example="update_only",
            explain=" (`update_only`: never create a contact, only update the ones HubSpot "
            "already has)",
        )
        return "update_only" if chosen == "update_only" else "upsert"

    def max_new_contacts(self, attribute: Attribute | None) -> int | None:
        if attribute is None:
            return None
        value = attribute.value
        if (
            isinstance(value, NumberValue)
            and not isinstance(value.value, bool)
            and float(value.value).is_integer()
            and value.value >= 0
        ):
            return int(value.value)
        found = f"`{value.value}`" if isinstance(value, NumberValue) else describe(value)
        self.error(
            value.span,
            "`max_new_contacts` is the most contacts one plan may create, a whole number like "
            f"`max_new_contacts = 5000` (0: never create); found {found}",
        )
        return None

    def api_version(self, attribute: Attribute | None) -> str:
        return self.choice(
            attribute,
            "HubSpot API version",
            API_VERSIONS,
            DEFAULT_API_VERSION,
            explain=f" (v1-v3 become unsupported in September 2027; `{DEFAULT_API_VERSION}` is "
            "current)",
        )

    def api_packs(self, attribute: Attribute | None) -> int:
        if attribute is None:
            return 0
        value = attribute.value
        if (
            isinstance(value, NumberValue)
            and not isinstance(value.value, bool)
            and value.value in range(MAX_API_PACKS + 1)
        ):
            return int(value.value)
        self.error(
            value.span,
            "`api_packs` is the number of API limit increase packs the account bought: 0, 1 or 2 "
            f"(each adds 1,000,000 requests a day on top of the tier); found {describe(value)}",
        )
        return 0

    def token(self, attribute: Attribute | None, block: Block) -> str | None:
        if attribute is None:
            self.error(
                block.type_span,
                'destination hubspot needs a token: add `token = env("HUBSPOT_TOKEN")`',
            )
            return None
        value = attribute.value
        if isinstance(value, StringValue):
            self.error(
                value.span,
                "never write the token in the file: read it from an environment variable "
                'with `token = env("HUBSPOT_TOKEN")`',
            )
            return None
        if not isinstance(value, CallValue) or value.name != "env":
            self.error(value.span, f'`token` must be `env("VARIABLE")`; found {describe(value)}')
            return None
        if len(value.args) != 1 or not isinstance(value.args[0], StringValue):
            self.error(value.span, 'env() takes one quoted variable name: `env("HUBSPOT_TOKEN")`')
            return None
        name = value.args[0].value
        if not ENV_NAME.match(name):
            self.error(value.args[0].span, f"`{name}` is not an environment variable name")
            return None
        return name
