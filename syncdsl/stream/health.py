"""Whether the stream can send: one judgement shared by intake (503), /status and /healthz."""

from __future__ import annotations

from dataclasses import dataclass

#: Consecutive failures of a kind retrying cannot cure (internal error, revoked token, missing
#: scope) after which the sender counts as unable to send.
LASTING_FAILURE_LIMIT = 3


@dataclass(frozen=True)
class SenderFacts:
    """What the dispatcher reports about itself."""

    alive: bool  # the dispatcher loop is running
    fatal_error: str | None  # why it stopped, when it stopped on an error
    failures: int  # batch failures since the last batch HubSpot answered
    failing_seconds: float | None  # how long batches have been failing (None: not failing)
    lasting: bool  # the latest failure will not pass by itself
    last_error: str | None


@dataclass(frozen=True)
class Health:
    """`healthy` False means intake answers 503 and /status and /healthz answer 503."""

    healthy: bool
    status: str  # running | degraded | failed | draining
    reason: str | None = None


def judge(facts: SenderFacts, *, draining: bool, unhealthy_after: float) -> Health:
    """The stream's health from its sender's facts (a pure function)."""
    if draining:
        return Health(False, "draining", "the stream is shutting down")
    if not facts.alive:
        cause = facts.fatal_error or "it stopped"
        return Health(
            False,
            "failed",
            f"the sender stopped ({cause}); events already acknowledged stay queued on disk: "
            "restart `syncdsl stream` (see the log)",
        )
    if facts.failing_seconds is None:
        return Health(True, "running")
    if facts.lasting and facts.failures >= LASTING_FAILURE_LIMIT:
        return Health(
            False,
            "failed",
            f"every batch fails ({facts.last_error}); retrying cannot cure this: "
            "fix the cause (see the log), the queued events are sent once it is fixed",
        )
    if facts.failing_seconds >= unhealthy_after:
        return Health(
            False,
            "failed",
            f"no batch has reached HubSpot for {facts.failing_seconds:.0f} s "
            f"(--unhealthy-after {unhealthy_after:g}); last error: {facts.last_error}",
        )
    return Health(True, "degraded", f"batches are failing and retried: {facts.last_error}")
