"""Keep secrets out of every message: the token and URL credentials are scrubbed before printing.

The process registers its secrets once (the token it resolved, any credentials it saw in a URL);
`scrub` replaces them, and any `user:password@` in a URL, in text about to be shown.
`shown_reason` also shortens the values a rejection's reason quotes (the raw record belongs in the
rejects file, not in the plan).
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_MIN_SECRET = 4  # shorter strings would mask ordinary words
_MIN_REFUSED = 12  # a value holding a secret this long is refused (a token is ~44 characters)
QUOTED_LIMIT = 200  # characters of a quoted value a reason keeps
REASON_LIMIT = 1000  # characters of a whole reason
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()  # the secrets as one snapshot, read without the lock
_refused: tuple[str, ...] = ()  # those long enough that no ordinary value holds them


def register_secret(secret: str) -> None:
    """Remember `secret` (and each of its lines) so that `scrub` hides it from now on."""
    with _lock:
        for piece in {secret, secret.strip(), *secret.splitlines()}:
            if len(piece.strip()) >= _MIN_SECRET:
                _secrets.add(piece.strip())
        global _longest_first, _refused
        _longest_first = tuple(sorted(_secrets, key=len, reverse=True))
        _refused = tuple(secret for secret in _longest_first if len(secret) >= _MIN_REFUSED)


def secrets_registered() -> bool:
    return bool(_refused)


def refused_secrets() -> tuple[str, ...]:
    """The secrets no value sent to HubSpot may hold (see `holds_secret`)."""
    return _refused


def holds_secret(text: str) -> bool:
    """Whether `text` holds a registered secret (of a token's length, not a short test one): such
    a value is never sent anywhere."""
    return any(secret in text for secret in _refused)


def scrub(text: str) -> str:
    """`text` with every registered secret and every URL's `user:password@` masked."""
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
        quoted = repr(secret)[1:-1]  # as it appears inside a repr, with `\n` escaped
        if quoted != secret and quoted in text:
            text = text.replace(quoted, MASK)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


def clip_quoted(text: str, *, limit: int = QUOTED_LIMIT, total: int = REASON_LIMIT) -> str:
    """`text` with each quoted value over `limit` characters cut (`…`), and at most `total` long."""

    def clip(match: re.Match[str]) -> str:
        quoted = match.group(0)
        return quoted if len(quoted) <= limit + 2 else quoted[: limit + 1] + "…" + quoted[-1]

    text = _QUOTED.sub(clip, text)
    return text if len(text) <= total else text[: total - 1] + "…"


def shown_reason(reason: str) -> str:
    """A rejection's reason as it may leave the process: secrets masked, then values clipped
    (in that order, so that no clipped part of a secret is left to show)."""
    return clip_quoted(scrub(reason))
