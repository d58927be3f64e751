"""A function URL on loopback: HTTP requests in, Lambda payload-2.0 events to a handler, its
answer back as the HTTP response (what AWS does in front of PushFunction, here for the MLS
simulator to push to, `mls-sync push serve`, and the flood test).

As AWS builds the event: header names lowercased and repeated headers joined with commas;
the body as text when its content type is textual and it is UTF-8, else base64 with
``isBase64Encoded``; a request over 6 MB refused with 413 before the function runs; a
handler that raises answered 502. The response is ``statusCode``, ``headers`` and ``body``
(``isBase64Encoded`` honoured); anything else the handler returns is sent as a JSON body
with 200.

Invocations are one at a time (one warm container). ``cold(runtime, function)`` invokes
through ``LocalRuntime.invoke`` (the function's environment set and its caches forgotten
on each call, like every other local invoke); ``warm(runtime, function)`` sets the
environment once for as long as the front runs, so clients and secrets stay cached as in a
warm Lambda container (a flood of pushes), and is for a process running nothing else.

Loopback only: a bind to any other address is refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mls_sync.netpolicy import is_loopback_host

from mls_sync_local.errors import UsageError
from mls_sync_local.runtime.context import make_context
from mls_sync_local.runtime.handlers import process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.stack import find_function
from mls_sync_local.serving import Serving

Invoke = Callable[[dict[str, Any]], Any]

MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""Lambda's request payload limit for a synchronous invocation."""
_TEXTUAL = re.compile(
    r"^(text/.*|application/(json|xml|javascript|x-www-form-urlencoded)|.*\+(json|xml))$"
)


def cold(runtime: LocalRuntime, function: str) -> Invoke:
    """Each request invoked like `mls-sync invoke`: the function's own environment, fresh."""
    return lambda event: runtime.invoke(function, event)


@contextlib.contextmanager
def warm(runtime: LocalRuntime, function: str) -> Iterator[Invoke]:
    """The function's environment set once for the block: its caches live across requests."""
    spec = find_function(function, runtime.facts)
    physical = runtime.deployed.physical(spec.logical_id)
    with process_environment(runtime.function_environment(spec.logical_id)):
        # Imported (on first use) inside the environment, as Lambda imports it: Powertools
        # reads its log level and service name at import.
        handler = runtime.registry.get(spec.logical_id)

        def invoke(event: dict[str, Any]) -> Any:
            context = make_context(
                physical,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                region=runtime.deployed.region,
            )
            return handler(event, context)

        yield invoke


def function_url_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event AWS hands a function for this request."""
    path, _, query = target.partition("?")
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    at = now or datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path or "/",
        "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(at.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if body:
        media = joined.get("content-type", "").split(";")[0].strip().lower()
        text: str | None = None
        if _TEXTUAL.match(media):
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """A handler's return value as Lambda turns it into the HTTP response."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    raw = result.get("body")
    if raw is None:
        payload = b""
    elif result.get("isBase64Encoded") is True:
        payload = base64.b64decode(str(raw))
    else:
        payload = (raw if isinstance(raw, str) else json.dumps(raw)).encode("utf-8")
    return int(result["statusCode"]), headers, payload


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class FunctionUrlFront:
    """``with FunctionUrlFront(invoke) as front: front.url`` — a threaded loopback server."""

    def __init__(self, invoke: Invoke, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback_host(host):
            raise UsageError(
                f"refusing to listen on {host!r}: the function URL front is loopback only"
            )
        self._invoke = invoke
        self._lock = threading.Lock()  # one warm container: one invocation at a time
        self.invocations = 0
        server = _Server6 if ":" in host else ThreadingHTTPServer
        self._server = server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._serving = Serving(self._server, name="function-url")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start(self) -> FunctionUrlFront:
        self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> FunctionUrlFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.invocations += 1
            try:
                result = self._invoke(event)
            except Exception:  # noqa: BLE001 - Lambda answers a crashed invocation 502
                body = b'{"Message":"Internal Server Error"}'
                return 502, {"content-type": "application/json"}, body
        return http_response(result)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes: without this, Nagle's algorithm and
                # the client's delayed ACK hold every answer back ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_REQUEST_BYTES:
                    too_big = b'{"Message":"Request must be smaller than 6291456 bytes"}'
                    self._send(413, {"content-type": "application/json"}, too_big)
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                event = function_url_event(
                    method=self.command,
                    target=self.path,
                    headers=list(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    domain=front.url.removeprefix("http://"),
                )
                self._send(*front.call(event))

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, *_: Any) -> None:
                return  # the handler logs each request; the access log would double it

        return Handler
