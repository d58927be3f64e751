"""Keeping secrets out of text: what a server echoes back (an error body quoting our token),
an exception's words, and the HTTP library's own log lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pydantic import SecretStr

MAX_REASON_CHARS = 300
REDACTED = "[REDACTED]"
_MIN_SECRET = 4
"""Shorter values are not replaced: they would mangle ordinary words, and no credential of
ours is that short."""

_BEARER = re.compile(r"(?i)(bearer|oauth)\s+[A-Za-z0-9._~+/=-]+")
_NAMED = re.compile(
    r"(?i)((?:access|refresh)_token|client_secret|appsecret_proof)"
    r"([\"']?\s*[=:]\s*[\"']?)[^\s\"'&,}]+"
)


def _mask_named(text: str) -> str:
    return _NAMED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def scrub(text: str, secrets: Iterable[SecretStr | str | None] = ()) -> str:
    """``text`` with every known secret value and anything shaped like a credential (a
    bearer header, ``access_token=...``) replaced, folded onto one line and shortened to
    ``MAX_REASON_CHARS``."""
    for secret in secrets:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if raw and len(raw) >= _MIN_SECRET:
            text = text.replace(raw, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _mask_named(text)
    text = " ".join(text.split())
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return text


class _ScrubFilter(logging.Filter):
    """httpx logs every request URL at INFO. Ours never carry a token, except the Graph
    fallback that passes ``access_token`` as a query parameter: scrub it here, whatever
    level the Lambda's logging runs at."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _mask_named(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SCRUB_FILTER = _ScrubFilter()


def install_log_scrubbing() -> None:
    """Scrubs credentials from httpx's and httpcore's log records (idempotent)."""
    for name in ("httpx", "httpcore"):
        lib_logger = logging.getLogger(name)
        if _SCRUB_FILTER not in lib_logger.filters:
            lib_logger.addFilter(_SCRUB_FILTER)


__all__ = ["MAX_REASON_CHARS", "REDACTED", "install_log_scrubbing", "scrub"]
