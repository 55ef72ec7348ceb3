"""The emulator's portal: contacts (indexed by id and email), properties and groups; thread-safe."""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from syncdsl.emulator import seed
from syncdsl.emulator.bodies import iso_now
from syncdsl.emulator.validation import check_value
from syncdsl.errors import StateError
from syncdsl.safefile import write_atomic

STATE_VERSION = 1


class Store:
    """Every record of one emulated HubSpot portal. Hold `lock` around multi-step changes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.contacts: dict[str, dict[str, str]] = {}
        self.by_email: dict[str, str] = {}
        self.by_secondary: dict[str, str] = {}  # hs_additional_emails -> contact id
        self.ids: list[int] = []  # sorted, for paging by id
        self.search_lag = 0.0  # seconds before a write shows in search (HUBSPOT.md §0)
        self.required_on_create: tuple[str, ...] = ()  # the account's validation rules (§0)
        self._written_at: dict[str, float] = {}  # contact id -> monotonic time of its last write
        # What search still sees of a contact written within the lag: its record as it was
        # before those writes (None: created since, so search does not see it at all).
        self._indexed: dict[str, dict[str, str] | None] = {}
        self.next_id = 1
        self.properties: dict[str, dict[str, Any]] = seed.standard_properties()
        self.groups: dict[str, dict[str, Any]] = seed.standard_groups()

    # --- contacts ---------------------------------------------------------------------------

    def missing_on_create(self, values: Mapping[str, str]) -> list[str]:
        """The properties the account's validation rules require on a new contact that `values`
        leaves empty."""
        return [name for name in self.required_on_create if not values.get(name)]

    def id_for_email(self, email: str) -> str | None:
        return self.by_email.get(email.strip().lower())

    def indexed(self, contact_id: str) -> bool:
        """Whether search sees this contact's latest write yet (search is not read-your-writes)."""
        if not self.search_lag:
            return True
        written = self._written_at.get(contact_id)
        return written is None or time.monotonic() - written >= self.search_lag

    def searchable(self, contact_id: str) -> dict[str, str] | None:
        """The record as search sees it: the latest one, or, within the search lag of a write,
        the one before it (stale values), or None for a contact created within the lag."""
        if self.indexed(contact_id):
            return self.contacts[contact_id]
        return self._indexed.get(contact_id)

    def _before_write(self, contact_id: str, record: dict[str, str] | None) -> None:
        """Keep what search saw before a write: the index catches up only after the lag."""
        if self.search_lag and self.indexed(contact_id):
            self._indexed[contact_id] = dict(record) if record is not None else None

    def _touch(self, contact_id: str) -> None:
        if self.search_lag:
            self._written_at[contact_id] = time.monotonic()

    def id_for_secondary_email(self, email: str) -> str | None:
        """The contact holding `email` as a secondary address (hs_additional_emails)."""
        return self.by_secondary.get(email.strip().lower())

    def add_secondary_email(self, contact_id: str, email: str) -> None:
        """Give a contact an extra address, as HubSpot does after a merge (read-only in the API)."""
        with self.lock:
            record = self.contacts[contact_id]
            email = email.strip().lower()
            emails = [e for e in record.get("hs_additional_emails", "").split(";") if e]
            if email not in emails:
                emails.append(email)
            record["hs_additional_emails"] = ";".join(emails)
            self.by_secondary[email] = contact_id

    def check_properties(
        self, values: Mapping[str, Any], input_id: str | None
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Validate writable values; return (normalized values, problems naming `input_id`)."""
        normalized: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, value in values.items():
            definition = self.properties.get(name)
            if definition is None:
                problems.append(
                    {
                        "name": name,
                        "error": "PROPERTY_DOESNT_EXIST",
                        "message": f'Property "{name}" does not exist',
                        "id": input_id,
                    }
                )
                continue
            clean, problem = check_value(definition, value)
            if problem is not None:
                problem["id"] = input_id
                problems.append(problem)
            else:
                normalized[name] = clean  # type: ignore[assignment]
        return normalized, problems

    def create_contact(self, values: Mapping[str, str]) -> str:
        """Create a contact from already-validated values; return its id."""
        with self.lock:
            contact_id = str(self.next_id)
            self.next_id += 1
            now = iso_now()
            record = {"hs_object_id": contact_id, "createdate": now, "lastmodifieddate": now}
            self._before_write(contact_id, None)
            self.contacts[contact_id] = record
            self.ids.append(int(contact_id))
            self._write(contact_id, record, values)
            self._touch(contact_id)
            return contact_id

    def update_contact(self, contact_id: str, values: Mapping[str, str]) -> bool:
        """Apply already-validated values; return whether anything changed."""
        with self.lock:
            record = self.contacts[contact_id]
            before = dict(record) if self.search_lag else None
            changed = self._write(contact_id, record, values)
            if changed:
                self._before_write(contact_id, before)
                record["lastmodifieddate"] = iso_now()
                self._touch(contact_id)
            return changed

    def _write(self, contact_id: str, record: dict[str, str], values: Mapping[str, str]) -> bool:
        changed = False
        for name, value in values.items():
            value = self._merge_checkbox(name, record.get(name), value)
            if name == "email":
                self._reindex_email(contact_id, record.get("email"), value)
            if value == "":
                changed |= record.pop(name, None) is not None
            elif record.get(name) != value:
                record[name] = value
                changed = True
        return changed

    def _merge_checkbox(self, name: str, current: str | None, value: str) -> str:
        # A leading ";" appends to a multi-checkbox value instead of replacing it.
        if not value.startswith(";") or self.properties[name].get("fieldType") != "checkbox":
            return value
        parts = [p for p in (current or "").split(";") if p]
        parts += [p for p in value.split(";") if p and p not in parts]
        return ";".join(parts)

    def _reindex_email(self, contact_id: str, old: str | None, new: str) -> None:
        if old:
            self.by_email.pop(old, None)
        record = self.contacts[contact_id]
        if new:
            self.by_email[new] = contact_id
            record["hs_email_domain"] = new.rsplit("@", 1)[-1]
        else:
            record.pop("hs_email_domain", None)

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            record = self.contacts.pop(contact_id, None)
            if record is None:
                return
            if record.get("email"):
                self.by_email.pop(record["email"], None)
            for email in record.get("hs_additional_emails", "").split(";"):
                self.by_secondary.pop(email, None)
            index = bisect.bisect_left(self.ids, int(contact_id))
            if index < len(self.ids) and self.ids[index] == int(contact_id):
                self.ids.pop(index)

    def view(
        self, contact_id: str, names: Iterable[str] | None, *, nulls: bool = False
    ) -> dict[str, Any]:
        """A contact as SimplePublicObject: only `names`, or the defaults. A requested property
        without a value is absent, or null when `nulls` (2026-09 replies may hold nulls)."""
        return self.view_of(contact_id, self.contacts[contact_id], names, nulls=nulls)

    def view_of(
        self,
        contact_id: str,
        record: Mapping[str, str],
        names: Iterable[str] | None,
        *,
        nulls: bool = False,
    ) -> dict[str, Any]:
        """`view` of a given record of the contact (search's possibly stale one)."""
        wanted = seed.DEFAULT_READ_PROPERTIES if names is None else names
        properties: dict[str, Any] = {name: record[name] for name in wanted if name in record}
        if nulls and names is not None:
            properties |= {
                name: None for name in wanted if name not in record and name in self.properties
            }
        return {
            "id": contact_id,
            "properties": properties,
            "createdAt": record["createdate"],
            "updatedAt": record["lastmodifieddate"],
            "archived": False,
        }

    # --- properties -------------------------------------------------------------------------

    def remove_property(self, name: str) -> None:
        with self.lock:
            if self.properties.pop(name, None) is None:
                return
            for record in self.contacts.values():
                record.pop(name, None)

    # --- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": STATE_VERSION,
                "next_id": self.next_id,
                "contacts": list(self.contacts.values()),
                "properties": list(self.properties.values()),
                "groups": list(self.groups.values()),
            }

    def load_json(self, state: Mapping[str, Any]) -> None:
        with self.lock:
            self.properties = {p["name"]: p for p in state.get("properties", [])}
            self.groups = {g["name"]: g for g in state.get("groups", [])}
            self.contacts, self.by_email, self.ids = {}, {}, []
            self.by_secondary = {}
            for record in state.get("contacts", []):
                contact_id = record["hs_object_id"]
                self.contacts[contact_id] = dict(record)
                if record.get("email"):
                    self.by_email[record["email"]] = contact_id
                for email in record.get("hs_additional_emails", "").split(";"):
                    if email:
                        self.by_secondary[email] = contact_id
            self.ids = sorted(int(contact_id) for contact_id in self.contacts)
            self.next_id = max(int(state.get("next_id", 1)), (self.ids[-1] + 1) if self.ids else 1)

    def save(self, path: Path) -> None:
        """Write the state atomically (temporary file, then rename), 0600: it holds contacts.
        A symlink at `path` is refused (UnsafeFileError), never written through."""
        state = self.to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(state, separators=(",", ":")), private=True)

    def load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                raise ValueError(f"not a version-{STATE_VERSION} emulator state")
            self.load_json(state)
        except (OSError, ValueError, KeyError, TypeError) as problem:
            raise StateError(
                f"cannot load the emulator state from {path}: {problem}. Fix or delete the file "
                "to start with an empty portal."
            ) from None
