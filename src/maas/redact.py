"""Secrets out of what people read: a URL or DSN as it may be shown in a log line, an audit
event, an error message or MLflow (`redact_url`), and any text scrubbed of known secrets and
of every `scheme://user:password@` it contains (`redact_text`).

A Slack-style webhook's secret is its path; a DSN's is its password; either may sit in a query
string. What stays is enough to tell which server: the scheme, the user, the host and port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

HIDDEN = "***"
SECRET_SUFFIXES = ("_PASSWORD", "_SECRET", "_TOKEN", "_KEY", "_AUTH_STRING")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@")


def redact_url(url: str) -> str:
    """`scheme://user@host:port/***` for a URL with a path, query or password; the URL itself
    when it has none of them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    if not parts.scheme or not parts.netloc:
        return HIDDEN
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    hidden = parts.password is not None or parts.path not in ("", "/") or parts.query
    return f"{parts.scheme}://{netloc}/{HIDDEN}" if hidden else f"{parts.scheme}://{netloc}"


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with each of `secrets` (URLs shown as `redact_url` shows them, anything else as
    ***) replaced, and the password of any `scheme://user:password@` removed."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        shown = redact_url(secret) if "://" in secret else HIDDEN
        text = text.replace(secret, shown)
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{HIDDEN}@", text)


def secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (`*_PASSWORD`,
    `*_SECRET`, `*_TOKEN`, `*_KEY`, `*_AUTH_STRING`): child processes are not given those."""
    return name.upper().endswith(SECRET_SUFFIXES)
