"""The one exception tree of syncdsl; every error a user can meet is one of these.

SyncdslError
├── SpecError            a .sync file is wrong (carries every Diagnostic found)
├── SourceError          a data file cannot be read at all
├── UsageError           the command line asks for something that cannot be done
├── PlanError            the plan cannot be made or applied (stale plan, mass exit)
│   └── LockHeldError    another command holds the configuration (apply, stream, --local)
├── StateError           the state store or lock file is unusable
├── UnsafeFileError      a file syncdsl would write is a symlink (or not a regular file)
└── HubSpotError         HubSpot said no (status, category, message, correlation id)
    ├── HubSpotAuthError         401: bad or missing token
    ├── HubSpotScopeError        403: the service key or private app lacks scopes
    ├── HubSpotValidationError   400: invalid input (errors, bad emails)
    ├── HubSpotNotFoundError     404
    ├── HubSpotConflictError     409
    ├── HubSpotRateLimitError    429 after every retry; DailyLimitError for the DAILY policy
    ├── HubSpotServerError       5xx after every retry
    └── HubSpotConnectionError   network failure after every retry

Every one exits 1 (`exit_code`); an internal error (a bug) exits 3, an interrupt 130. With
`--json`, the error is also printed on stdout as an `ErrorReport` document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """Where a node was written: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SyncdslError(Exception):
    """Base of every error syncdsl raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a spec, at a place."""

    span: Span
    message: str
    severity: str = "error"


class SpecError(SyncdslError):
    """One or more problems in the .sync files; `diagnostics` lists them all."""

    def __init__(self, diagnostics: list[Diagnostic], rendered: str | None = None) -> None:
        self.diagnostics = diagnostics
        self.rendered = rendered or "\n".join(
            f"{d.span}: {d.severity}: {d.message}" for d in diagnostics
        )
        super().__init__(self.rendered)


class SourceError(SyncdslError):
    """A data file cannot be opened or read at all (single bad records are rejects, not errors)."""


class UsageError(SyncdslError):
    """The command line asks for something that cannot be done (options that exclude each other,
    a value out of range, no terminal to confirm on)."""


class PlanError(SyncdslError):
    """A plan cannot be made or applied."""


class LockHeldError(PlanError):
    """Another syncdsl command holds the configuration's lock: wait for it, or stop it."""


class StateError(SyncdslError):
    """The state store or lock file cannot be used."""


class UnsafeFileError(SyncdslError):
    """A file syncdsl would write is a symlink or not a regular file: it is never written through."""


class HubSpotError(SyncdslError):
    """HubSpot refused a request. The message says what failed and what to do."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        operation: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.operation = operation
        self.body = body or {}
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        tail = f" (HubSpot correlation id {self.correlation_id})" if self.correlation_id else ""
        return f"{where}{self.message}{tail}"


class HubSpotAuthError(HubSpotError):
    """401: the token is missing, wrong, expired or revoked."""


class HubSpotScopeError(HubSpotError):
    """403 MISSING_SCOPES: the service key or private app lacks one of `missing_scopes`."""

    def __init__(self, message: str, *, missing_scopes: list[str] | None = None, **kw: Any) -> None:
        self.missing_scopes = missing_scopes or []
        super().__init__(message, **kw)


class HubSpotValidationError(HubSpotError):
    """400: HubSpot judged the input invalid (bad email, unknown property, bad option...)."""

    def __init__(
        self, message: str, *, errors: list[dict[str, Any]] | None = None, **kw: Any
    ) -> None:
        self.errors = errors or []
        super().__init__(message, **kw)


class HubSpotNotFoundError(HubSpotError):
    """404: the object does not exist."""


class HubSpotConflictError(HubSpotError):
    """409: the object already exists."""


class HubSpotRateLimitError(HubSpotError):
    """429 that retries could not outlast."""

    def __init__(
        self,
        message: str,
        *,
        policy: str | None = None,
        retry_after: float | None = None,
        **kw: Any,
    ) -> None:
        self.policy = policy
        self.retry_after = retry_after
        super().__init__(message, **kw)


class DailyLimitError(HubSpotRateLimitError):
    """429 with the DAILY policy: stop now; `syncdsl apply` resumes after HubSpot's midnight."""


class HubSpotServerError(HubSpotError):
    """5xx (or 423/477) that retries could not outlast."""


class HubSpotConnectionError(HubSpotError):
    """The network failed (reset, timeout, refused) on every retry."""


@dataclass(frozen=True)
class ErrorReport:
    """An error as `--json` prints it on stdout: `{"error": {type, message, exit_code, details}}`,
    so a tool reading the JSON learns why there is no plan or report (stderr says it to people).
    """

    type: str  # the error's class: SpecError, HubSpotAuthError, PlanError, ..., InternalError
    message: str
    exit_code: int
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, error: BaseException, *, exit_code: int | None = None) -> ErrorReport:
        if not isinstance(error, SyncdslError):
            return cls("InternalError", f"{type(error).__name__}: {error}", exit_code or 3)
        return cls(type(error).__name__, str(error), exit_code or error.exit_code, _details(error))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.type,
                "message": self.message,
                "exit_code": self.exit_code,
                "details": self.details,
            }
        }


def _details(error: SyncdslError) -> dict[str, Any]:
    """What each error class knows beyond its message."""
    if isinstance(error, SpecError):
        return {
            "diagnostics": [
                {
                    "file": d.span.file,
                    "line": d.span.line,
                    "column": d.span.column,
                    "severity": d.severity,
                    "message": d.message,
                }
                for d in error.diagnostics
            ]
        }
    if isinstance(error, HubSpotError):
        details: dict[str, Any] = {
            "status": error.status,
            "category": error.category,
            "correlation_id": error.correlation_id,
            "operation": error.operation,
        }
        if isinstance(error, HubSpotScopeError):
            details["missing_scopes"] = error.missing_scopes
        if isinstance(error, HubSpotRateLimitError):
            details |= {"policy": error.policy, "retry_after": error.retry_after}
        return details
    return {}
