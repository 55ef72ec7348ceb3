"""Where commands run: the HubSpot to talk to (real, or the embedded local one) and its client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from syncdsl.errors import SyncdslError
from syncdsl.hubspot import HubSpotClient
from syncdsl.ir import Spec
from syncdsl.state import state_dir

API_BASE_ENV = "HUBSPOT_API_BASE"
LOCAL_TOKEN = "pat-local-emulator"
LOCAL_DATA = "local-hubspot.json"
LOCAL_STATE_KEY = "local:"  # what the state is bound to for the embedded emulator (its port varies)


@dataclass(frozen=True)
class Target:
    """A connected HubSpot: its client, and the key the state store is bound to."""

    client: HubSpotClient
    base_url: str
    state_key: str  # base URL, or "local:" for the embedded emulator (its port changes)
    local: bool


def resolve_base_url(spec: Spec) -> str:
    """`HUBSPOT_API_BASE` overrides the spec's `base_url`, which defaults to api.hubapi.com."""
    return (os.environ.get(API_BASE_ENV) or spec.destination.base_url).rstrip("/")


def resolve_token(spec: Spec) -> str:
    name = spec.destination.token_env
    token = os.environ.get(name, "").strip()
    if not token:
        raise SyncdslError(
            f"the environment variable {name} is not set: export your HubSpot service key or "
            f"(legacy) private-app access token in it (`export {name}=...`; scopes "
            "crm.objects.contacts.read/write and crm.schemas.contacts.read/write; create a service "
            "key under Development > Keys > Service keys), or add --local to run against the "
            "embedded local HubSpot"
        )
    return token


@contextmanager
def connect(spec: Spec, *, local: bool = False, parallelism: int = 8) -> Iterator[Target]:
    """Yield a client for the configured HubSpot, or for an embedded emulator with --local.

    The embedded emulator keeps its data in `.syncdsl/local-hubspot.json` beside the
    configuration, so plan and apply see the same local portal from one command to the next.
    """
    if local:
        from syncdsl.emulator import Emulator

        emulator = Emulator(
            token=LOCAL_TOKEN,
            tier=spec.destination.tier,
            daily_limit=spec.destination.daily_limit,
            state_file=state_dir(spec.root) / LOCAL_DATA,
        )
        state_dir(spec.root).mkdir(parents=True, exist_ok=True)
        base_url = emulator.start()
        client = HubSpotClient(
            base_url,
            LOCAL_TOKEN,
            tier=spec.destination.tier,
            pool_size=max(parallelism, 4),
            api_version=spec.destination.api_version,
        )
        try:
            yield Target(client, base_url, LOCAL_STATE_KEY, True)
        finally:
            client.close()
            emulator.stop()
        return
    base_url = resolve_base_url(spec)
    client = HubSpotClient(
        base_url,
        resolve_token(spec),
        tier=spec.destination.tier,
        pool_size=max(parallelism, 4),
        api_version=spec.destination.api_version,
    )
    try:
        yield Target(client, base_url, base_url, False)
    finally:
        client.close()
