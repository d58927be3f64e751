"""One HTTP exchange read whole, within a total time budget and a size cap.

httpx's timeouts bound each read, not the response: a server dripping a byte at a time
would hold us for ever. So the body is streamed, the elapsed time checked between chunks
(on the injected monotonic clock), and on a real socket a timer shuts the socket down when
the budget runs out, so no single read can outlast it either. gzip and deflate are inflated
a bounded piece at a time, so a compression bomb cannot inflate past the cap in one go."""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import httpx

from mls_sync.reso.errors import MlsPageTooLarge

ERROR_BODY_BYTES = 65_536
"""Of a non-2xx body only this much is read (its message is cut to 200 characters anyway)."""
_PIECE = 65_536
"""Largest piece decoded at once."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete response: status, headers and the body as read (an error body cut to
    ``ERROR_BODY_BYTES``)."""

    status: int
    headers: httpx.Headers
    body: bytes


class TooSlow(Exception):  # noqa: N818 - internal signal, never escapes the transport
    def __init__(self, budget: float) -> None:
        super().__init__(f"response took longer than {budget:g}s")
        self.budget = budget


class Undecodable(Exception):  # noqa: N818 - internal signal, never escapes the transport
    pass


TooLarge = Callable[[int | None], MlsPageTooLarge]
"""Builds the error for a body over the cap (given its declared Content-Length, if any)."""


class _Watchdog:
    """Shuts a response's socket down when its time budget runs out (real time), so a read
    blocked on a dripping server returns. Without a socket (mock transports) it does
    nothing: the checks between chunks, on the injected clock, still apply."""

    def __init__(self, response: httpx.Response, seconds: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sock: socket.socket | None = None
        stream = response.extensions.get("network_stream")
        get_info = getattr(stream, "get_extra_info", None)
        sock = get_info("socket") if callable(get_info) else None
        if isinstance(sock, socket.socket):
            self._sock = sock
            self._timer = threading.Timer(max(0.0, seconds), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done or self._sock is None:
                return
            self.fired = True
            # The plain socket's shutdown (not SSLSocket's, which drops its TLS state under
            # the reading thread): the blocked read returns, the fd stays ours.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> bool:
        """Stops the timer; True if it had already cut the socket."""
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
        return self.fired


def _content_length(headers: httpx.Headers) -> int | None:
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _size_text(limit: int) -> str:
    if limit >= 1_000_000:
        return f"{limit / 1_000_000:g} MB"
    return f"{limit:,} bytes"


def too_large(host: str, limit: int, declared: int | None, *, page: bool) -> MlsPageTooLarge:
    """The error for a page (or a token answer) over ``limit`` bytes: not retried, since the
    same query would bring the same body."""
    size = _size_text(limit)
    said = f" (Content-Length {declared:,})" if declared is not None else ""
    if page:
        return MlsPageTooLarge(
            f"{host}: page larger than {size}{said} (limit max_page_bytes); ask for smaller pages",
            limit,
        )
    return MlsPageTooLarge(
        f"token endpoint of {host} answered more than {size}{said}; not a token", limit
    )


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, decoded, in pieces of at most ``_PIECE`` bytes for gzip and
    deflate (httpx would inflate a whole network read at once: up to ~1000x its size)."""
    try:
        content = response.content  # a response already read (mock transports)
    except httpx.ResponseNotRead:
        pass
    else:
        yield content
        return
    coding = (response.headers.get("Content-Encoding") or "").strip().lower()
    if coding in ("", "identity"):
        yield from response.iter_raw()
        return
    if coding not in ("gzip", "x-gzip", "deflate"):
        yield from response.iter_bytes()  # never asked for; httpx decodes it
        return
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding != "deflate" else None
    try:
        for chunk in response.iter_raw():
            if inflater is None:  # deflate: zlib-wrapped (RFC 9110) or raw (seen in practice)
                wrapped = (
                    len(chunk) >= 2
                    and chunk[0] & 0x0F == 8
                    and (chunk[0] << 8 | chunk[1]) % 31 == 0
                )
                inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data = chunk
            while data:
                out = inflater.decompress(data, _PIECE)
                if out:
                    yield out
                elif inflater.unconsumed_tail == data:
                    break
                data = inflater.unconsumed_tail
        if inflater is not None:
            tail = inflater.flush()
            if tail:
                yield tail
    except zlib.error:
        raise Undecodable(f"{coding} body could not be decoded") from None


def exchange(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    data: Mapping[str, str] | None,
    headers: Mapping[str, str],
    budget: float,
    limit: int,
    monotonic: Callable[[], float],
    too_large: TooLarge,
) -> Answer:
    """Sends one request and reads its whole body within ``budget`` seconds and ``limit``
    bytes (a 2xx body over the limit raises ``too_large``; an error body is cut short).
    Raises :class:`TooSlow`, :class:`Undecodable`, or httpx's own transport errors."""
    started = monotonic()
    request = http.build_request(
        method, url, data=data, headers=headers, timeout=httpx.Timeout(budget)
    )
    response = http.send(request, stream=True)
    watchdog: _Watchdog | None = None
    try:
        remaining = budget - (monotonic() - started)
        if remaining <= 0:
            raise TooSlow(budget)
        watchdog = _Watchdog(response, remaining)
        cap = limit if 200 <= response.status_code < 300 else ERROR_BODY_BYTES
        truncate = cap != limit
        declared = _content_length(response.headers)
        if declared is not None and declared > cap and not truncate:
            raise too_large(declared)
        body = bytearray()
        try:
            for chunk in _decoded(response):
                body += chunk
                if len(body) > cap:
                    if truncate:
                        del body[cap:]
                        break
                    raise too_large(None)
                if monotonic() - started > budget:
                    raise TooSlow(budget)
        except httpx.TransportError:
            if watchdog.cancel() or monotonic() - started > budget:
                raise TooSlow(budget) from None
            raise
        if watchdog.cancel():
            raise TooSlow(budget)  # cut at the budget: the body may be incomplete
        return Answer(response.status_code, response.headers, bytes(body))
    finally:
        if watchdog is not None:
            watchdog.cancel()
        response.close()


__all__ = ["ERROR_BODY_BYTES", "Answer", "TooSlow", "Undecodable", "exchange", "too_large"]
