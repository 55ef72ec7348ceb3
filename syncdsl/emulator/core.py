"""The Emulator: one local HubSpot portal, served over HTTP and reachable directly from tests."""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from syncdsl.emulator.faults import FaultInjector
from syncdsl.emulator.ratelimit import RateLimiter
from syncdsl.emulator.server import EmulatorServer
from syncdsl.emulator.store import Store
from syncdsl.emulator.validation import build_property, check_value, is_valid_email
from syncdsl.hubspot.tiers import TIERS
from syncdsl.safefile import refuse_symlink

DEFAULT_TOKEN = "pat-local-emulator"
DEFAULT_SCOPES = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the emulator answered (status 0: the connection was dropped)."""

    method: str
    path: str
    status: int
    operation: str


class Emulator:
    """A local HubSpot CRM v3 contacts + properties API; see the package docstring."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        scopes: Iterable[str] | None = None,
        tier: str = "free",
        window_seconds: float = 10.0,
        window_limit: int | None = None,
        daily_limit: int | None = None,
        search_per_second: int = 5,
        rate_limits: bool = True,
        fail_rate: float = 0.0,
        reset_rate: float = 0.0,
        latency: float = 0.0,
        seed: int | None = None,
        state_file: Path | None = None,
        search_lag_ms: float = 0.0,
        required_on_create: Iterable[str] = (),
        save_on_stop: bool = True,
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}: use one of {', '.join(TIERS)}")
        limits = TIERS[tier]
        self.token = token
        self.scopes = frozenset(DEFAULT_SCOPES if scopes is None else scopes)
        self.latency = latency
        self.state_file = Path(state_file) if state_file is not None else None
        self.save_on_stop = save_on_stop
        if self.state_file is not None:
            refuse_symlink(self.state_file)  # before anything is served: it would be written
        self.limiter = RateLimiter(
            window_seconds=window_seconds,
            window_limit=window_limit if window_limit is not None else limits.per_ten_seconds,
            daily_limit=daily_limit if daily_limit is not None else limits.per_day,
            search_per_second=search_per_second,
            enabled=rate_limits,
        )
        self.faults = FaultInjector(fail_rate=fail_rate, reset_rate=reset_rate, seed=seed)
        self.shuffle_rng = random.Random(seed)
        self.store = Store()
        self.store.search_lag = max(search_lag_ms, 0.0) / 1000.0
        self.store.required_on_create = tuple(required_on_create)
        if self.state_file is not None and self.state_file.exists():
            self.store.load(self.state_file)
        self.requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._writing: dict[str, int] = {}  # contacts in batch writes being handled now
        #: batch writes that arrived while another one held one of their contacts
        self.overlapping_writes = 0
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url = ""

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; return the base URL, e.g. "http://127.0.0.1:8765"."""
        if self._server is not None:
            return self._base_url
        self._server = EmulatorServer((host, port), self)
        bound_host, bound_port = self._server.server_address[:2]
        self._base_url = f"http://{bound_host!s}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one poll interval
            name="hubspot-emulator",
            daemon=True,
        )
        self._thread.start()
        return self._base_url

    def stop(self) -> None:
        """Stop serving, close open connections, and save the state file when one is set (and
        `save_on_stop`: a reader, such as a plan, leaves the file as it found it)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.state_file is not None and self.save_on_stop:
            self.save()

    @property
    def base_url(self) -> str:
        return self._base_url

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def save(self, path: Path | None = None) -> None:
        """Write the portal's state as JSON (atomically) to `path` or the state file."""
        target = path if path is not None else self.state_file
        if target is None:
            raise ValueError("no path given and the emulator has no state_file")
        self.store.save(Path(target))

    # --- request log ------------------------------------------------------------------------

    def record(self, method: str, path: str, status: int, operation: str) -> None:
        with self._requests_lock:
            self.requests.append(RequestRecord(method, path, status, operation))

    def begin_write(self, operation: str, raw: bytes) -> frozenset[str]:
        """A batch write arrives: count it in `overlapping_writes` when one of its contacts
        (email or id) is in another batch still being handled; -> its contacts."""
        if operation not in ("contacts.batch_upsert", "contacts.batch_update"):
            return frozenset()
        try:
            inputs = json.loads(raw or b"{}").get("inputs", [])
            keys = frozenset(str(i.get("id", "")).lower() for i in inputs if isinstance(i, dict))
        except (ValueError, AttributeError, RecursionError):
            return frozenset()  # the endpoint answers the malformed body
        with self._requests_lock:
            if keys & self._writing.keys():
                self.overlapping_writes += 1
            for key in keys:
                self._writing[key] = self._writing.get(key, 0) + 1
        return keys

    def end_write(self, keys: frozenset[str]) -> None:
        with self._requests_lock:
            for key in keys:
                left = self._writing.pop(key, 1) - 1
                if left:
                    self._writing[key] = left

    def count(self, operation: str | None = None, *, status: int | None = None) -> int:
        """How many requests matched `operation` and `status` (None matches any)."""
        with self._requests_lock:
            return sum(
                1
                for r in self.requests
                if (operation is None or r.operation == operation)
                and (status is None or r.status == status)
            )

    def reset_counters(self) -> None:
        """Forget the request log and every rate-limit budget."""
        with self._requests_lock:
            self.requests.clear()
        self.limiter.reset()

    # --- direct access (no HTTP, no rate limits, no faults) -----------------------------------

    def seed_contacts(self, contacts: Iterable[Mapping[str, str]]) -> list[str]:
        """Create (or update, by email) contacts from property dicts; return their ids."""
        ids = []
        with self.store.lock:
            for properties in contacts:
                values = self._checked(properties)
                existing = self.store.id_for_email(values["email"]) if values.get("email") else None
                if existing is None:
                    ids.append(self.store.create_contact(values))
                else:
                    self.store.update_contact(existing, values)
                    ids.append(existing)
        return ids

    def _checked(self, properties: Mapping[str, Any]) -> dict[str, str]:
        if "email" in properties and not is_valid_email(str(properties["email"])):
            raise ValueError(f"invalid email {properties['email']!r}")
        values, problems = self.store.check_properties(properties, properties.get("email"))
        if problems:
            raise ValueError("; ".join(p["message"] for p in problems))
        return values

    def contact_by_email(self, email: str) -> dict[str, str] | None:
        """Every stored property of the contact with this email (any case), or None."""
        with self.store.lock:
            contact_id = self.store.id_for_email(email)
            return None if contact_id is None else dict(self.store.contacts[contact_id])

    def all_contacts(self) -> list[dict[str, str]]:
        with self.store.lock:
            return [dict(record) for record in self.store.contacts.values()]

    def set_contact_property(self, email: str, name: str, value: str | None) -> None:
        """Edit one value as a person would in the portal (None or "" clears it)."""
        with self.store.lock:
            contact_id = self.store.id_for_email(email)
            if contact_id is None:
                raise KeyError(f"no contact with email {email!r}")
            definition = self.store.properties.get(name)
            if definition is None:
                raise KeyError(f"no property {name!r}")
            clean, problem = check_value(definition, "" if value is None else value)
            if problem is not None:
                raise ValueError(problem["message"])
            self.store.update_contact(contact_id, {name: clean or ""})

    def merge_contacts(self, winner_email: str, merged_email: str) -> None:
        """Merge two contacts as HubSpot does: the merged one disappears and its email becomes a
        secondary address (hs_additional_emails) of the winner."""
        with self.store.lock:
            winner = self.store.id_for_email(winner_email)
            merged = self.store.id_for_email(merged_email)
            if winner is None or merged is None or winner == merged:
                raise KeyError(f"cannot merge {merged_email!r} into {winner_email!r}")
            self.store.delete_contact(merged)
            self.store.add_secondary_email(winner, merged_email)

    def delete_contact(self, email: str) -> None:
        with self.store.lock:
            contact_id = self.store.id_for_email(email)
            if contact_id is not None:
                self.store.delete_contact(contact_id)

    def get_property(self, name: str) -> dict[str, Any] | None:
        with self.store.lock:
            definition = self.store.properties.get(name)
            return copy.deepcopy(definition) if definition is not None else None

    def delete_property(self, name: str) -> None:
        self.store.remove_property(name)

    def create_property(self, definition: Mapping[str, Any]) -> None:
        """Add a property (HubSpot's JSON shape), e.g. one another tool created; replaces any."""
        with self.store.lock:
            group = definition.get("groupName")
            if group and group not in self.store.groups:
                self.store.groups[group] = {
                    "name": group,
                    "label": group,
                    "displayOrder": -1,
                    "archived": False,
                }
            stored = build_property(dict(definition), self.store.groups)
            for key in ("hubspotDefined", "modificationMetadata", "calculated", "createdAt"):
                if key in definition:
                    stored[key] = copy.deepcopy(definition[key])
            self.store.properties[stored["name"]] = stored
