"""HubSpot's JSON response bodies: error shapes (HUBSPOT.md §2) and timestamps."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

PORTAL_ID = 12345678
SCOPES_LINK = "https://developers.hubspot.com/scopes"


class ApiError(Exception):
    """A HubSpot error response: raised anywhere in the emulator, written by the server."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def correlation_id() -> str:
    return str(uuid.uuid4())


def iso_now() -> str:
    """Now as HubSpot writes timestamps: ISO 8601 UTC with milliseconds and a Z."""
    return iso_from_ms(int(time.time() * 1000))


def iso_from_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    # %Y does not pad years before 1000 on every platform.
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def error(status: int, category: str, message: str, **extra: Any) -> ApiError:
    """The spec's `Error`: status, message, correlationId, category, plus any extra fields."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
    }
    body.update(extra)
    body["category"] = category
    return ApiError(status, body)


def validation_error(message: str, **extra: Any) -> ApiError:
    return error(400, "VALIDATION_ERROR", message, **extra)


def property_value_error(problems: list[dict[str, Any]]) -> ApiError:
    """400 'Property values were not valid: [...]' naming every bad value (HUBSPOT.md §2.1/§2.2).

    Each problem holds `name`, `error`, `message` and the `id` of the input it came from.
    """
    described = [
        {
            "isValid": False,
            "message": p["message"],
            "error": p["error"],
            "name": p["name"],
            "localizedErrorMessage": p["message"],
            "portalId": PORTAL_ID,
        }
        for p in problems
    ]
    details = []
    for p in problems:
        context = {"propertyName": [p["name"]]}
        if p.get("id") is not None:
            context["id"] = [str(p["id"])]
        details.append({"message": p["message"], "code": p["error"], "context": context})
    ids = sorted({str(p["id"]) for p in problems if p.get("id") is not None})
    extra: dict[str, Any] = {"errors": details}
    if ids:
        extra["context"] = {"ids": ids}
    return validation_error(
        "Property values were not valid: " + json.dumps(described, separators=(",", ":")), **extra
    )


def validation_rule_error(missing: list[str]) -> ApiError:
    """400 for a write that breaks the account's validation rules (2026-09 write validation,
    HUBSPOT.md §0): a property required when a contact is created. Strict: the whole batch fails
    and the message does not say which input broke the rule."""
    names = ", ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return validation_error(
        f"This write breaks the account's validation rules: {names} {verb} required when a "
        "contact is created.",
        errors=[
            {
                "message": f"{name} is required when a contact is created",
                "code": "VALIDATION_RULE",
                "context": {"propertyName": [name]},
            }
            for name in missing
        ],
    )


def not_found_item(ids: list[str], object_word: str = "CONTACT") -> dict[str, Any]:
    """The one aggregated OBJECT_NOT_FOUND item of a 207 (HUBSPOT.md §1.2)."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {object_word} objects, they may be deleted or not exist. "
        "Check that ids are valid.",
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }


def unauthorized(token_sent: bool) -> ApiError:
    message = (
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
        "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
        if not token_sent
        else "The access token provided is invalid or has been revoked. Check the token of your "
        "private app, or generate a new one."
    )
    failure = error(401, "INVALID_AUTHENTICATION", message)
    failure.headers["x-hubspot-auth-failure"] = "401 Unauthorized"
    return failure


def missing_scopes(required: list[str]) -> ApiError:
    return error(
        403,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about "
        f"required scopes here: {SCOPES_LINK}.",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": required},
            }
        ],
        links={"scopes": SCOPES_LINK},
    )


def ten_secondly_limit(group: str) -> ApiError:
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": "TEN_SECONDLY_ROLLING",
        "groupName": group,
    }
    return ApiError(429, body)


def daily_limit() -> ApiError:
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": "DAILY",
        "requestId": correlation_id(),
    }
    return ApiError(429, body)


def secondly_limit() -> ApiError:
    # The real search 429 carries category RATE_LIMITS and neither policyName nor errorType.
    return error(429, "RATE_LIMITS", "You have reached your secondly limit.")


_SERVER_MESSAGES = {
    500: ("INTERNAL_ERROR", "An internal error occurred. Please try again later."),
    502: ("BAD_GATEWAY", "The server was unable to process the request in time. Please retry."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable. Please retry."),
}


def server_error(status: int) -> ApiError:
    category, message = _SERVER_MESSAGES[status]
    return error(status, category, message)
