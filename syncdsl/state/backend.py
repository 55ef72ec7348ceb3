"""Where a configuration keeps its state, its stream queue and its lock: SQLite files beside it
(the default), or a PostgreSQL database shared by every machine that runs it.

`SYNCDSL_STORE` (a `postgresql://` URL, or `sqlite` for the files) overrides the destination's
`store =`. On PostgreSQL the password comes from the environment (PGPASSWORD, or ~/.pgpass), never
from the spec; a configuration is named by `store_key =` in its destination block, else by its
directory's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from syncdsl.state.database import Database
from syncdsl.state.locks import ApplyLock, running_command
from syncdsl.state.postgres import (
    LeaseHolder,
    Leases,
    chosen_store,
    describe,
    open_configuration,
    portal_fingerprint,
)
from syncdsl.state.store import StateStore


class ConfigurationLock(Protocol):
    """What guards a configuration's writes: a flock on its directory, or leases in PostgreSQL."""

    @property
    def held(self) -> bool: ...

    def __enter__(self) -> ConfigurationLock: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class StoreLocation:
    """One configuration's place in a store."""

    root: Path
    url: str | None = None  # postgresql://…; None: SQLite files in .syncdsl/
    key: str = ""  # the configuration's name in a shared store

    @classmethod
    def choose(cls, root: Path, store: str | None = None, key: str | None = None) -> StoreLocation:
        """SYNCDSL_STORE, else the spec's `store`, else SQLite files beside the configuration."""
        url, name = chosen_store(root, store, key)
        return cls(root, url, name)

    @property
    def shared(self) -> bool:
        """The store is a database other machines may use at the same time."""
        return self.url is not None

    def state(self) -> StateStore:
        return StateStore.at(self.root, self.url, self.key)

    def database(self) -> Database:
        """A connection to the configuration's tables in the shared store."""
        assert self.url is not None
        return open_configuration(self.url, self.key)

    def describe(self) -> str:
        if self.url is None:
            return "SQLite files in .syncdsl/"
        return describe(self.url, self.key)

    def lock(self, portal: tuple[str, str] | None) -> ConfigurationLock:
        """The lock an apply or a stream's sending holds: on the files, a flock on `.syncdsl/`;
        in a shared store, leases on the portal (`portal`: its API address and the token's
        digest, None for the embedded local HubSpot, which lives in `.syncdsl/`) and on the
        configuration."""
        if self.url is None or portal is None:
            return ApplyLock(self.root)
        names = (f"portal:{portal_fingerprint(*portal)}", f"configuration:{self.key}")
        return PortalLease(Leases(self.url, names, LeaseHolder.here(running_command())))


class PortalLease:
    """Leases on a portal and a configuration, taken on enter (LockHeldError when held)."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases

    @property
    def held(self) -> bool:
        return self.leases.held

    def __enter__(self) -> PortalLease:
        self.leases.acquire("this HubSpot portal (or configuration)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.leases.release()
