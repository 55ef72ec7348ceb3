"""A connected HubSpot: its client, and the key the state store is bound to."""

from __future__ import annotations

from dataclasses import dataclass

from syncdsl.hubspot.client import HubSpotClient


@dataclass(frozen=True)
class Target:
    """A connected HubSpot: its client, and the key the state store is bound to."""

    client: HubSpotClient
    base_url: str
    state_key: str  # base URL, or "local:" for the embedded emulator (its port changes)
    local: bool
