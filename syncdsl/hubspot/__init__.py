"""HubSpot CRM v3 client: typed calls, one shared rate budget, retries, errors for people.

Module map: `client` (HubSpotClient: the typed calls and the send/retry loop), `ratelimit`
(RateBudget: the tier's rolling window corrected by HubSpot's headers, search's 5/s, the daily
quota), `retry` (which failures are retried and how long to wait), `errors` (HubSpot responses to
syncdsl.errors exceptions with messages that say what to do), `models` (Contact, UpsertResult,
ClientStats).
"""

from __future__ import annotations

from syncdsl.hubspot.client import USER_AGENT, HubSpotClient, redacted_headers
from syncdsl.hubspot.models import ClientStats, Contact, UpdateOutcome, UpsertResult
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import Backoff

__all__ = [
    "USER_AGENT",
    "Backoff",
    "ClientStats",
    "Contact",
    "HubSpotClient",
    "RateBudget",
    "UpdateOutcome",
    "UpsertResult",
    "redacted_headers",
]
