"""HubSpot CRM client (API versions v3, 2026-03, 2026-09): typed calls, one shared rate budget, retries, errors for people.

Module map: `client` (HubSpotClient: the typed calls and the send/retry loop), `ratelimit`
(RateBudget: the tier's rolling window corrected by HubSpot's headers, search's 5/s, the daily
quota), `retry` (which failures are retried and how long to wait), `errors` (HubSpot responses to
syncdsl.errors exceptions with messages that say what to do), `models` (Contact, ContactWrite,
WriteReply, UpsertResult, ClientStats).
"""

from __future__ import annotations

from syncdsl.hubspot.client import USER_AGENT, ApiPaths, HubSpotClient, redacted_headers
from syncdsl.hubspot.models import ClientStats, Contact, ContactWrite, UpsertResult, WriteReply
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import Backoff

__all__ = [
    "USER_AGENT",
    "ApiPaths",
    "Backoff",
    "ClientStats",
    "Contact",
    "ContactWrite",
    "HubSpotClient",
    "RateBudget",
    "UpsertResult",
    "WriteReply",
    "redacted_headers",
]
