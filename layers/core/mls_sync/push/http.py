"""The function URL's side of a push: the request as Lambda hands it over (payload format
2.0), the route, and the answers.

Lambda lowercases header names and joins repeated headers with commas; the body arrives as
text, base64-encoded when Lambda could not tell it was text. An answer is
``{"statusCode", "headers", "body"}`` with a small JSON body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mls_sync.inputs import InputError

ROUTE = re.compile(r"^/connections/(?P<connection_id>[^/]+)/events/?$")
"""``POST /connections/{connectionId}/events``."""

_JSON_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")


@dataclass(frozen=True, slots=True)
class PushRequest:
    """The parts of a function URL event a push is judged on."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    base64_encoded: bool
    request_id: str | None

    @classmethod
    def from_event(cls, event: Any) -> PushRequest:
        """InputError(400) for an invocation that is not a function URL request."""
        if not isinstance(event, dict):
            raise InputError(400, "not a function URL request")
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, dict) else None
        if not isinstance(http, dict) or not isinstance(http.get("method"), str):
            raise InputError(400, "not a function URL request")
        raw_headers = event.get("headers")
        headers = (
            {str(k).lower(): v for k, v in raw_headers.items() if isinstance(v, str)}
            if isinstance(raw_headers, dict)
            else {}
        )
        path = event.get("rawPath")
        request_id = context.get("requestId") if isinstance(context, dict) else None
        return cls(
            method=http["method"].upper(),
            path=path if isinstance(path, str) else "",
            headers=headers,
            body=event.get("body"),
            base64_encoded=event.get("isBase64Encoded") is True,
            request_id=request_id if isinstance(request_id, str) else None,
        )

    def connection_id(self) -> str | None:
        """The route's connection id; None when the path is not the route. An id that is not
        one of ours is returned as it is: it is an unknown connection (401), not a 404."""
        match = ROUTE.match(self.path)
        return match.group("connection_id") if match else None

    def json_content_type(self) -> bool:
        """``application/json`` (or ``application/<x>+json``), charset UTF-8 if one is named."""
        media, _, params = self.headers.get("content-type", "").partition(";")
        if not _JSON_TYPE.match(media.strip().lower()):
            return False
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8",
                "utf8",
            ):
                return False
        return True

    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
        scheme, _, token = self.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return None
        return token


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def to_response(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json", **self.headers},
            "body": json.dumps(self.body, separators=(",", ":")),
        }


UNAUTHORIZED = Answer(
    401,
    {"error": "unauthorized: send Authorization: Bearer <this connection's push token>"},
    {"www-authenticate": 'Bearer realm="mls-sync push"'},
)
"""The one answer to an unknown connection, a connection without push, a missing or a
wrong token: a caller cannot tell them apart (no enumeration of connections)."""


def refused(status: int, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": message}, headers)
