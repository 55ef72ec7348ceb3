"""HubSpot's account facts syncdsl plans by: API versions, rate-limit tiers, API packs."""

from __future__ import annotations

from dataclasses import dataclass

#: HubSpot API versions syncdsl speaks (v1-v3 become unsupported in September 2027).
API_VERSIONS: tuple[str, ...] = ("v3", "2026-03", "2026-09")
DEFAULT_API_VERSION = "2026-09"
#: Each API limit increase pack adds this many requests per day on top of the tier (at most two).
API_PACK_DAILY = 1_000_000
MAX_API_PACKS = 2


@dataclass(frozen=True)
class TierLimits:
    """A HubSpot rate-limit tier: requests per 10-second window and per day."""

    name: str
    per_ten_seconds: int
    per_day: int


#: HubSpot's private-app limits per tier (developers.hubspot.com usage guidelines).
TIERS: dict[str, TierLimits] = {
    "free": TierLimits("free", 100, 250_000),
    "starter": TierLimits("starter", 100, 250_000),
    "professional": TierLimits("professional", 190, 625_000),
    "enterprise": TierLimits("enterprise", 190, 1_000_000),
    "api_add_on": TierLimits("api_add_on", 250, 1_250_000),
}
