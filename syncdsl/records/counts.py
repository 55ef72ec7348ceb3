"""Where the records of each source went: the counts every plan and report reconciles."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SourceCounts:
    """Where the records of one source went:
    records == contributed + merged + rejected + not_member.

    `not_member`: the records of people who are members of no audience (and no member to exit),
    which never leave. `identities_skipped`: the other emails of profiles with several
    (only the primary one is exported); not a bucket of records.
    """

    source: str
    records: int
    contributed: int
    merged: int
    rejected: int
    not_member: int = 0
    identities_skipped: int = 0

    def exported(self, contributed: int, not_member: int, collided: int = 0) -> SourceCounts:
        """These counts once the plan knows which contacts reach HubSpot (and which collide
        with another email on one HubSpot contact: rejected)."""
        return replace(
            self,
            contributed=contributed,
            not_member=not_member,
            rejected=self.rejected + collided,
        )
