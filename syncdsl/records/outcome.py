"""What the records stage makes: desired contacts (`DesiredContact`), where their records came
from (`Origin`), and where the records of each source went (`SourceCounts`, the counts every plan
and report reconciles). Plain data: the plan imports it without the staging machinery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read: its file (as the spec names it) and its line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    @classmethod
    def parse(cls, text: str) -> Origin:
        """`file:line` as `str()` writes it (saved plans hold provenance that way)."""
        file, _, line = text.rpartition(":")
        return cls(file, int(line)) if line.isdigit() else cls(text, 0)


@dataclass(frozen=True)
class SourceCounts:
    """Where the records of one source went:
    records == contributed + merged + rejected + not_member + no_consent.

    `not_member`: the records of people who are members of no audience (and no member to exit),
    which never leave. `no_consent`: the records of people whose consent withholds them (and no
    member to exit), which never leave either. `identities_skipped`: the other emails of profiles with several
    (only the primary one is exported); not a bucket of records. `reading`: how it was read.
    """

    source: str
    records: int
    contributed: int
    merged: int
    rejected: int
    not_member: int = 0
    identities_skipped: int = 0
    no_consent: int = 0
    #: how the source was read, for people: "3 files, gzip; delimiter `;` detected from the
    #: header line" ("" for one plain file)
    reading: str = ""

    def exported(
        self, contributed: int, not_member: int, collided: int = 0, no_consent: int = 0
    ) -> SourceCounts:
        """These counts once the plan knows which contacts reach HubSpot (and which collide
        with another email on one HubSpot contact: rejected)."""
        return replace(
            self,
            contributed=contributed,
            not_member=not_member,
            no_consent=no_consent,
            rejected=self.rejected + collided,
        )


@dataclass(frozen=True)
class DesiredContact:
    """A contact as the spec wants it in HubSpot: one per email, merged from its records."""

    email: str
    properties: Mapping[str, str]  # coerced strings, never empty
    audiences: Mapping[str, str]  # audience property -> realized | existing | exited
    provenance: tuple[Origin, ...] = ()  # where each contributing record was read
    sources: tuple[str, ...] = ()  # the source of each contributing record
    #: why the contact's consent withholds it (no values, its audiences exited), or None
    withheld: str | None = None
