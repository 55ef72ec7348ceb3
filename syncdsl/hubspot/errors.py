"""Turn HubSpot's error responses into syncdsl exceptions whose messages tell people what to do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syncdsl.errors import (
    DailyLimitError,
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotConnectionError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotRateLimitError,
    HubSpotScopeError,
    HubSpotServerError,
    HubSpotValidationError,
)

CREDENTIAL = "a service key or a (legacy) private-app access token"
SERVICE_KEYS = (
    "create a service key in HubSpot under Development > Keys > Service keys (legacy private "
    "apps can no longer be created)"
)
SCOPES = (
    "crm.objects.contacts.read, crm.objects.contacts.write, crm.schemas.contacts.read and "
    "crm.schemas.contacts.write"
)
DAILY_ADVICE = (
    "HubSpot's daily API limit for this account is reached (the tier's daily requests, plus "
    "1,000,000 for each API limit increase pack: declare them with `api_packs` in `destination "
    "hubspot { }`): the work done so far is saved, and `syncdsl apply` resumes where it stopped "
    "after the limit resets at midnight in the HubSpot account's time zone"
)


def parse_body(text: str) -> dict[str, Any]:
    """HubSpot error bodies are JSON, but CDN errors may not be; never fail on a body."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return {"message": text[:300]} if text else {}
    return body if isinstance(body, dict) else {"message": str(body)[:300]}


def correlation_id(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    value = body.get("correlationId")
    if value:
        return str(value)
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("x-hubspot-correlation-id")


def is_daily_limit(body: Mapping[str, Any]) -> bool:
    """The 429 body names its policy (DAILY) or says so in words; bodies vary, so check both."""
    policy = str(body.get("policyName") or "").upper()
    return policy == "DAILY" or "daily limit" in str(body.get("message") or "").lower()


def validation_errors(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """errors[] when present, else the JSON list HubSpot embeds in "Property values were not valid: [...]"."""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return [e for e in errors if isinstance(e, dict)]
    message = str(body.get("message") or "")
    start = message.find("[")
    if start >= 0:
        try:
            embedded = json.loads(message[start:])
        except ValueError:
            return []
        if isinstance(embedded, list):
            return [e for e in embedded if isinstance(e, dict)]
    return []


def missing_scopes(body: Mapping[str, Any]) -> list[str]:
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        for scope in (context or {}).get("requiredGranularScopes") or []:
            if scope not in scopes:
                scopes.append(str(scope))
    return scopes


def _detail(errors: list[dict[str, Any]]) -> str:
    """The per-item messages, e.g. "Email address x@y is invalid", joined for one line."""
    seen: list[str] = []
    for error in errors:
        text = str(error.get("message") or error.get("localizedErrorMessage") or "").strip()
        if text and text not in seen:
            seen.append(text)
    return "; ".join(seen[:5]) + ("; ..." if len(seen) > 5 else "")


def _auth_message(category: str) -> str:
    return (
        f"HubSpot rejected the credential (401 {category or 'INVALID_AUTHENTICATION'}): check the "
        "environment variable named in `destination hubspot { token = env(...) }` holds "
        f"{CREDENTIAL}, still valid, with the scopes {SCOPES}; to get one, {SERVICE_KEYS}"
    )


def _scope_message(scopes: list[str], hubspot_message: str) -> str:
    who = "the service key or private app"
    if len(scopes) == 1:
        lacking = f"{who} lacks scope {scopes[0]}"
    elif scopes:
        lacking = f"{who} lacks one of the scopes {', '.join(scopes)}"
    else:
        lacking = f"{who} lacks a required scope ({hubspot_message or 'no detail given'})"
    return (
        f"HubSpot refused the request (403 MISSING_SCOPES): {lacking}: add it to the service key "
        "(Development > Keys > Service keys) or to the legacy private app (Settings > "
        f"Integrations > Private apps); syncdsl needs {SCOPES}"
    )


def _validation_message(category: str, hubspot_message: str, errors: list[dict[str, Any]]) -> str:
    detail = _detail(errors)
    if detail and (not hubspot_message or "[{" in hubspot_message):
        said = detail  # HubSpot's embedded JSON list is unreadable; its item messages say the same
    elif detail and detail not in hubspot_message:
        said = f"{hubspot_message} ({detail})"
    else:
        said = hubspot_message
    return (
        f"HubSpot rejected the request as invalid (400 {category or 'VALIDATION_ERROR'}): "
        f"{said or 'no detail given'}; fix the offending value (for example a bad email or an "
        "unknown property) and run again"
    )


def rate_limit_message(retries: int, policy: str | None) -> str:
    which = f" ({policy})" if policy else ""
    return (
        f"HubSpot's rate limit{which} was still hit after {retries} retries (429): another app may be "
        "sharing this account's API budget; wait a minute and run the command again (apply resumes "
        "where it stopped), or declare the right `tier` in `destination hubspot { }`"
    )


def from_response(
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    operation: str,
    retries: int = 0,
) -> HubSpotError:
    """The exception for a final (not retried, or retried out) HubSpot error response."""
    category = str(body.get("category") or body.get("errorType") or "")
    hubspot_message = str(body.get("message") or "").strip()
    common: dict[str, Any] = {
        "status": status,
        "category": category or None,
        "correlation_id": correlation_id(body, headers),
        "operation": operation,
        "body": dict(body),
    }
    if status == 401:
        return HubSpotAuthError(_auth_message(category), **common)
    if status == 403:
        scopes = missing_scopes(body)
        return HubSpotScopeError(
            _scope_message(scopes, hubspot_message), missing_scopes=scopes, **common
        )
    if status == 400:
        errors = validation_errors(body)
        return HubSpotValidationError(
            _validation_message(category, hubspot_message, errors), errors=errors, **common
        )
    if status == 404:
        return HubSpotNotFoundError(
            f"HubSpot found no such object (404 {category or 'OBJECT_NOT_FOUND'}): "
            f"{hubspot_message or 'not found'}",
            **common,
        )
    if status == 409:
        return HubSpotConflictError(
            f"HubSpot reports a conflict (409 {category or 'CONFLICT'}): "
            f"{hubspot_message or 'the object already exists'}",
            **common,
        )
    if status == 429:
        policy = str(body.get("policyName") or "") or None
        if is_daily_limit(body):
            return DailyLimitError(DAILY_ADVICE, policy=policy or "DAILY", **common)
        return HubSpotRateLimitError(rate_limit_message(retries, policy), policy=policy, **common)
    if status >= 500 or status in (423, 477):
        return HubSpotServerError(
            f"HubSpot failed with {status} {category}".rstrip()
            + f" after {retries} retries: {hubspot_message or 'no detail given'}; HubSpot may be "
            "having trouble: wait a few minutes and run the command again",
            **common,
        )
    return HubSpotError(
        f"HubSpot answered {status} {category}".rstrip()
        + f": {hubspot_message or 'no detail given'}",
        **common,
    )


def daily_limit_reached(*, operation: str | None = None) -> DailyLimitError:
    """Raised before sending once X-HubSpot-RateLimit-Daily-Remaining has reached 0."""
    return DailyLimitError(DAILY_ADVICE, policy="DAILY", status=429, operation=operation)


def connection_failed(
    exc: BaseException, *, operation: str, retries: int, base_url: str
) -> HubSpotConnectionError:
    kind = "timed out" if "timeout" in type(exc).__name__.lower() else "failed"
    return HubSpotConnectionError(
        f"the connection to HubSpot at {base_url} {kind} after {retries} retries "
        f"({type(exc).__name__}): check the network and `base_url`, then run the command again",
        operation=operation,
    )
