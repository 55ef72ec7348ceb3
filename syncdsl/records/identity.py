"""Contact identity: email normalisation and validation, close to HubSpot's INVALID_EMAIL rules."""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64
MAX_LABEL_LENGTH = 63

# RFC 5322 "atext" plus the dot; quoted local parts are legal in the RFC but HubSpot refuses them.
_LOCAL_CHARS = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.\-]+")
_ASCII_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?")
_ASCII_TLD = re.compile(r"[a-z]{2,}|xn--[a-z0-9\-]{2,}")
# The whole happy path in one expression, so most addresses never reach the slower checks.
_FAST_VALID = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


class InvalidEmail(ValueError):
    """An identity that is not an email address HubSpot would accept; `reason` says why."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid email {_shown(value)}: {reason}")


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


# HubSpot rejected "gmail.con" and "example.lcom" in live runs (HUBSPOT.md §2.2).
TYPO_TLDS = frozenset(
    {"con", "cmo", "ocm", "comm", "lcom", "coom", "vom", "xom", "cpm", "clm", "nte", "ney", "ogr"}
)


def normalize_email(raw: object) -> str:
    """Trim and lowercase an email address, then validate it.

    Raises:
        InvalidEmail: the address would be refused by HubSpot; the message names the reason.
    """
    if not isinstance(raw, str):
        raise InvalidEmail(raw, f"expected text, got {type(raw).__name__}")
    email = raw.strip().lower()
    if len(email) <= MAX_EMAIL_LENGTH and _FAST_VALID.fullmatch(email):
        local = email.partition("@")[0]
        if len(local) <= MAX_LOCAL_LENGTH and email.rpartition(".")[2] not in TYPO_TLDS:
            return email
    reason = _invalid_reason(email)
    if reason is not None:
        raise InvalidEmail(raw, reason)
    return email


def _invalid_reason(email: str) -> str | None:
    """The first rule `email` breaks, or None when it is valid (internationalised ones too)."""
    if not email:
        return "empty"
    if any(ch.isspace() for ch in email):
        return "contains whitespace"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in email):
        return "contains a control character"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"longer than {MAX_EMAIL_LENGTH} characters"
    if not email.isascii():
        return "contains non-ASCII characters, which HubSpot rejects as INVALID_EMAIL"
    at_signs = email.count("@")
    if at_signs == 0:
        return "no @"
    if at_signs > 1:
        return "more than one @"
    local, _, domain = email.partition("@")
    return _local_reason(local) or _domain_reason(domain)


def _local_reason(local: str) -> str | None:
    if not local:
        return "nothing before the @"
    if len(local) > MAX_LOCAL_LENGTH:
        return f"the part before the @ is longer than {MAX_LOCAL_LENGTH} characters"
    if local.startswith(".") or local.endswith("."):
        return "the part before the @ starts or ends with a dot"
    if ".." in local:
        return "two dots in a row"
    for ch in local:
        if not (ch.isascii() and _LOCAL_CHARS.fullmatch(ch)) and not (
            not ch.isascii() and ch.isalnum()
        ):
            return f"the part before the @ contains {ch!r}"
    return None


def _domain_reason(domain: str) -> str | None:
    if not domain:
        return "nothing after the @"
    if "." not in domain:
        return "the domain has no dot"
    if domain.startswith(".") or domain.endswith("."):
        return "the domain starts or ends with a dot"
    if ".." in domain:
        return "two dots in a row"
    labels = domain.split(".")
    for label in labels:
        reason = _label_reason(label)
        if reason is not None:
            return reason
    tld = labels[-1]
    if tld in TYPO_TLDS:
        return f"the top-level domain {tld!r} is a typo HubSpot rejects (.com, .net, .org?)"
    if tld.isascii() and not _ASCII_TLD.fullmatch(tld):
        return f"the top-level domain {tld!r} is not at least two letters"
    if not tld.isascii() and not (len(tld) >= 2 and tld.isalpha()):
        return f"the top-level domain {tld!r} is not at least two letters"
    return None


def _label_reason(label: str) -> str | None:
    if len(label) > MAX_LABEL_LENGTH:
        return f"a domain label is longer than {MAX_LABEL_LENGTH} characters"
    if label.startswith("-") or label.endswith("-"):
        return f"the domain label {label!r} starts or ends with a hyphen"
    if label.isascii():
        if not _ASCII_LABEL.fullmatch(label):
            bad = next(ch for ch in label if not (ch.isalnum() or ch == "-"))
            return f"the domain contains {bad!r}"
        return None
    bad_char = next((ch for ch in label if not (ch.isalnum() or ch == "-")), None)
    if bad_char is not None:
        return f"the domain contains {bad_char!r}"
    return None
