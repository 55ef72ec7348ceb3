"""Where the token may go: the spec's `base_url`, `HUBSPOT_API_BASE` and the token's characters.

A configuration is untrusted input (CI plans pull requests), so the spec alone may only point at
HubSpot's own API hosts over https; any other server must come from the operator, through
`HUBSPOT_API_BASE` or `--local`. Messages here never echo the token or a URL's credentials.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

HUBSPOT_DOMAIN = "hubapi.com"
#: What an HTTP header value may hold (RFC 9110 field-vchar, space and tab), no CR/LF.
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def is_hubspot_host(host: str) -> bool:
    """`api.hubapi.com`, `api.eu1.hubapi.com`...: HubSpot's own API hosts."""
    host = host.lower().rstrip(".")
    return host == HUBSPOT_DOMAIN or host.endswith("." + HUBSPOT_DOMAIN)


def spec_base_url_problem(url: str) -> str | None:
    """Why a spec's `base_url` is refused, or None when it names a HubSpot API host over https."""
    parts = _split(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # the caller reports "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "`base_url` must not hold credentials; the token comes from `token = env(...)`"
    if parts.scheme != "https" or not is_hubspot_host(parts.hostname):
        return (
            "a spec's `base_url` may only name HubSpot's API over https (a host under "
            f"{HUBSPOT_DOMAIN}, like `https://api.hubapi.com`): a configuration could otherwise "
            "send the token anywhere. To use another server, the operator sets HUBSPOT_API_BASE "
            "in the environment (or runs with --local)"
        )
    if parts.query or parts.fragment:
        return "`base_url` takes no query or fragment: write `https://api.hubapi.com`"
    return None


def api_base_problem(url: str, variable: str) -> str | None:
    """Why the operator's `HUBSPOT_API_BASE` is refused (the message never echoes the URL)."""
    parts = _split(url)
    if parts is None:
        return f"{variable} is not a valid URL: set it like `https://api.hubapi.com`"
    if parts.scheme not in ("http", "https"):
        return f"{variable} must be an http:// or https:// URL, like `https://api.hubapi.com`"
    if parts.username is not None or parts.password is not None:
        return (
            f"{variable} must not hold credentials (user:password@): the HubSpot token comes "
            "from the destination's `token = env(...)`; remove them from the URL"
        )
    if not parts.hostname:
        return f"{variable} names no host: set it like `https://api.hubapi.com`"
    if parts.query or parts.fragment:
        return f"{variable} must not hold a query (?...) or fragment (#...)"
    return None


def token_problem(token: str, variable: str) -> str | None:
    """Why a token cannot be sent as `Authorization: Bearer` (the message never prints it)."""
    if _HEADER_SAFE.match(token):
        return None
    return (
        f"the token in {variable} holds characters an HTTP header cannot carry (a newline, a "
        "space, a control or non-ASCII character): export the service key (or legacy private-app token) exactly as "
        "HubSpot shows it"
    )
