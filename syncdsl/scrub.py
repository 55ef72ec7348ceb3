"""Keep secrets out of every message: the token and URL credentials are scrubbed before printing.

The process registers its secrets once (the token it resolved, any credentials it saw in a URL);
`scrub` replaces them, and any `user:password@` in a URL, in text about to be shown.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_MIN_SECRET = 4  # shorter strings would mask ordinary words
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember `secret` (and each of its lines) so that `scrub` hides it from now on."""
    with _lock:
        for piece in {secret, secret.strip(), *secret.splitlines()}:
            if len(piece.strip()) >= _MIN_SECRET:
                _secrets.add(piece.strip())


def scrub(text: str) -> str:
    """`text` with every registered secret and every URL's `user:password@` masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
        quoted = repr(secret)[1:-1]  # as it appears inside a repr, with `\n` escaped
        if quoted != secret and quoted in text:
            text = text.replace(quoted, MASK)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
