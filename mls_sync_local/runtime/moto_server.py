"""A moto server on a free loopback port, in this process (a thread), as a context manager.

In-process keeps `mls-sync demo` and the tests free of subprocess bookkeeping: stopping the
context stops the server, also on Ctrl-C and on failure. moto keeps its state in
process-wide backends, so a server starts by resetting them: one in-process moto server at
a time (and not beside an active ``mock_aws`` in the same process).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass
class MotoServer:
    """A running moto server; ``url`` is what AWS_ENDPOINT_URL should be."""

    url: str
    _server: Any

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def start_moto_server(port: int = 0, *, quiet: bool = True) -> MotoServer:
    """Start moto on ``LOOPBACK:port`` (0 = a free port chosen by the OS) and return it."""
    # Imported here: moto pulls in every service's backend (~1 s), only needed when serving.
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    from mls_sync_local.runtime.moto_patches import transactions_copy_tables_once  # noqa: PLC0415

    transactions_copy_tables_once()
    if quiet:
        # One access-log line per AWS call would drown the command's own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    url = f"http://{host}:{bound_port}"
    _reset(url)
    return MotoServer(url=url, _server=server)


def _reset(url: str) -> None:
    """Empty moto's process-wide backends (left over from an earlier server here)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http
        response.read()


@contextmanager
def moto_server(port: int = 0, *, quiet: bool = True) -> Iterator[str]:
    """``with moto_server() as url:`` a fresh, empty moto for the duration of the block."""
    server = start_moto_server(port, quiet=quiet)
    try:
        yield server.url
    finally:
        server.stop()
