"""HubSpot CRM v3 client: typed calls, one shared rate budget, retries, errors for people."""

from __future__ import annotations

from syncdsl.hubspot.client import USER_AGENT, HubSpotClient, redacted_headers
from syncdsl.hubspot.models import ClientStats, Contact, UpsertResult
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import Backoff

__all__ = [
    "USER_AGENT",
    "Backoff",
    "ClientStats",
    "Contact",
    "HubSpotClient",
    "RateBudget",
    "UpsertResult",
    "redacted_headers",
]
