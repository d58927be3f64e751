"""OData wire details the client must get right against any server, not just our simulator:
query-string encoding, filter literals, nextLink resolution and error bodies.

Sources: OData 4.01 Part 2 (URL conventions) and ABNF, OData JSON Format 4.01 (control
information, relative URLs, error responses), RFC 3986, RFC 6749 §5.2 and RFC 6750 §3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote as _pct
from urllib.parse import urljoin

from mls_sync.timeutil import Instant, TimestampError

EnumLiteral = Literal["string", "qualified"]

# RFC 3986 query characters OData allows unencoded. Space, "+", "'", "&", "=", "#", "%" are
# encoded: "+" would be read as a space by form-decoding servers (fatal for "+00:00"
# offsets), "'" because vendor examples (MLS Grid, Trestle) spell it %27.
_QUERY_SAFE = "$(),:@!*;/?-._~"
_KEY_SAFE = "$"


def encode_query(params: Mapping[str, str]) -> str:
    """``$filter=A%20eq%20%27x%27&$top=5``: ``$`` literal in option names (4.0 servers need the
    literal, lower-case ``$`` prefix), spaces as ``%20`` (never ``+``), ``+`` as ``%2B``."""
    return "&".join(
        f"{_pct(key, safe=_KEY_SAFE)}={_pct(value, safe=_QUERY_SAFE)}"
        for key, value in params.items()
    )


def quote(value: str) -> str:
    """An OData string literal: single-quoted, an embedded quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def enum_literal(
    value: str, *, form: EnumLiteral, enum_type: str = "Odata.Models.StandardStatus"
) -> str:
    """An enumeration value as the server wants it: a string (Data Dictionary 1.7+ lookups,
    what MLS Grid, Trestle, Bridge and Spark accept) or a qualified ``Ns.Type'Member'``
    (servers exposing ``Edm.EnumType``)."""
    if form == "qualified":
        return f"{enum_type}'{value.replace(chr(39), chr(39) * 2)}'"
    return quote(value)


_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<hm>\d{2}:\d{2})(?P<sec>:\d{2})?"
    r"(?P<frac>\.\d+)?(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?$"
)


def timestamp_literal(raw: str) -> str:
    """A DateTimeOffset literal from a server's own spelling, kept as close to it as the ABNF
    allows (some servers compare literals as text): same digits and offset, but always a
    ``T``, seconds, an upper-case ``Z`` or a ``±hh:mm`` offset. A spelling without a zone is
    read as UTC (as :class:`Instant` does) and gets ``Z``; the OData ABNF requires one."""
    text = raw.strip()
    match = _TS.match(text)
    if match is None:
        Instant.parse(text)  # raises a TimestampError naming the value
        raise TimestampError(f"{raw!r} is not an ISO 8601 timestamp")
    tz = match["tz"]
    if tz is None or tz in ("Z", "z"):
        zone = "Z"
    elif ":" not in tz:
        zone = f"{tz[:3]}:{tz[3:]}"
    else:
        zone = tz
    return f"{match['date']}T{match['hm']}{match['sec'] or ':00'}{match['frac'] or ''}{zone}"


# --------------------------------------------------------------------------- responses


def control(body: Mapping[str, Any], name: str) -> Any:
    """Control information by name: ``@odata.nextLink``, or ``@nextLink`` (OData 4.01 JSON
    lets a 4.01 service drop the ``odata.`` prefix)."""
    value = body.get(f"@odata.{name}")
    return body.get(f"@{name}") if value is None else value


def resolve_link(link: str, *, request_url: str, context: object = None) -> str:
    """An absolute URL for a nextLink. OData JSON 4.01 §4.6: a relative URL is relative to the
    context URL of the same object (itself relative to the request URL) when there is one,
    else to the request URL."""
    base = request_url
    if isinstance(context, str) and context:
        base = urljoin(request_url, context.split("#", 1)[0])
    return urljoin(base, link)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)


def error_detail(content: bytes, content_type: str | None = None) -> str:
    """What a non-2xx body says, in one short line: an OData error (``{"error": {"code",
    "message"}}``, message possibly ``{"lang","value"}`` in old servers), an OAuth2 error
    (``{"error", "error_description"}``), the text of an HTML page, or plain text."""
    text = content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        found = _json_error(body)
        if found:
            return found
        return _short(json.dumps(body))
    if "html" in (content_type or "").lower() or text.lstrip()[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        plain = _TAGS.sub(" ", text)
        return "HTML page: " + _short(title.group(1) if title else plain, 120)
    return _short(text) if text.strip() else "empty body"


def _json_error(body: Mapping[str, Any]) -> str | None:
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        message = err.get("message")
        if isinstance(message, dict):  # OData v2/v3 style {"lang", "value"}
            message = message.get("value")
        parts = [str(p) for p in (code, message) if p not in (None, "")]
        return _short(": ".join(parts)) if parts else None
    if isinstance(err, str):
        desc = body.get("error_description")
        return _short(f"{err}: {desc}" if desc else err)
    for key in ("message", "Message"):
        if isinstance(body.get(key), str):
            return _short(body[key])
    return None


def www_authenticate_error(header: str | None) -> str | None:
    """The ``error`` parameter of a Bearer challenge (RFC 6750 §3), e.g. ``invalid_token``."""
    if not header:
        return None
    match = re.search(r'error="?([A-Za-z_]+)"?', header)
    return match.group(1) if match else None
